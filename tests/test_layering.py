"""The library never imports the CLI: ``genads.commands`` is imported only by ``commands/`` itself and ``cli.py``
(DESIGN.md, "Runs as a library"; issue 32). An AST scan, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "genads"


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def test_no_module_outside_the_cli_imports_genads_commands():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "commands" or rel == Path("cli.py"):
            continue
        for line, name in _imports(path):
            if name == "genads.commands" or name.startswith("genads.commands."):
                offenders.append(f"src/genads/{rel}:{line} imports {name}")
    assert not offenders, "library modules import the CLI:\n" + "\n".join(offenders)


def test_the_scan_sees_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from genads.commands.slate import load_recommender\n")
    assert (2, "genads.commands.slate") in _imports(probe)
