"""Collaborative item vectors from the event log: windowed co-occurrence -> PPMI -> truncated SVD.

This is the closed form of item2vec (skip-gram with negative sampling factorises a shifted PMI
matrix, Levy & Goldberg 2014), and it runs in seconds on a CPU: items that appear close together
in user sequences get similar vectors. Items never seen in a sequence get zero vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class CollabConfig:
    """Co-occurrence window and factorisation size."""

    dim: int = 64
    """Output dimension (SVD rank)."""
    window: int = 3
    """Items up to this many positions apart in a sequence co-occur."""
    alpha: float = 0.75
    """Context-distribution smoothing exponent of PPMI (word2vec's 0.75)."""
    n_iter: int = 4
    """Power iterations of the randomised SVD."""

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim={self.dim} must be >= 1")
        if self.window < 1:
            raise ValueError(f"window={self.window} must be >= 1")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha={self.alpha} must be in (0, 1]")
        if self.n_iter < 0:
            raise ValueError(f"n_iter={self.n_iter} must be >= 0")


def cooccurrence_pairs(sequences: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, weights) of symmetric co-occurrences; weight 1/distance, self-pairs dropped."""
    if not sequences:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    rows, cols, weights = [], [], []
    for offset in range(1, window + 1):
        same = owner[offset:] == owner[:-offset]
        a, b = items[:-offset][same], items[offset:][same]
        keep = a != b
        a, b = a[keep], b[keep]
        rows += [a, b]
        cols += [b, a]
        weights += [np.full(2 * len(a), 1.0 / offset, dtype=np.float32)]
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def ppmi(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_items: int, alpha: float) -> torch.Tensor:
    """Sparse (n_items, n_items) positive PMI matrix with smoothed context counts."""
    counts = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(weights.astype(np.float64)), (n_items, n_items),
        check_invariants=True,
    ).coalesce()
    idx, val = counts.indices(), counts.values()
    total = val.sum()
    row_sum = torch.zeros(n_items, dtype=torch.float64).index_add_(0, idx[0], val)
    ctx = torch.zeros(n_items, dtype=torch.float64).index_add_(0, idx[1], val) ** alpha
    ctx_total = ctx.sum()
    pmi = torch.log(val / total) - torch.log(row_sum[idx[0]] / total) - torch.log(ctx[idx[1]] / ctx_total)
    keep = pmi > 0
    return torch.sparse_coo_tensor(idx[:, keep], pmi[keep].float(), (n_items, n_items), check_invariants=True).coalesce()


def collaborative_vectors(
    sequences: list[np.ndarray], n_items: int, config: CollabConfig | None = None, seed: int = 0
) -> np.ndarray:
    """Item vectors (n_items, dim) from user sequences of item positions in [0, n_items).

    Args:
        sequences: per user, item positions (catalogue rows) in time order.
        n_items: number of items (rows of the output).
        config: window, rank and smoothing.
        seed: seeds the randomised SVD.

    Returns:
        (n_items, dim) float32, U * sqrt(S) of the PPMI matrix; zero rows for unseen items.
    """
    config = config or CollabConfig()
    for s in sequences:
        if len(s) and (int(np.min(s)) < 0 or int(np.max(s)) >= n_items):
            raise ValueError(f"sequences hold item positions outside [0, {n_items})")
    rows, cols, weights = cooccurrence_pairs(sequences, config.window)
    out = np.zeros((n_items, config.dim), dtype=np.float32)
    if len(rows) == 0:
        return out
    matrix = ppmi(rows, cols, weights, n_items, config.alpha)
    rank = min(config.dim, n_items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u, s, _ = torch.svd_lowrank(matrix, q=rank, niter=config.n_iter)
    out[:, :rank] = (u * s.sqrt()).numpy()
    return out


def sequences_from_events(events: pd.DataFrame, ad_ids: np.ndarray, actions: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """Per user, the catalogue rows of their events with ``action`` in ``actions``, in time order.

    Args:
        events: the event log (user_id, ad_id, timestamp, action), as in events.parquet.
        ad_ids: the catalogue's ad_id column (row i has ad_ids[i]).
        actions: action codes that count (default click and conversion).
    """
    order = np.argsort(ad_ids, kind="stable")
    ev = events[events["action"].isin(actions)].sort_values(["user_id", "timestamp"], kind="stable")
    pos = np.searchsorted(ad_ids[order], ev["ad_id"].to_numpy())
    pos = np.clip(pos, 0, max(len(ad_ids) - 1, 0))
    known = ad_ids[order][pos] == ev["ad_id"].to_numpy() if len(ad_ids) else np.zeros(len(ev), dtype=bool)
    rows, users = order[pos][known], ev["user_id"].to_numpy()[known]
    _, starts = np.unique(users, return_index=True)
    return np.split(rows, starts[1:]) if len(rows) else []


def cooccurring_pairs(sequences: list[np.ndarray], window: int = 3, max_pairs: int = 2_000_000) -> np.ndarray:
    """Distinct (a, b) item pairs (both orders) within ``window`` positions: (m, 2) int64."""
    rows, cols, _ = cooccurrence_pairs(sequences, window)
    pairs = np.unique(np.stack([rows, cols], axis=1), axis=0) if len(rows) else np.zeros((0, 2), dtype=np.int64)
    return pairs[:max_pairs]
