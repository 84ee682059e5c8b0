"""Ids as users have them: a per-dataset vocabulary from string ids to internal integer indices and back.

A plain non-negative integer id below ``MAX_ID`` (2**62) is its own index, so datasets with integer ids
(Amazon, RecBole, TencentGR) are stored exactly as before. Every other id (``u1``, a hashed device id,
``ad-8f3a…``) gets the index ``MAX_ID + k``, ``k`` counting the distinct string ids of its kind in the
order the import first accepted them; the same input therefore always gives the same indices. The
vocabulary is kept in the dataset folder (``ids.parquet``: kind, id, index), and every output that
shows ids (recommend, the serving bundle and API, the served log) maps indices back with
:meth:`IdVocabulary.label`.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VOCAB_FILE = "ids.parquet"
ID_KINDS: tuple[str, ...] = ("user", "ad", "advertiser")
MAX_ID = 2**62
"""Integer ids are below it; string ids get indices from it up (int64 holds 2**62 more)."""
MAX_ID_CHARS = 256
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_PADDED = re.compile(r"^(\+[0-9]+|0[0-9]+)$")
"""Integers written with a leading zero or plus (``0042``, ``+123``): string ids kept exactly as written, so they
never merge with the integer id ``42`` or ``123`` (and a zero-padded SKU keeps its padding)."""


def is_integer_id_text(text: str) -> bool:
    """True for the canonical decimal of an integer id: ASCII digits, no sign, no leading zero (``0`` itself)."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0") and int(text) < MAX_ID


_NOT_IDS = frozenset({"nan", "none", "null", "undefined", "inf", "+inf", "-inf", "infinity", "true", "false"})
"""Words a broken column writes for a missing or non-id value (compared in lower case)."""
_BAD_CATEGORIES = {"Cc": "a control character", "Cf": "a format character (e.g. a direction override)",
                   "Zl": "a line separator", "Zp": "a paragraph separator", "Cs": "a lone surrogate",
                   "Cn": "an unassigned code point"}


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a string id, or None when it can: the one rule shared by every importer and the
    serving API, both of which apply it to the text with its outer whitespace trimmed.

    A string id is 1-256 characters, not blank, holds no control, format (RTL overrides, zero-width),
    line/paragraph separator, surrogate or unassigned characters, no ``"`` or ``\\`` and does not open
    with ``{`` or ``[`` (JSON fragments), is not a number (``12``, ``1.5e3``; Unicode digits such as
    ``"²"`` or ``"①"`` included; but an integer written with a leading zero or plus, ``0042`` or ``+123``, is a
    string id kept as written) and is not a word standing for a missing value (``nan``, ``None``, ``null``).
    Integer ids are numbers, not strings (0 <= id < 2**62)."""
    if not isinstance(text, str) or not text or text.isspace():
        return "must not be blank"
    if len(text) > MAX_ID_CHARS:
        return f"must be at most {MAX_ID_CHARS} characters"
    if text != text.strip():
        return "must not start or end with whitespace"
    for ch in text:
        bad = _BAD_CATEGORIES.get(unicodedata.category(ch))
        if bad is not None:
            return f"must not hold {bad} (U+{ord(ch):04X})"
    if '"' in text or "\\" in text or text[0] in "{[":
        return 'must not hold " or \\ or open with { or [ (a JSON fragment)'
    if _PADDED.match(text):  # 0042, +123: the user's id as written, not the number 42 or 123
        return None
    if _NUMBER.match(text) or text.isnumeric() or text.lstrip("+-").replace(".", "", 1).isnumeric():
        return "a number is not a string id: send it as an integer (0 <= id < 2**62)"
    if text.lower() in _NOT_IDS:
        return f"{text!r} stands for a missing value, not an id"
    return None


_SCHEMA = pa.schema([pa.field("kind", pa.string()), pa.field("id", pa.string()), pa.field("index", pa.int64())])


class IdVocabulary:
    """String id <-> int64 index, per kind ("user", "ad", "advertiser")."""

    def __init__(self) -> None:
        self._index: dict[str, dict[str, int]] = {k: {} for k in ID_KINDS}
        self._ids: dict[str, list[str]] = {k: [] for k in ID_KINDS}

    def __len__(self) -> int:
        return sum(len(v) for v in self._ids.values())

    def size(self, kind: str) -> int:
        return len(self._ids[kind])

    def encode(self, kind: str, ids: list[str] | np.ndarray) -> np.ndarray:
        """Indices of string ``ids``, adding the new ones in the order given."""
        table, names = self._index[kind], self._ids[kind]
        out = np.empty(len(ids), dtype=np.int64)
        for i, s in enumerate(ids):
            idx = table.get(s)
            if idx is None:
                idx = table[s] = MAX_ID + len(names)
                names.append(s)
            out[i] = idx
        return out

    def lookup(self, kind: str, ids: list[str] | np.ndarray) -> np.ndarray:
        """Indices of string ``ids``; -1 for an id the vocabulary does not hold (nothing is added)."""
        table = self._index[kind]
        return np.fromiter((table.get(s, -1) for s in ids), dtype=np.int64, count=len(ids))

    def index_of(self, kind: str, value: int | str) -> int | None:
        """The index of one user-facing id (an int, or a string as the input had it); None if unknown."""
        if isinstance(value, int | np.integer):
            return int(value) if 0 <= value < MAX_ID else None
        text = str(value).strip()
        if is_integer_id_text(text):  # "42" is the integer id 42; "0042" is a string id of its own
            return int(text)
        return self._index[kind].get(text)

    def label(self, kind: str, index: int) -> int | str:
        """The id as the user gave it: the integer itself, or the string from the vocabulary."""
        index = int(index)
        if index < MAX_ID:
            return index
        k = index - MAX_ID
        names = self._ids[kind]
        if k >= len(names):
            raise KeyError(f"{kind} index {index} is not in the dataset's id vocabulary ({VOCAB_FILE})")
        return names[k]

    def labels(self, kind: str, indices: np.ndarray | list[int]) -> list[int | str]:
        return [self.label(kind, i) for i in np.asarray(indices, dtype=np.int64).tolist()]

    def to_frame(self) -> pd.DataFrame:
        rows = [(k, s, MAX_ID + i) for k in ID_KINDS for i, s in enumerate(self._ids[k])]
        return pd.DataFrame(rows, columns=["kind", "id", "index"]).astype({"index": np.int64})

    def save(self, folder: str | Path) -> Path | None:
        """Write ``folder/ids.parquet`` (only when there are string ids); returns its path or None."""
        if not len(self):
            return None
        path = Path(folder) / VOCAB_FILE
        pq.write_table(pa.Table.from_pandas(self.to_frame(), schema=_SCHEMA, preserve_index=False), path)
        return path

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, where: str = VOCAB_FILE) -> IdVocabulary:
        vocab = cls()
        for kind, group in frame.groupby("kind", sort=False):
            if kind not in ID_KINDS:
                raise ValueError(f"{where}: unknown id kind {kind!r} (expected one of {ID_KINDS})")
            group = group.sort_values("index")
            expected = MAX_ID + np.arange(len(group))
            if not np.array_equal(group["index"].to_numpy(dtype=np.int64), expected):
                raise ValueError(f"{where}: {kind} indices are not {MAX_ID}..{MAX_ID}+{len(group) - 1} in order")
            vocab.encode(kind, group["id"].astype(str).tolist())
        return vocab

    @classmethod
    def load(cls, folder: str | Path) -> IdVocabulary:
        """The vocabulary of a dataset (or bundle) folder; empty when it has only integer ids."""
        path = Path(folder) / VOCAB_FILE
        if not path.is_file():
            return cls()
        return cls.from_frame(pd.read_parquet(path), str(path))
