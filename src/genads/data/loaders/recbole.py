"""RecBole's atomic files (e.g. ml-100k): ``NAME.inter`` and optional ``NAME.item``.

Tab-separated with typed headers (``user_id:token  item_id:token  rating:float  timestamp:float``).
Every interaction is a click. Item text comes from ``.item``: a title column (``movie_title``,
``title`` or ``name``), ``token_seq`` columns become attributes (genres), the first of them the
category, and ``release_year`` an attribute too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from genads.data.loaders.tabular import as_python, read_rows
from genads.data.loaders.text import file_size, open_text
from genads.data.source import EventChunk, RawCatalogue

TITLE_COLUMNS = ("movie_title", "title", "name", "item_name")


def _base(header: str) -> str:
    return header.strip().split(":", 1)[0]


def _typed_header(path: Path) -> dict[str, str]:
    """Column base name -> its type (token, token_seq, float, ...)."""
    with open_text(path) as f:
        first = f.readline().rstrip("\r\n")
    return {_base(h): (h.split(":", 1)[1] if ":" in h else "token") for h in first.split("\t")}


class RecBoleSource:
    format = "recbole"

    def __init__(self, inter: str | Path, item: str | Path | None = None) -> None:
        self.inter = Path(inter)
        if item is None:
            guess = self.inter.with_suffix(".item")
            item = guess if guess.is_file() else None
        self.item = Path(item) if item else None
        types = _typed_header(self.inter)
        for col in ("user_id", "item_id", "timestamp"):
            if col not in types:
                raise ValueError(f"{self.inter}:1: header has no {col} column (columns: {', '.join(types)})")
        self.field_names = {"user_id": "user_id", "ad_id": "item_id", "timestamp": "timestamp", "action": "action"}
        self.notes = {"files": [str(self.inter)] + ([str(self.item)] if self.item else []),
                      "timestamps": "as given", "actions": "every interaction is a click"}

    def size_hint(self) -> int:
        return file_size(self.inter)

    def catalogue(self) -> RawCatalogue | None:
        if self.item is None:
            return None
        types = _typed_header(self.item)
        title = next((c for c in TITLE_COLUMNS if c in types), None)
        seqs = [c for c, t in types.items() if t == "token_seq" and c != title]
        wanted = {"ad_id": "item_id", **({"title": title} if title else {})}
        wanted.update({c: c for c in seqs})
        if "release_year" in types:
            wanted["release_year"] = "release_year"
        frames, issues = [], []
        for frame, found, _ in read_rows(self.item, wanted, 1_000_000, header_name=_base):
            frames.append(frame)
            issues.extend(found)
        if not frames:
            frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in [*wanted, "_file"]})
            frame["_line"] = pd.Series([], dtype="int64")
        else:
            frame = as_python(pd.concat(frames, ignore_index=True))
        tokens = [frame[c].fillna("").str.split() for c in seqs]
        frame["attributes"] = [[tok for t in tokens for tok in t[i]] for i in range(len(frame))]
        frame["category"] = frame[seqs[0]].fillna("").str.split().str[0].fillna("") if seqs else ""
        if "release_year" in frame:
            frame["attributes"] = [a + ([f"year:{y}"] if y.strip() else []) for a, y in
                                   zip(frame["attributes"], frame["release_year"].fillna(""), strict=True)]
        frame["description"] = [_describe(t, a) for t, a in
                                zip(frame.get("title", [""] * len(frame)), frame["attributes"], strict=True)]
        return RawCatalogue(frame, {"ad_id": "item_id", "title": title or "title"}, issues)

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        wanted = {"user_id": "user_id", "ad_id": "item_id", "timestamp": "timestamp"}
        for frame, issues, nbytes in read_rows(self.inter, wanted, chunk_rows, header_name=_base):
            frame["action"] = "click"
            yield EventChunk(frame, nbytes, issues)


def _describe(title: str, attributes: list[str]) -> str:
    genres = [a for a in attributes if not a.startswith("year:")]
    years = [a.removeprefix("year:") for a in attributes if a.startswith("year:")]
    text = title.strip()
    if years:
        text += f" ({years[0]})"
    if genres:
        text += ". " + ", ".join(genres)
    return text
