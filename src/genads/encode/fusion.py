"""Fusion of several item-vector sources into one matrix."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero). Shape kept (n, d), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def fuse(sources: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """L2-normalise each source, scale it by sqrt(weight) and concatenate.

    With this scaling the squared distance between two fused vectors is the weighted sum of the
    sources' squared (cosine) distances, so ``weights`` say how much each source counts.

    Args:
        sources: name -> (n, d_name) vectors, all with the same n.
        weights: name -> weight >= 0 (missing names weigh 1).

    Returns:
        (n, sum of d_name) float32.
    """
    if not sources:
        raise ValueError("fuse: sources is empty: give at least one item-vector source")
    weights = weights or {}
    unknown = set(weights) - set(sources)
    if unknown:
        raise ValueError(f"fuse: weights name unknown source(s) {sorted(unknown)}; sources: {sorted(sources)}")
    sizes = {name: len(v) for name, v in sources.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"fuse: sources have different item counts {sizes}")
    parts = []
    for name, vectors in sources.items():
        w = float(weights.get(name, 1.0))
        if w < 0:
            raise ValueError(f"fuse: weights[{name!r}]={w} must be >= 0")
        parts.append(l2_normalize(vectors) * np.float32(np.sqrt(w)))
    return np.concatenate(parts, axis=1)
