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
re-ranking never lowers the modelled value. A reward model with ``use_score`` also reads each
candidate's generator score (the beam's ``Slate.logprob``), carried along with the ad. Cost: S forward passes over B × C slates, then up to
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
    scores: np.ndarray | None = None
    """(B, S) the chosen ads' generator scores, when given."""


def slate_value(pctr: np.ndarray | torch.Tensor, bids, cfg: RerankConfig):
    """sum over the last axis of pCTR × value per click (works on arrays and tensors)."""
    per_click = (1.0 - cfg.revenue_weight) * cfg.bid_ref + cfg.revenue_weight * bids
    return (pctr * per_click).sum(-1)


def score_slates(model: SlateRewardModel, slates: np.ndarray, sids: np.ndarray, bids: np.ndarray,
                 cfg: RerankConfig, history: np.ndarray | None = None,
                 scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pCTR (N, S), value (N,)) of given slates (item indices, <= 0 = empty slot)."""
    s, b, v = slate_inputs(slates, sids, bids)
    hs, hv = _history(history, sids, model)
    p = model.predict(s, b, v, hs, hv, _scores(scores, model))[..., 0]
    return p.numpy(), slate_value(p, b, cfg).numpy()


def _history(history: np.ndarray | None, sids: np.ndarray, model: SlateRewardModel):
    if not model.config.use_history:
        return None, None
    if history is None:
        raise ValueError("this reward model uses the history: pass history=")
    h = np.asarray(history, dtype=np.int64)
    return torch.as_tensor(np.asarray(sids, dtype=np.int64)[np.maximum(h, 0)]), torch.as_tensor(h > 0)


def _scores(scores: np.ndarray | None, model: SlateRewardModel) -> torch.Tensor | None:
    if not model.config.use_score:
        return None
    if scores is None:
        raise ValueError("this reward model reads generator scores: pass scores=")
    return torch.as_tensor(np.nan_to_num(np.asarray(scores, dtype=np.float32), neginf=-1e4))


def _pool_order(candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, dead after ordering), both (B, C): live candidates first (pool order kept), then
    repeated ads and empties (<= 0)."""
    c = np.asarray(candidates, dtype=np.int64)
    dead = c <= 0
    for b, row in enumerate(c):
        _, first = np.unique(row, return_index=True)
        dup = np.ones(len(row), dtype=bool)
        dup[first] = False
        dead[b] |= dup
    order = np.argsort(dead, axis=1, kind="stable")
    return order, np.take_along_axis(dead, order, 1)


def rerank(model: SlateRewardModel, candidates: np.ndarray, sids: np.ndarray, bids: np.ndarray, cfg: RerankConfig,
           history: np.ndarray | None = None, scores: np.ndarray | None = None) -> Reranked:
    """Choose and order ``cfg.slate_size`` of each row's candidates to maximise the modelled value.

    Args:
        candidates: (B, C) item indices, best first (the beam); <= 0 = no candidate.
        sids: (n_items + 1, L); bids: (n_items + 1,) by item index.
        history: (B, H) left-padded item indices, for a model with ``use_history``.
        scores: (B, C) generator scores of the candidates, for a model with ``use_score``.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    sc = np.zeros(cand.shape, dtype=np.float32) if scores is None else np.asarray(scores, dtype=np.float32)
    order, dead = _pool_order(cand)
    pool = np.where(dead, -1, np.take_along_axis(cand, order, 1))
    pool_sc = np.where(dead, 0.0, np.take_along_axis(sc, order, 1))
    B = cfg.batch_size
    out = [_rerank_batch(model, pool[lo:lo + B], pool_sc[lo:lo + B], sids, bids, cfg,
                         None if history is None else np.asarray(history)[lo:lo + B], scores is not None)
           for lo in range(0, len(pool), B)]
    if not out:
        S = cfg.slate_size
        return Reranked(np.zeros((0, S), np.int64), np.zeros((0, S)), np.zeros(0), np.zeros(0))
    cat = {f: np.concatenate([getattr(r, f) for r in out]) for f in ("ads", "pctr", "value", "pool_value")}
    return Reranked(**cat, scores=None if scores is None else np.concatenate([r.scores for r in out]))


class _Scorer:
    """Values of slates given as column indices into a batch's pool (column C = empty slot)."""

    def __init__(self, model, pool, pool_sc, sids, bids, cfg, history, with_scores: bool) -> None:
        B = len(pool)
        self.items = np.concatenate([pool, np.full((B, 1), -1)], axis=1)
        self.sc = np.concatenate([pool_sc, np.zeros((B, 1), np.float32)], axis=1)
        self.model, self.sids, self.bids, self.cfg = model, sids, bids, cfg
        self.hs, self.hv = _history(history, sids, model)
        if model.config.use_score and not with_scores:
            raise ValueError("this reward model reads generator scores: pass scores=")

    def take(self, cols: np.ndarray, of: np.ndarray) -> np.ndarray:
        """Gather per-row values ``of`` (B, C + 1) at column indices (B, ...)."""
        B = len(cols)
        return np.take_along_axis(of, cols.reshape(B, -1), 1).reshape(cols.shape)

    def __call__(self, cols: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """cols (B, M, S) -> (pCTR (B * M, S) tensor, value (B, M))."""
        B, M, S = cols.shape
        s, b, v = slate_inputs(self.take(cols, self.items).reshape(B * M, S), self.sids, self.bids)
        h = (self.hs.repeat_interleave(M, 0), self.hv.repeat_interleave(M, 0)) if self.hs is not None else (None, None)
        sc = torch.as_tensor(self.take(cols, self.sc).reshape(B * M, S)) if self.model.config.use_score else None
        p = self.model.predict(s, b, v, *h, sc)[..., 0]
        return p, slate_value(p, b, self.cfg).reshape(B, M).numpy()


@torch.no_grad()
def _rerank_batch(model: SlateRewardModel, pool: np.ndarray, pool_sc: np.ndarray, sids: np.ndarray,
                  bids: np.ndarray, cfg: RerankConfig, history: np.ndarray | None, with_scores: bool) -> Reranked:
    B, C = pool.shape
    S = cfg.slate_size
    score = _Scorer(model, pool, pool_sc, sids, bids, cfg, history, with_scores)
    cols = np.where(pool > 0, np.arange(C)[None], C)  # live columns first (pool order), then C = empty
    base = np.concatenate([cols[:, :S], np.full((B, max(0, S - C)), C)], axis=1)
    chosen = np.zeros((B, 0), dtype=np.int64)
    rem = cols.copy()
    for k in range(S):
        R = rem.shape[1]
        f = S - k - 1
        fill = np.arange(f)[None, :] + (np.arange(f)[None, :] >= np.arange(R)[:, None])  # (R, f): skip column j
        fill_cols = np.where(fill < R, rem[:, np.minimum(fill, R - 1)], C)  # (B, R, f)
        slates = np.concatenate([np.repeat(chosen[:, None], R, axis=1), rem[:, :, None], fill_cols], axis=2)
        value = np.where(rem < C, score(slates)[1], -np.inf)
        pick = value.argmax(axis=1)
        picked = np.where(np.isfinite(value.max(axis=1)), rem[np.arange(B), pick], C)
        chosen = np.concatenate([chosen, picked[:, None]], axis=1)
        keep = np.ones_like(rem, dtype=bool)
        keep[np.arange(B), pick] = False
        rem = rem[keep].reshape(B, R - 1) if R > 1 else np.full((B, 1), C, dtype=np.int64)
    chosen = _polish(score, chosen, C, cfg)
    p, value = score(np.stack([chosen, base], axis=1))
    p = p.reshape(B, 2, S).numpy()
    better = value[:, 0] >= value[:, 1]
    final = np.where(better[:, None], chosen, base)
    return Reranked(score.take(final, score.items), np.where(better[:, None], p[:, 0], p[:, 1]),
                    value.max(axis=1), value[:, 1], score.take(final, score.sc) if with_scores else None)


def _polish(score: _Scorer, slates: np.ndarray, empty: int, cfg: RerankConfig) -> np.ndarray:
    """Apply the best improving pairwise swap of filled slots per row, until none improves."""
    B, S = slates.shape
    i, j = np.triu_indices(S, k=1)
    if not len(i):
        return slates
    perm = np.tile(np.arange(S), (len(i) + 1, 1))  # row 0: unchanged
    perm[np.arange(1, len(i) + 1), i], perm[np.arange(1, len(i) + 1), j] = j, i
    for _ in range(cfg.swap_passes):
        moved = slates[:, perm]  # (B, M, S)
        value = score(moved)[1]
        ok = np.concatenate([np.ones((B, 1), bool), (slates[:, i] != empty) & (slates[:, j] != empty)], axis=1)
        value = np.where(ok, value, -np.inf)
        best = value.argmax(axis=1)
        best = np.where(value[np.arange(B), best] > value[:, 0] + 1e-7 * np.abs(value[:, 0]), best, 0)
        if not best.any():
            break
        slates = moved[np.arange(B), best]
    return slates
