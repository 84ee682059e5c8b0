"""Generic CSV / TSV / Parquet input with a column map.

Events need user_id, ad_id and timestamp columns; action is optional (``default_action``
otherwise). A catalogue file is optional; without one a bare catalogue is made from the ads seen.
A column map renames the input's columns to canonical ones: ``{"user_id": "uid", "ad_id": "item"}``;
on the command line ``--map user_id=uid,ad_id=item``. List fields (selling_points, attributes)
are ``|``-separated in CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from genads.data.loaders.text import file_size, open_text
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


def _delimiter(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab", ".inter", ".item", ".user")) else ","


def read_rows(
    path: Path, wanted: dict[str, str], batch: int, header_name: Callable[[str], str] = str.strip
) -> Iterator[tuple[pd.DataFrame, list[Issue], int]]:
    """Stream a delimited file as (frame, issues, bytes read) with canonical columns + _file, _line.

    ``wanted`` maps canonical name -> header name; a header name not in the file raises.
    Rows with the wrong number of fields become ``malformed_row`` issues.
    """
    name = str(path)
    consumed = 0

    def counted(f: Iterator[str]) -> Iterator[str]:
        nonlocal consumed
        for text in f:
            consumed += len(text)
            yield text

    with open_text(path) as f:
        reader = csv.reader(counted(f), delimiter=_delimiter(path))
        try:
            header = [header_name(h) for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path}: empty file (expected a header line)") from None
        missing = [src for src in wanted.values() if src not in header]
        if missing:
            raise ValueError(f"{path}:1: header has no column {missing[0]!r} (columns: {', '.join(header)})")
        index = {canon: header.index(src) for canon, src in wanted.items()}
        width = len(header)
        while True:
            rows, lines, issues = [], [], []
            for row in reader:
                if len(row) != width:
                    if any(cell.strip() for cell in row):
                        issues.append(Issue(name, reader.line_num, "row", "malformed_row",
                                            f"expected {width} fields, found {len(row)}"))
                    continue
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) >= batch:
                    break
            if not rows and not issues:
                return
            cols = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
            frame = pd.DataFrame({canon: pd.Series(cols[i], dtype=object) for canon, i in index.items()})
            frame["_file"] = name
            frame["_line"] = pd.Series(lines, dtype="int64")
            yield frame, issues, consumed
            consumed = 0


def read_parquet_rows(path: Path, wanted: dict[str, str], batch: int) -> Iterator[tuple[pd.DataFrame, list[Issue], int]]:
    """Stream a Parquet file as frames; ``_line`` is the 1-based row number."""
    pf = pq.ParquetFile(path)
    missing = [src for src in wanted.values() if src not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {', '.join(pf.schema_arrow.names)})")
    row = 1
    per_row = max(1, path.stat().st_size // max(1, pf.metadata.num_rows))
    for rb in pf.iter_batches(batch_size=batch, columns=list(dict.fromkeys(wanted.values()))):
        part = rb.to_pandas()
        frame = pd.DataFrame({canon: part[src].astype(object) for canon, src in wanted.items()})
        frame["_file"] = str(path)
        frame["_line"] = range(row, row + len(frame))
        row += len(frame)
        yield frame, [], per_row * len(frame)


class TabularSource:
    """Events (and optionally a catalogue) from CSV/TSV (optionally .gz) or Parquet files."""

    format = "tabular"

    def __init__(
        self,
        events: str | Path,
        catalogue: str | Path | None = None,
        column_map: dict[str, str] | None = None,
        catalogue_map: dict[str, str] | None = None,
        default_action: str = "click",
    ) -> None:
        self.events = Path(events)
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
            header = next(csv.reader(f, delimiter=_delimiter(self.events)), [])
        return column in [h.strip() for h in header]

    def size_hint(self) -> int:
        return file_size(self.events)

    def _rows(self, path: Path, wanted: dict[str, str], batch: int):
        return read_parquet_rows(path, wanted, batch) if _is_parquet(path) else read_rows(path, wanted, batch)

    def catalogue(self) -> RawCatalogue | None:
        if self.catalogue_path is None:
            return None
        header = self._catalogue_header()
        wanted = {c: self.catalogue_map.get(c, c) for c in RAW_CATALOGUE_COLUMNS if self.catalogue_map.get(c, c) in header}
        if "ad_id" not in wanted:
            raise ValueError(f"{self.catalogue_path}: no ad_id column (map one with ad_id=NAME)")
        frames, issues = [], []
        for frame, found, _ in self._rows(self.catalogue_path, wanted, 1_000_000):
            frames.append(frame)
            issues.extend(found)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*wanted, "_file", "_line"])
        return RawCatalogue(frame, wanted, issues)

    def _catalogue_header(self) -> list[str]:
        if _is_parquet(self.catalogue_path):
            return pq.ParquetFile(self.catalogue_path).schema_arrow.names
        with open_text(self.catalogue_path) as f:
            return [h.strip() for h in next(csv.reader(f, delimiter=_delimiter(self.catalogue_path)), [])]

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        for frame, issues, nbytes in self._rows(self.events, self.event_map, chunk_rows):
            if not self.has_action:
                frame["action"] = self.default_action
            yield EventChunk(frame, nbytes, issues)
