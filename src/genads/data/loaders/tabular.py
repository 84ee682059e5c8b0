"""Generic CSV / TSV / Parquet input with a column map.

Events need user_id, ad_id and timestamp columns; action is optional (``default_action``
otherwise). A catalogue file is optional; without one a bare catalogue is made from the ads seen.
A column map renames the input's columns to canonical ones: ``{"user_id": "uid", "ad_id": "item"}``;
on the command line ``--map user_id=uid,ad_id=item``. List fields (selling_points, attributes)
are ``|``-separated in CSV.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genads.data.loaders.text import TextInput, file_size, open_text
from genads.data.source import RAW_CATALOGUE_COLUMNS, RAW_EVENT_COLUMNS, EventChunk, RawCatalogue
from genads.data.validate import Issue


def parse_column_map(text: str | None) -> dict[str, str]:
    """``"user_id=uid,ad_id=item"`` -> ``{"user_id": "uid", "ad_id": "item"}``."""
    if not text:
        return {}
    pairs = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"column map entry {part!r} must look like canonical=source (e.g. user_id=uid)")
        key, value = (p.strip() for p in part.split("=", 1))
        pairs[key] = value
    return pairs


def _is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet"


SEPARATORS = {",": ",", "tab": "\t", "\\t": "\t", "\t": "\t", ";": ";", "|": "|"}
"""What ``--sep`` accepts (``tab`` or ``\\t`` for a tab) -> the separator."""


def parse_sep(text: str | None) -> str | None:
    """A ``--sep`` value -> the one-character separator (None: infer it); unknown values name the choices."""
    if text is None:
        return None
    if text not in SEPARATORS:
        raise ValueError(f"--sep {text!r}: choose one of , tab ; |")
    return SEPARATORS[text]


def _delimiter(path: Path, sep: str | None = None) -> str:
    """``sep`` when given; a tab for .tsv/.tab and RecBole's atomic files; else the header line decides: the most
    frequent of , tab ; | in it (a comma when it holds none), as spreadsheet exports and DuckDB's sniffer do."""
    if sep is not None:
        return sep
    name = path.name.removesuffix(".gz")
    if name.endswith((".tsv", ".tab", ".inter", ".item", ".user")):
        return "\t"
    try:
        with open_text(path) as f:
            header = f.readline()
    except (OSError, UnicodeDecodeError):
        return ","
    counts = {c: header.count(c) for c in (",", "\t", ";", "|")}
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


class _BadRecord:
    """Stands in for a record the csv module could not parse."""

    __slots__ = ("end", "message")

    def __init__(self, end: int, message: str) -> None:
        self.end, self.message = end, message

    def __len__(self) -> int:
        return 0


def _records(reader: Iterator[list[str]], path: Path, base: int) -> Iterator[list[str] | _BadRecord]:
    """csv records, with unparsable ones as _BadRecord (the csv module carries on after an error).

    ``base`` is the number of lines consumed before ``reader`` started (its line_num counts from 0).
    """
    while True:
        try:
            yield from reader
            return
        except csv.Error as e:
            yield _BadRecord(base + reader.line_num, str(e))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{base + reader.line_num + 1}: not UTF-8 text ({e.reason})") from e


def _line_breaks(row: list[str]) -> int:
    """Line breaks inside the (quoted) fields of a record."""
    return sum(f.count("\n") + f.count("\r") - f.count("\r\n") for f in row)


def read_rows(
    path: Path, wanted: dict[str, str], batch: int, header_name: Callable[[str], str] = str.strip,
    sep: str | None = None,
) -> Iterator[tuple[pd.DataFrame, list[Issue], int]]:
    """Stream a delimited file as (frame, issues, bytes read from disk) with canonical columns + _file, _line.

    ``wanted`` maps canonical name -> header name; a header name not in the file raises. Text
    columns are Arrow-backed strings. Rows with the wrong number of fields (or that the CSV parser
    rejects) become ``malformed_row`` issues; empty lines are skipped. ``_line`` is the line a row
    starts on (quoted fields may span lines).

    Lines are split directly while no quote character has been seen (fast); from the first block
    with a quote on, the csv module parses the rest of the file.
    """
    name = str(path)
    delimiter = _delimiter(path, sep)
    with TextInput(path) as inp:
        reader = csv.reader(inp.text, delimiter=delimiter)
        try:
            header = [header_name(h) for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file (expected a header line)") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise ValueError(f"{path}:1: cannot read the header line ({e})") from e
        missing = [src for src in wanted.values() if src not in header]
        if missing:
            raise ValueError(f"{path}:1: header has no column {missing[0]!r} (columns: {', '.join(header)})")
        index = {canon: header.index(src) for canon, src in wanted.items()}
        width = len(header)
        line = reader.line_num  # last line consumed so far
        records = None  # the csv-module iterator, once a quote has been seen
        while True:
            if records is None:
                try:
                    block = list(itertools.islice(inp.text, batch))
                except UnicodeDecodeError as e:
                    raise ValueError(f"{path}:{line + 1}: not UTF-8 text ({e.reason})") from e
                if not block:
                    yield _frame(index, [], [], name), [], inp.advance()
                    return
                if not any('"' in text for text in block):
                    frame, issues = _split_block(block, line, index, width, delimiter, name)
                    line += len(block)
                    del block
                    yield frame, issues, inp.advance()
                    continue
                reader = csv.reader(itertools.chain(block, inp.text), delimiter=delimiter)
                records, base = _records(reader, path, line), line
                del block
            rows = list(itertools.islice(records, batch))
            if not rows:
                yield _frame(index, [], [], name), [], inp.advance()
                return
            simple = reader.line_num + base - line == len(rows) and not any(isinstance(r, _BadRecord) for r in rows)
            starts = range(line + 1, line + 1 + len(rows)) if simple else None
            good, lines, issues = _check_rows(rows, starts, line, width, name)
            line = reader.line_num + base
            frame = _frame(index, good, lines, name)
            del rows, good
            yield frame, issues, inp.advance()


def _split_block(
    block: list[str], line: int, index: dict[str, int], width: int, delimiter: str, name: str
) -> tuple[pd.DataFrame, list[Issue]]:
    """Split quote-free lines (one record each) into columns with Arrow, without Python objects per field."""
    lists = pc.split_pattern(pc.utf8_rtrim(pa.array(block, type=pa.string()), characters="\r\n"), delimiter)
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    ok = counts == width
    issues = []
    if not ok.all():
        for k in np.flatnonzero(~ok).tolist():
            if counts[k] > 1 or block[k].strip():  # a blank line is not a row
                issues.append(Issue(name, line + 1 + k, "row", "malformed_row",
                                    f"expected {width} fields, found {counts[k]}"))
        lists = lists.filter(pa.array(ok))
    frame = pd.DataFrame({
        canon: pd.Series(pd.arrays.ArrowExtensionArray(pc.list_element(lists, i))) for canon, i in index.items()
    })
    frame["_file"] = name
    frame["_line"] = (line + 1 + np.flatnonzero(ok)).astype(np.int64)
    return frame, issues


def _check_rows(
    rows: list, starts: range | None, line: int, width: int, name: str
) -> tuple[list[list[str]], list[int], list[Issue]]:
    """Keep rows with ``width`` fields; ``starts`` gives each row's line (None: count line breaks after ``line``)."""
    if starts is not None and list(map(len, rows)).count(width) == len(rows):
        return rows, list(starts), []  # the common case: one line per row, all well-formed
    good, lines, issues = [], [], []
    for k, row in enumerate(rows):
        if starts is not None:
            start = starts[k]
        else:
            start = line + 1
            line = row.end if isinstance(row, _BadRecord) else start + _line_breaks(row)
        if isinstance(row, _BadRecord):
            issues.append(Issue(name, start, "row", "malformed_row", f"cannot parse the line ({row.message})"))
        elif len(row) == width:
            good.append(row)
            lines.append(start)
        elif row and not (len(row) == 1 and not row[0].strip()):
            issues.append(Issue(name, start, "row", "malformed_row", f"expected {width} fields, found {len(row)}"))
    return good, lines, issues


def _frame(index: dict[str, int], rows: list[list[str]], lines: list[int], name: str) -> pd.DataFrame:
    frame = pd.DataFrame({
        canon: pd.Series(pd.arrays.ArrowExtensionArray(pa.array([r[i] for r in rows], type=pa.string())))
        for canon, i in index.items()
    })
    frame["_file"] = name
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    return frame


def read_parquet_rows(path: Path, wanted: dict[str, str], batch: int) -> Iterator[tuple[pd.DataFrame, list[Issue], int]]:
    """Stream a Parquet file as frames; ``_line`` is the 1-based row number. Column types are kept."""
    pf = pq.ParquetFile(path)
    missing = [src for src in wanted.values() if src not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {', '.join(pf.schema_arrow.names)})")
    size, total = file_size(path), max(1, pf.metadata.num_rows)
    row, reported = 1, 0
    for rb in pf.iter_batches(batch_size=batch, columns=list(dict.fromkeys(wanted.values()))):
        part = rb.to_pandas()
        frame = pd.DataFrame({canon: part[src] for canon, src in wanted.items()})
        frame["_file"] = str(path)
        frame["_line"] = np.arange(row, row + len(frame), dtype=np.int64)
        row += len(frame)
        done = size * (row - 1) // total
        yield frame, [], done - reported
        reported = done


def as_python(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrow-backed text columns -> object columns of str / None (for row-wise catalogue work)."""
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.ArrowDtype):
            out[col] = pd.Series(out[col].to_numpy(dtype=object, na_value=None), dtype=object)
    return out


class TabularSource:
    """Events (and optionally a catalogue) from CSV/TSV (optionally .gz) or Parquet files."""

    format = "csv"

    def __init__(
        self,
        events: str | Path,
        catalogue: str | Path | None = None,
        column_map: dict[str, str] | None = None,
        catalogue_map: dict[str, str] | None = None,
        default_action: str = "click",
        sep: str | None = None,
    ) -> None:
        self.events = Path(events)
        self.sep = sep
        """The field separator of both files (None: inferred per file, see :func:`_delimiter`)."""
        self.format = "parquet" if _is_parquet(self.events) else "csv"
        self.catalogue_path = Path(catalogue) if catalogue else None
        column_map = dict(column_map or {})
        unknown = set(column_map) - set(RAW_EVENT_COLUMNS)
        if unknown:
            raise ValueError(f"column map names unknown event field(s) {sorted(unknown)}; known: {list(RAW_EVENT_COLUMNS)}")
        self.has_action = "action" in column_map or self._header_has("action")
        self.event_map = {c: column_map.get(c, c) for c in RAW_EVENT_COLUMNS if c != "action" or self.has_action}
        self.catalogue_map = dict(catalogue_map or {})
        unknown = set(self.catalogue_map) - set(RAW_CATALOGUE_COLUMNS)
        if unknown:
            raise ValueError(f"catalogue map names unknown field(s) {sorted(unknown)}; known: {list(RAW_CATALOGUE_COLUMNS)}")
        self.default_action = default_action
        self.field_names = dict(self.event_map)
        self.notes = {"files": [str(self.events)] + ([str(self.catalogue_path)] if self.catalogue_path else []),
                      "timestamps": "as given", "column_map": self.event_map}

    def _header_has(self, column: str) -> bool:
        if _is_parquet(self.events):
            return column in pq.ParquetFile(self.events).schema_arrow.names
        with open_text(self.events) as f:
            header = next(csv.reader(f, delimiter=self.delimiter(self.events)), [])
        return column in [h.strip() for h in header]

    def delimiter(self, path: Path) -> str:
        """The separator of ``path`` (one of this source's files)."""
        return _delimiter(path, self.sep)

    def size_hint(self) -> int:
        return file_size(self.events)

    def _rows(self, path: Path, wanted: dict[str, str], batch: int):
        return (read_parquet_rows(path, wanted, batch) if _is_parquet(path)
                else read_rows(path, wanted, batch, sep=self.sep))

    def catalogue(self) -> RawCatalogue | None:
        if self.catalogue_path is None:
            return None
        header = self._catalogue_header()
        absent = [f"{c}={src}" for c, src in self.catalogue_map.items() if src not in header]
        if absent:
            raise ValueError(f"{self.catalogue_path}:1: catalogue map {', '.join(absent)} names no column "
                             f"of the file (columns: {', '.join(header)})")
        wanted = {c: self.catalogue_map.get(c, c) for c in RAW_CATALOGUE_COLUMNS if self.catalogue_map.get(c, c) in header}
        if "ad_id" not in wanted:
            raise ValueError(f"{self.catalogue_path}:1: no ad_id column (map one with ad_id=NAME; "
                             f"columns: {', '.join(header)})")
        frames, issues = [], []
        for frame, found, _ in self._rows(self.catalogue_path, wanted, 1_000_000):
            frames.append(frame)
            issues.extend(found)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*wanted, "_file", "_line"])
        return RawCatalogue(as_python(frame), wanted, issues)

    def _catalogue_header(self) -> list[str]:
        if _is_parquet(self.catalogue_path):
            return pq.ParquetFile(self.catalogue_path).schema_arrow.names
        with open_text(self.catalogue_path) as f:
            return [h.strip() for h in next(csv.reader(f, delimiter=self.delimiter(self.catalogue_path)), [])]

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        for frame, issues, nbytes in self._rows(self.events, self.event_map, chunk_rows):
            if not self.has_action:
                frame["action"] = self.default_action
            yield EventChunk(frame, nbytes, issues)
