"""Full-ranking top-K metrics, as in SASRec / S3-Rec / TIGER.

With one held-out target per user, Recall@K equals HR@K: the share of users whose target is in
the top K. NDCG@K = 1 / log2(rank + 2) for a hit at 0-based ``rank``, else 0 (the ideal DCG is 1).
Metrics take *ranked lists of items* rather than score matrices, so a generative model whose
Semantic IDs collide must first resolve them to items: a list that names one item twice counts
it once (later copies are ignored), never as two chances.
"""

from __future__ import annotations

import numpy as np
import torch

KS: tuple[int, ...] = (5, 10, 20)


def dedupe_ranked(ranked: np.ndarray) -> np.ndarray:
    """Replace repeated items in each row (after their first place) by -1. Shape kept (n, K)."""
    ranked = np.asarray(ranked).copy()
    order = np.argsort(ranked, axis=1, kind="stable")
    sorted_vals = np.take_along_axis(ranked, order, axis=1)
    repeat = np.zeros_like(ranked, dtype=bool)
    repeat_sorted = np.zeros_like(ranked, dtype=bool)
    repeat_sorted[:, 1:] = sorted_vals[:, 1:] == sorted_vals[:, :-1]
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    ranked[repeat] = -1
    return ranked


def hit_ranks(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its (deduplicated) list; K (the list length) when absent."""
    ranked = dedupe_ranked(ranked)
    hits = ranked == np.asarray(targets)[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1), ranked.shape[1])


def ranking_metrics(ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Recall@K, HR@K (the same with one target) and NDCG@K for ranked lists (n, >= max(ks))."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or ranked.shape[0] != len(targets):
        raise ValueError(f"ranked must be (n, K) with n = len(targets) = {len(targets)}, got {ranked.shape}")
    if ranked.shape[1] < max(ks):
        raise ValueError(f"ranked lists have {ranked.shape[1]} items, fewer than K = {max(ks)}")
    rank = hit_ranks(ranked, targets)
    out = {}
    for k in ks:
        hit = rank < k
        out[f"recall@{k}"] = float(hit.mean()) if len(rank) else 0.0
        out[f"hr@{k}"] = out[f"recall@{k}"]
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()) if len(rank) else 0.0
    return out


TAAC_WEIGHTS: tuple[float, float] = (0.31, 0.69)
"""TAAC 2025 (TencentGR) score = 0.31 * HR@10 + 0.69 * NDCG@10."""
TAAC_ACTION_WEIGHT: dict[int, float] = {0: 1.0, 1: 1.0, 2: 2.0}
"""Weight of a case by its target's action code (impression, click, conversion) in the action-weighted
score. The final round of TAAC 2025 weighs conversion targets more than clicks; the exact factor is not
in any source reachable here, so 2.0 is this project's choice (pass ``action_weight`` to use another)."""


def taac_score(ranked: np.ndarray, targets: np.ndarray, target_action: np.ndarray | None = None,
               action_weight: dict[int, float] | None = None) -> dict[str, float]:
    """The TAAC 2025 score of ranked lists (n, >= 10): ``taac@10`` = 0.31 HR@10 + 0.69 NDCG@10 over all
    cases and, with ``target_action`` (the action code of each target), ``taac_weighted@10``, the same
    with each case weighted by its target's action (TAAC_ACTION_WEIGHT: conversions count more)."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or ranked.shape[1] < 10:
        raise ValueError(f"ranked must be (n, >= 10) for the TAAC score, got {ranked.shape}")
    rank = hit_ranks(ranked[:, :10], targets)
    hit = rank < 10
    gain = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    a, b = TAAC_WEIGHTS
    out = {"taac@10": float(a * hit.mean() + b * gain.mean()) if len(rank) else 0.0}
    if target_action is not None:
        weights = action_weight or TAAC_ACTION_WEIGHT
        w = np.array([weights.get(int(x), 1.0) for x in np.asarray(target_action).tolist()], dtype=float)
        total = w.sum()
        out["taac_weighted@10"] = float(a * (w * hit).sum() / total + b * (w * gain).sum() / total) if total else 0.0
    return out


def taac_columns(metrics: dict[str, float], target_action: np.ndarray | None) -> str:
    """``"  TAAC 0.1234  wTAAC 0.1301"`` for a results line when the targets are action-typed (some are
    conversions, as in TencentGR); empty otherwise."""
    if target_action is None or "taac@10" not in metrics or not (np.asarray(target_action) == 2).any():
        return ""
    return f"  TAAC {metrics['taac@10']:.4f}  wTAAC {metrics.get('taac_weighted@10', float('nan')):.4f}"


def topk_from_scores(scores: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k item indices from scores (B, N+1), column 0 = padding, never returned.

    ``exclude`` (B, L) item indices to rule out (e.g. the history); 0 entries are ignored.
    """
    scores = scores.clone()
    scores[:, 0] = -torch.inf
    if exclude is not None:
        scores.scatter_(1, exclude, -torch.inf)
        scores[:, 0] = -torch.inf
    return torch.topk(scores, k=min(k, scores.shape[1] - 1), dim=1).indices
