"""Line-oriented reading of (optionally gzipped) text files, with progress in bytes read from disk."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class TextInput:
    """A UTF-8 text file (``.gz`` decompressed on the fly) that knows how many bytes it has read from disk.

    ``position()`` is the offset in the file on disk (compressed bytes for ``.gz``), so progress
    adds up to ``file_size(path)`` exactly.
    """

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        self.path = path
        self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
        stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if path.suffix == ".gz" else self._raw
        self.text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        self._last = 0

    def position(self) -> int:
        return self._raw.tell()

    def advance(self) -> int:
        """Bytes read from disk since the previous call."""
        now = self._raw.tell()
        delta, self._last = now - self._last, now
        return delta

    def close(self) -> None:
        self.text.close()
        self._raw.close()

    def __enter__(self) -> TextInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def open_text(path: Path) -> Iterator[io.TextIOBase]:
    """Open a UTF-8 text file for reading; ``.gz`` files are decompressed on the fly."""
    with TextInput(path) as inp:
        yield inp.text


def line_batches(path: Path, batch: int, start_line: int = 1) -> Iterator[tuple[list[tuple[int, str]], int]]:
    """Yield ([(line number, text)], bytes read from disk) batches of about ``batch`` lines.

    Blank lines are skipped. Raises ValueError naming the file and line if the text is not UTF-8.
    """
    with TextInput(path) as inp:
        lines: list[tuple[int, str]] = []
        number = start_line - 1
        try:
            for number, text in enumerate(inp.text, start=start_line):
                text = text.rstrip("\r\n")
                if text.strip():
                    lines.append((number, text))
                if len(lines) >= batch:
                    yield lines, inp.advance()
                    lines = []
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{number + 1}: not UTF-8 text ({e.reason})") from e
        yield lines, inp.advance()


def file_size(path: Path) -> int:
    """Bytes of ``path`` on disk (what the progress bar counts)."""
    return path.stat().st_size


def iter_json_object(path: Path) -> Iterator[tuple[str, Any, int]]:
    """Yield (key, value, line) for each top-level entry of a JSON object file, in file order.

    Unlike ``json.load`` this keeps repeated keys (so duplicates can be reported) and the line
    each key is on. Raises ValueError naming file and line if the file is not a JSON object.
    """
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    n = len(text)
    line, seen = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, seen
        if pos > seen:
            line += text.count("\n", seen, pos)
            seen = pos
        return line

    def skip(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def fail(pos: int, what: str) -> ValueError:
        return ValueError(f"{path}:{line_at(min(pos, n))}: not valid JSON: {what}")

    pos = skip(0)
    if pos >= n or text[pos] != "{":
        raise fail(pos, "expected a JSON object {key: value, ...}")
    pos = skip(pos + 1)
    if pos < n and text[pos] == "}":
        return
    while True:
        if pos >= n or text[pos] != '"':
            raise fail(pos, "expected a string key")
        try:
            key, end = decoder.raw_decode(text, pos)
            key_line = line_at(pos)
            pos = skip(end)
            if pos >= n or text[pos] != ":":
                raise fail(pos, "expected ':' after a key")
            value, end = decoder.raw_decode(text, skip(pos + 1))
        except json.JSONDecodeError as e:
            raise fail(e.pos, e.msg) from e
        yield key, value, key_line
        pos = skip(end)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "}":
            if skip(pos + 1) < n:
                raise fail(skip(pos + 1), "extra data after the object")
            return
        raise fail(pos, "expected ',' or '}'")
