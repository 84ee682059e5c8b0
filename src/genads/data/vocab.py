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
        if text.isdigit() and int(text) < MAX_ID:
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
