"""Item vectors for Semantic IDs: text (offline MiniLM), attributes, collaborative, precomputed, fused."""

from __future__ import annotations

from genads.encode.attributes import multi_hot
from genads.encode.collaborative import CollabConfig, collaborative_vectors
from genads.encode.fusion import fuse, l2_normalize
from genads.encode.precomputed import precomputed_vectors
from genads.encode.text import item_texts

__all__ = [
    "CollabConfig",
    "collaborative_vectors",
    "fuse",
    "item_texts",
    "l2_normalize",
    "multi_hot",
    "precomputed_vectors",
]
