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


FAMILY_NAMES = {"sid", "parallel"}
FAMILY_CLASSES = {"SlateModel", "SlateRecommender", "ParallelModel", "ParallelRecommender", "LiveAds",
                  "TrieCandidates", "ExactCandidates"}


def _family_branches(path: Path) -> list[str]:
    """Places that decide by the generator family: a comparison of a family with a family's name (something
    called ``*family*`` against "sid" / "parallel"), an isinstance check
    against a family's model, recommender or candidates class, or a duck-typed ``hasattr(x, "pool")``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Compare):
            consts = [n.value for n in [node.left, *node.comparators] if isinstance(n, ast.Constant)]
            consts += [e.value for n in node.comparators if isinstance(n, (ast.Tuple, ast.List, ast.Set))
                       for e in n.elts if isinstance(e, ast.Constant)]
            words = {n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else str(n.value)
                     for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute, ast.Constant))}
            if FAMILY_NAMES & {c for c in consts if isinstance(c, str)} and any("family" in w for w in words):
                out.append(f"{node.lineno}: compares with a family name")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance",
                                                                                                 "hasattr"):
            names = {n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else n.value
                     for n in ast.walk(node.args[1]) if isinstance(n, (ast.Name, ast.Attribute, ast.Constant))}
            if names & FAMILY_CLASSES or (node.func.id == "hasattr" and "pool" in names):
                out.append(f"{node.lineno}: {node.func.id} on a family's class")
    return out


def test_no_family_branch_outside_the_registry():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel == Path("families.py"):
            continue
        offenders += [f"src/genads/{rel}:{where}" for where in _family_branches(path)]
    assert not offenders, "decide by the family in genads.families, not here:\n" + "\n".join(offenders)


def test_the_family_scan_sees_each_kind_of_branch(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f(a, m):\n    if a.family == 'parallel':\n        return 1\n"
                     "    x = 2 if isinstance(m, ParallelModel) else 3\n    if hasattr(m, 'pool'):\n        return x\n"
                     "    return run_family(a) in ('sid', 'other') or m.get('family', 'sid') != 'sid'\n"
                     "def g(value):\n    return value not in ('parallel', False)  # another option's value\n")
    assert sorted(w.split(":")[0] for w in _family_branches(probe)) == ["2", "4", "5", "7", "7"]
