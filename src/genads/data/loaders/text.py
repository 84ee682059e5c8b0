"""Line-oriented reading of (optionally gzipped) text files with byte counts for progress bars."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path


def open_text(path: Path) -> io.TextIOBase:
    """Open a UTF-8 text file; ``.gz`` files are decompressed on the fly."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def line_batches(path: Path, batch: int, start_line: int = 1) -> Iterator[tuple[list[tuple[int, str]], int]]:
    """Yield ([(line number, text)], bytes read) batches of about ``batch`` lines, blank lines skipped."""
    with open_text(path) as f:
        lines: list[tuple[int, str]] = []
        nbytes = 0
        for number, text in enumerate(f, start=start_line):
            nbytes += len(text)
            text = text.rstrip("\r\n")
            if text.strip():
                lines.append((number, text))
            if len(lines) >= batch:
                yield lines, nbytes
                lines, nbytes = [], 0
        if lines or nbytes:
            yield lines, nbytes


def file_size(path: Path) -> int:
    """Bytes of text in ``path``; gzip files count about four times their size."""
    size = path.stat().st_size
    return size * 4 if path.suffix == ".gz" else size
