"""A content-addressed cache of item vectors: sha256(text) -> vector, one safetensors file per model.

The file holds ``keys`` (n, 32) uint8 digests and ``vectors`` (n, d) float32. Writes go to a temp
file in the same folder and are renamed into place, so a crash never leaves a torn cache.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from genads.io import atomic_write

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genads" / "text"
"""The MiniLM text-vector cache every command shares (``genads tokenize``, ``genads train --family parallel``):
content-addressed, so one encoding of a title serves every dataset and run that holds it."""


def content_key(text: str) -> bytes:
    """The 32-byte sha256 digest of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class VectorCache:
    """Vectors keyed by content hash, stored in ``folder/<name>.safetensors``."""

    def __init__(self, folder: str | Path, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"cache name {name!r} must be letters, digits, '_', '.' or '-'")
        self.path = Path(folder) / f"{name}.safetensors"
        self._index: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        if self.path.is_file():
            try:
                data = load_file(str(self.path))
            except Exception as e:
                raise ValueError(f"{self.path}: not a readable vector cache ({e}); delete it to rebuild") from e
            self._vectors = data["vectors"]
            self._index = {bytes(k): i for i, k in enumerate(data["keys"])}

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(found (n,) bool, vectors (n, d) with zeros where not found)."""
        rows = np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        dim = self._vectors.shape[1] if len(self._index) else 0
        out = np.zeros((len(keys), dim), dtype=np.float32)
        if found.any():
            out[found] = self._vectors[rows[found]]
        return found, out

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Add (or keep) vectors for ``keys`` and write the file atomically."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(self._index) and vectors.shape[1] != self._vectors.shape[1]:
            raise ValueError(f"{self.path}: cached vectors have {self._vectors.shape[1]} dims, new ones {vectors.shape[1]}")
        new = [i for i, k in enumerate(keys) if k not in self._index]
        new = list({keys[i]: i for i in new}.values())  # one row per distinct key
        if not new:
            return
        start = len(self._index)
        for j, i in enumerate(new):
            self._index[keys[i]] = start + j
        self._vectors = np.concatenate([self._vectors.reshape(start, vectors.shape[1]), vectors[new]])
        self._write()

    def _write(self) -> None:
        keys = np.frombuffer(b"".join(self._index), dtype=np.uint8).reshape(-1, 32)
        tensors = {"keys": np.ascontiguousarray(keys), "vectors": np.ascontiguousarray(self._vectors)}
        atomic_write(self.path, lambda tmp: save_file(tensors, tmp))
