"""Collision resolution: an extra level numbers the items that share an SID, so every SID is unique."""

from __future__ import annotations

import numpy as np


def disambiguate(codes: np.ndarray) -> np.ndarray:
    """Append a level: 0, 1, 2, ... over the items that share the same L codes (in row order).

    Args:
        codes: (n, L) int codes.

    Returns:
        (n, L + 1) int64 codes, all rows distinct. The extra level's vocabulary is
        ``max_bucket(codes)``; unique SIDs get 0.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-d (n_items, levels), got shape {codes.shape}")
    n = len(codes)
    extra = np.zeros(n, dtype=np.int64)
    if n:
        _, group = np.unique(codes, axis=0, return_inverse=True)
        group = group.reshape(-1)
        order = np.argsort(group, kind="stable")
        sorted_group = group[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
        run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
        extra[order] = np.arange(n) - run_start
    return np.concatenate([codes, extra[:, None]], axis=1)
