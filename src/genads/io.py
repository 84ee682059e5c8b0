"""Atomic writes: every artifact genads writes appears whole or not at all, and a failed write loses nothing.

A file is written to a temporary name in its own folder, then renamed over the target (``os.replace`` is atomic
on one file system); a folder is built beside its target and swapped in by :func:`replace_dir`. The temporary
file gets the usual umask-based mode (``tempfile`` creates 0600), or the ``mode`` asked for (0600 for secrets).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file/folder (created 0600/0700 by tempfile) the usual umask-based permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write(path: str | Path, write: Callable[[str], object], mode: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it over ``path``.

    ``write`` may be any writer that takes a file name (``safetensors.save_file``, ``pq.write_table``, ...).
    ``mode``: the file's permissions (default: as a new file under the umask). On any error the temporary file
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if mode is None:
            default_mode(tmp)
        else:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write, mode)


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def replace_dir(new: Path, target: Path) -> None:
    """Move folder ``new`` to ``target``; an existing target is swapped out, then deleted.

    If the final rename fails, the old target is put back, so a failed write loses nothing stored.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        new.rename(target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    target.rename(trash / "old")
    try:
        new.rename(target)
    except BaseException:
        (trash / "old").rename(target)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
