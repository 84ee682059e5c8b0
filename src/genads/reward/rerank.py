"""Re-ranking a candidate pool into the slate the reward model values most.

The decoder returns a pool of C candidate ads per request (its beam, best first). Value of a slate
of S ads under the reward model::

    value = sum_k pCTR_k × ((1 - w) × bid_ref + w × bid_k)

``w = revenue_weight``: 1 is expected revenue when a click pays the bid (an upper bound on what an
auction's price would collect), 0 is expected clicks (× ``bid_ref`` so both ends are in money).

:func:`rerank` fills the slate greedily, slot by slot: at slot k every remaining candidate c is
tried there, the slate is completed with the remaining candidates in pool order, the reward model
scores every such full slate at once (it is permutation-aware, so the whole slate matters) and the
best c stays. Greedy-with-completion can leave two chosen ads in the wrong order (the completion it
compared against was not the final slate), so a polish follows: every pairwise swap of the chosen
slots is scored and the best improving one applied, until none improves (``swap_passes`` at most;
for a reward that is examination(slot) × value(ad) this reaches the exact optimum order). The
result is kept only where the model values it above the pool's own top-S in pool order, so
re-ranking never lowers the modelled value. Cost: S forward passes over B × C slates, then up to
``swap_passes`` over B × S(S-1)/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genads.reward.model import SlateRewardModel, slate_inputs


@dataclass(frozen=True)
class RerankConfig:
    slate_size: int = 10
    revenue_weight: float = 1.0
    """w: 1 = expected revenue (pCTR × bid), 0 = expected clicks × bid_ref."""
    bid_ref: float = 1.0
    """Money value of a click when w < 1 (e.g. the median bid)."""
    batch_size: int = 256
    """Requests per forward batch (each brings C slates)."""
    swap_passes: int = 3
    """Most rounds of best-pairwise-swap polishing after the greedy fill (0 = none)."""

    def __post_init__(self) -> None:
        if self.swap_passes < 0:
            raise ValueError(f"RerankConfig.swap_passes={self.swap_passes} must be >= 0")
        if self.slate_size < 1 or self.batch_size < 1:
            raise ValueError(f"RerankConfig: slate_size={self.slate_size} and batch_size={self.batch_size} must be >= 1")
        if not 0.0 <= self.revenue_weight <= 1.0:
            raise ValueError(f"RerankConfig.revenue_weight={self.revenue_weight} must be in [0, 1]")
        if self.bid_ref <= 0:
            raise ValueError(f"RerankConfig.bid_ref={self.bid_ref} must be > 0")


@dataclass
class Reranked:
    ads: np.ndarray
    """(B, S) item indices, slot 0 first (-1 where the pool ran out)."""
    pctr: np.ndarray
    """(B, S) the reward model's pCTR of each slot in this slate."""
    value: np.ndarray
    """(B,) modelled value of the slate."""
    pool_value: np.ndarray
    """(B,) modelled value of the pool's top-S in pool order."""


def slate_value(pctr: np.ndarray | torch.Tensor, bids, cfg: RerankConfig):
    """sum over the last axis of pCTR × value per click (works on arrays and tensors)."""
    per_click = (1.0 - cfg.revenue_weight) * cfg.bid_ref + cfg.revenue_weight * bids
    return (pctr * per_click).sum(-1)


def score_slates(model: SlateRewardModel, slates: np.ndarray, sids: np.ndarray, bids: np.ndarray,
                 cfg: RerankConfig, history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pCTR (N, S), value (N,)) of given slates (item indices, <= 0 = empty slot)."""
    s, b, v = slate_inputs(slates, sids, bids)
    hs, hv = _history(history, sids, model)
    p = model.predict(s, b, v, hs, hv)[..., 0]
    return p.numpy(), slate_value(p, b, cfg).numpy()


def _history(history: np.ndarray | None, sids: np.ndarray, model: SlateRewardModel):
    if not model.config.use_history:
        return None, None
    if history is None:
        raise ValueError("this reward model uses the history: pass history=")
    h = np.asarray(history, dtype=np.int64)
    return torch.as_tensor(np.asarray(sids, dtype=np.int64)[np.maximum(h, 0)]), torch.as_tensor(h > 0)


def _pool_order(candidates: np.ndarray) -> np.ndarray:
    """Live candidates first (pool order kept), empties (<= 0) last as -1; repeated ads dropped."""
    c = np.asarray(candidates, dtype=np.int64).copy()
    for row in c:
        _, first = np.unique(row, return_index=True)
        dup = np.ones(len(row), dtype=bool)
        dup[first] = False
        row[dup] = -1
    c[c <= 0] = -1
    order = np.argsort(c <= 0, axis=1, kind="stable")
    return np.take_along_axis(c, order, axis=1)


def rerank(model: SlateRewardModel, candidates: np.ndarray, sids: np.ndarray, bids: np.ndarray, cfg: RerankConfig,
           history: np.ndarray | None = None) -> Reranked:
    """Choose and order ``cfg.slate_size`` of each row's candidates to maximise the modelled value.

    Args:
        candidates: (B, C) item indices, best first (the beam); <= 0 = no candidate.
        sids: (n_items + 1, L); bids: (n_items + 1,) by item index.
        history: (B, H) left-padded item indices, for a model with ``use_history``.
    """
    pool = _pool_order(candidates)
    out = [_rerank_batch(model, pool[lo:lo + cfg.batch_size], sids, bids, cfg,
                         None if history is None else np.asarray(history)[lo:lo + cfg.batch_size])
           for lo in range(0, len(pool), cfg.batch_size)]
    if not out:
        S = cfg.slate_size
        return Reranked(np.zeros((0, S), np.int64), np.zeros((0, S)), np.zeros(0), np.zeros(0))
    return Reranked(*(np.concatenate([getattr(r, f) for r in out]) for f in ("ads", "pctr", "value", "pool_value")))


@torch.no_grad()
def _rerank_batch(model: SlateRewardModel, pool: np.ndarray, sids: np.ndarray, bids: np.ndarray,
                  cfg: RerankConfig, history: np.ndarray | None) -> Reranked:
    B, C = pool.shape
    S = cfg.slate_size
    hs, hv = _history(history, sids, model)
    pad = np.full((B, max(0, S - C)), -1, dtype=np.int64)
    base = np.concatenate([pool[:, :S], pad], axis=1)
    chosen = np.zeros((B, 0), dtype=np.int64)
    rem = pool.copy()
    for k in range(S):
        R = rem.shape[1]
        f = S - k - 1
        fill = np.arange(f)[None, :] + (np.arange(f)[None, :] >= np.arange(R)[:, None])  # (R, f): skip column j
        fill_items = np.where(fill < R, rem[:, np.minimum(fill, R - 1)], -1)  # (B, R, f)
        slates = np.concatenate([np.repeat(chosen[:, None], R, axis=1), rem[:, :, None], fill_items], axis=2)
        rep_h = (hs.repeat_interleave(R, 0), hv.repeat_interleave(R, 0)) if hs is not None else (None, None)
        s, b, v = slate_inputs(slates.reshape(B * R, S), sids, bids)
        value = slate_value(model.predict(s, b, v, *rep_h)[..., 0], b, cfg).reshape(B, R).numpy()
        value = np.where(rem > 0, value, -np.inf)
        pick = value.argmax(axis=1)
        picked = np.where(np.isfinite(value.max(axis=1)), rem[np.arange(B), pick], -1)
        chosen = np.concatenate([chosen, picked[:, None]], axis=1)
        keep = np.ones_like(rem, dtype=bool)
        keep[np.arange(B), pick] = False
        rem = rem[keep].reshape(B, R - 1) if R > 1 else np.full((B, 1), -1, dtype=np.int64)
    chosen = _polish(model, chosen, sids, bids, cfg, hs, hv)
    s, b, v = slate_inputs(np.concatenate([chosen, base], axis=0), sids, bids)
    both_h = (torch.cat([hs, hs]), torch.cat([hv, hv])) if hs is not None else (None, None)
    p = model.predict(s, b, v, *both_h)[..., 0]
    value = slate_value(p, b, cfg).numpy()
    better = value[:B] >= value[B:]
    ads = np.where(better[:, None], chosen, base)
    pctr = np.where(better[:, None], p[:B].numpy(), p[B:].numpy())
    return Reranked(ads, pctr, np.maximum(value[:B], value[B:]), value[B:])


def _polish(model: SlateRewardModel, slates: np.ndarray, sids: np.ndarray, bids: np.ndarray, cfg: RerankConfig,
            hs: torch.Tensor | None, hv: torch.Tensor | None) -> np.ndarray:
    """Apply the best improving pairwise swap of filled slots per row, until none improves."""
    B, S = slates.shape
    i, j = np.triu_indices(S, k=1)
    if not len(i):
        return slates
    perm = np.tile(np.arange(S), (len(i) + 1, 1))  # row 0: unchanged
    perm[np.arange(1, len(i) + 1), i], perm[np.arange(1, len(i) + 1), j] = j, i
    M = len(perm)
    rep_h = (hs.repeat_interleave(M, 0), hv.repeat_interleave(M, 0)) if hs is not None else (None, None)
    for _ in range(cfg.swap_passes):
        moved = slates[:, perm]  # (B, M, S)
        s, b, v = slate_inputs(moved.reshape(B * M, S), sids, bids)
        value = slate_value(model.predict(s, b, v, *rep_h)[..., 0], b, cfg).reshape(B, M).numpy()
        ok = np.concatenate([np.ones((B, 1), bool), (slates[:, i] > 0) & (slates[:, j] > 0)], axis=1)
        value = np.where(ok, value, -np.inf)
        best = value.argmax(axis=1)
        best = np.where(value[np.arange(B), best] > value[:, 0] + 1e-7 * np.abs(value[:, 0]), best, 0)
        if not best.any():
            break
        slates = moved[np.arange(B), best]
    return slates
