"""Precomputed item vectors (the catalogue's ``embedding`` column, TencentGR ``mm_emb`` style)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def precomputed_vectors(catalogue: pd.DataFrame, column: str = "embedding") -> np.ndarray:
    """Stack the catalogue's precomputed vectors into (n, d) float32.

    Raises:
        ValueError: naming the column and the first ad_id whose vector is missing or has another size.
    """
    if column not in catalogue.columns:
        raise ValueError(f"catalogue has no {column!r} column (columns: {list(catalogue.columns)})")
    values = catalogue[column].tolist()
    ad_ids = catalogue["ad_id"].tolist() if "ad_id" in catalogue.columns else list(range(len(values)))
    dim = None
    for ad, v in zip(ad_ids, values, strict=True):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise ValueError(f"catalogue column {column!r}: ad_id {ad} has no vector; every ad needs one")
        dim = len(v) if dim is None else dim
        if len(v) != dim:
            raise ValueError(f"catalogue column {column!r}: ad_id {ad} has {len(v)} values, the first ad has {dim}")
    if dim is None:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(np.stack([np.asarray(v, dtype=np.float32) for v in values]), dtype=np.float32)
