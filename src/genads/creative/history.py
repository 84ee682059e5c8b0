"""Which of a user's clicked ads condition the creative: recent, random, most-similar, coarse-to-fine.

Uni-AdGen (appendix, Table 2) compares three ways to pick N history items: random, the top-N by
product similarity, and "product similarity sampling" that keeps relevance *and* diversity. Ours:

* ``recent``: the user's last N items (what a system without sampling reads).
* ``random``: N items uniformly without replacement.
* ``similar``: the N items whose title is most similar to the product.
* ``coarse_to_fine``: coarse, draw a candidate pool of ``coarse_factor * N`` items without
  replacement with probability ∝ exp(similarity / temperature) (relevant items are likely, a few
  less similar ones still get in); fine, maximal marginal relevance over the pool,
  score = (1 - diversity) * sim(product, item) - diversity * max sim(item, already chosen).

Every strategy first applies the leakage guard: a history item whose title equals the target
title (case- and whitespace-insensitive) is dropped. Selected indices come back in their original
(time) order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES: tuple[str, ...] = ("random", "similar", "coarse_to_fine", "recent")


@dataclass(frozen=True)
class HistoryConfig:
    n: int = 10
    """How many history items to keep (Uni-AdGen: 10)."""
    strategy: str = "coarse_to_fine"
    """One of STRATEGIES."""
    coarse_factor: float = 2.0
    """coarse_to_fine: the candidate pool holds ceil(coarse_factor * n) items."""
    temperature: float = 0.1
    """coarse_to_fine: softmax temperature on cosine similarity for the coarse draw."""
    diversity: float = 0.3
    """coarse_to_fine: MMR weight on redundancy with the items already chosen (0 = most similar)."""

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n={self.n} must be >= 0")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r} must be one of {STRATEGIES}")
        if self.coarse_factor < 1:
            raise ValueError(f"coarse_factor={self.coarse_factor} must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if not 0 <= self.diversity <= 1:
            raise ValueError(f"diversity={self.diversity} must be in [0, 1]")


def _norm_title(title: str) -> str:
    return " ".join(title.lower().split())


def leakage_mask(titles: list[str], target_title: str | None) -> np.ndarray:
    """(H,) bool: True for history items that may be used (title differs from the target's)."""
    if not target_title:
        return np.ones(len(titles), dtype=bool)
    target = _norm_title(target_title)
    return np.array([_norm_title(t) != target for t in titles], dtype=bool)


def mmr(relevance: np.ndarray, item_vecs: np.ndarray, k: int, diversity: float) -> list[int]:
    """Greedy maximal marginal relevance over rows of ``item_vecs`` (N, D); returns k positions."""
    chosen: list[int] = []
    redundancy = np.full(len(relevance), -np.inf)
    for _ in range(min(k, len(relevance))):
        red = np.where(np.isfinite(redundancy), redundancy, 0.0)
        score = (1 - diversity) * relevance - diversity * red
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, item_vecs @ item_vecs[best])
    return chosen


def sample_history(product_vec: np.ndarray, history_vecs: np.ndarray, titles: list[str],
                   target_title: str | None, config: HistoryConfig, rng: np.random.Generator) -> np.ndarray:
    """Pick history items for one product.

    Args:
        product_vec: (D,) L2-normalised product embedding.
        history_vecs: (H, D) L2-normalised embeddings of the clicked ads' titles.
        titles: (H,) clicked-ad titles (for the leakage guard).
        target_title: the title being predicted, or None.

    Returns:
        (k,) int indices into the history, k = min(n, usable items), ascending (time order).
    """
    if len(titles) != len(history_vecs):
        raise ValueError(f"{len(titles)} titles for {len(history_vecs)} history vectors")
    usable = np.flatnonzero(leakage_mask(titles, target_title))
    k = min(config.n, len(usable))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    sims = history_vecs[usable] @ product_vec  # (U,)
    if config.strategy == "recent":
        picked = np.arange(len(usable) - k, len(usable))
    elif config.strategy == "random":
        picked = rng.choice(len(usable), size=k, replace=False)
    elif config.strategy == "similar":
        picked = np.argsort(-sims, kind="stable")[:k]
    else:
        pool_size = min(len(usable), int(np.ceil(config.coarse_factor * k)))
        logits = (sims - sims.max()) / config.temperature
        p = np.exp(logits) + 1e-12  # never exactly 0, so any pool size can be drawn
        p /= p.sum()
        pool = rng.choice(len(usable), size=pool_size, replace=False, p=p) if pool_size < len(usable) \
            else np.arange(len(usable))
        picked = pool[mmr(sims[pool], history_vecs[usable][pool], k, config.diversity)]
    return np.sort(usable[np.asarray(picked, dtype=np.int64)])
