"""Files that ship inside the package: the market configs and the demo data.

In the repository they live in ``configs/`` and ``data/demo/``; ``src/genads/_bundled/`` holds symlinks to them,
which a wheel build copies in as package data. So ``genads demo`` and ``genads simulate`` find them the same way
from a clone (editable install) and from an installed wheel, whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "_bundled"
CONFIGS = BUNDLED / "configs"
"""The market configs (``configs/*.yaml`` of the repository)."""
DEMO_DATA = BUNDLED / "demo"
"""The bundled slice of real data the demo runs on (see its README.md)."""


def config_path(path: str | Path) -> Path:
    """``path`` as given when it exists; else the bundled config of that name (``configs/market.yaml`` or
    ``market.yaml`` -> the packaged ``market.yaml``), so the documented commands also work outside a clone.

    Raises:
        FileNotFoundError: neither exists, naming both places and the bundled configs.
    """
    given = Path(path)
    if given.is_file():
        return given
    bundled = CONFIGS / given.name
    if given.parent in (Path("."), Path("configs")) and bundled.is_file():
        return bundled
    names = ", ".join(sorted(p.name for p in CONFIGS.glob("*.yaml")))
    raise FileNotFoundError(f"{given} not found (bundled configs: {names})")
