"""Paths stored in run folders are relative to the run, so a run (with its data beside it) can move.

``config.json`` of a run made by ``genads train`` names its dataset and SID folder. Written relative to the
run folder (``../../data/shop``), the whole tree (data, tokenize folder, run) can be copied to another
place or machine and still load. Absolute paths written by older runs are still read as they are.
"""

from __future__ import annotations

import os
from pathlib import Path


def relative_to_run(path: str | Path, run: str | Path) -> str:
    """``path`` as stored in ``run``'s files: relative to the run folder (POSIX separators)."""
    rel = os.path.relpath(Path(path).resolve(), Path(run).resolve())
    return Path(rel).as_posix()


def resolve_in_run(value: str | Path, run: str | Path) -> Path:
    """A path read from ``run``'s files: relative ones are taken from the run folder, absolute ones as they are."""
    value = Path(value)
    return value if value.is_absolute() else Path(run) / value
