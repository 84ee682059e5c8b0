"""The one contract every Semantic-ID tokenizer meets, and its safetensors + JSON persistence.

A tokenizer maps item vectors (n, d) to codes (n, L): L levels, each a token in [0, codebook_size).
On disk a tokenizer is a folder with ``tokenizer.json`` (method, config, small metadata) and
``tokenizer.safetensors`` (its weights); :func:`load_tokenizer` picks the class from ``method``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from safetensors.numpy import load_file, save_file

from genads.io import atomic_write, atomic_write_text

CONFIG_FILE = "tokenizer.json"
WEIGHTS_FILE = "tokenizer.safetensors"


@runtime_checkable
class Tokenizer(Protocol):
    """Semantic-ID tokenizer: fit on item vectors, encode new ones, persist."""

    method: str
    """Registry name ("rq-kmeans", "rq-vae", "e2e")."""
    levels: int
    codebook_size: int

    def fit(self, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
        """Learn the codebooks from (n, d) vectors; return their codes (n, L) int64."""
        ...

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes (n, L) int64 for new (n, d) vectors (deterministic, no training)."""
        ...

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(named arrays for safetensors, JSON-able metadata incl. the config)."""
        ...


class ShapeFromConfig:
    """``levels`` and ``codebook_size`` read from the tokenizer's ``config`` (every config has both)."""

    config: Any

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size


def check_vectors(vectors: np.ndarray, name: str = "vectors", dim: int | None = None) -> np.ndarray:
    """(n, d) finite float32, C-contiguous; errors name the argument."""
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n_items, dim), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} have {x.shape[1]} dims, the tokenizer was fitted on {dim}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} has NaN or infinite values")
    return x


def save_tokenizer(tokenizer: Tokenizer, folder: str | Path) -> Path:
    """Write tokenizer.json + tokenizer.safetensors into ``folder`` (each file atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, meta = tokenizer.state()
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(arrays, tmp))
    record = {"method": tokenizer.method, "levels": tokenizer.levels,
              "codebook_size": tokenizer.codebook_size, **meta}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """Read a tokenizer folder written by :func:`save_tokenizer`.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: if ``method`` in tokenizer.json is unknown.
    """
    from genads.tokenize import TOKENIZERS

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: is {folder} a tokenizer folder?")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    method = meta.get("method")
    if method not in TOKENIZERS:
        raise ValueError(f"{folder / CONFIG_FILE}: method={method!r} is not one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[method].from_state(load_file(str(folder / WEIGHTS_FILE)), meta)
