"""Simulated impressions and clicks for data sets that log only interactions (Beauty, the demo data).

Public recommendation logs record what users bought or reviewed, never what they were shown and
skipped, so a click model cannot be fitted to them. genads therefore *simulates* impression logs,
and says so wherever their numbers are reported:

* **What is shown.** Each impression is a slate of ``S`` ads drawn without replacement from a
  candidate pool (the slate model's beam, or popularity-weighted samples of the catalogue); with
  probability ``include_prob`` the user's held-out next ad (the "relevant" ad) replaces one of them.
  The order is a uniformly random permutation: a randomised logging policy, so position and ad are
  independent in the log and the position effect can be learnt without confounding.
* **What is clicked** (position-based model, Craswell et al. 2008): P(click at slot k) =
  examination(k) × attractiveness(ad), drawn independently per slot. examination(k) =
  1 / (1 + k)^``position_decay`` (``position_decay = 0``: no position bias). attractiveness is
  ``relevant_ctr`` for the relevant ad and ``base_ctr`` × (popularity / mean popularity)^``popularity_power``
  (capped at ``relevant_ctr``) for every other ad.
* **What converts** (optional, ``conversion_rate`` > 0): a click converts with that probability
  (× ``relevant_cvr_boost`` for the relevant ad).

Every draw comes from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClickModel:
    """The position-based click model behind simulated impressions."""

    position_decay: float = 1.0
    """examination(k) = 1 / (1 + k)^position_decay; 0 = no position bias."""
    relevant_ctr: float = 0.5
    """Attractiveness of the user's relevant (held-out next) ad."""
    base_ctr: float = 0.03
    """Attractiveness of an ad of mean popularity that is not the relevant one."""
    popularity_power: float = 0.5
    conversion_rate: float = 0.0
    """P(conversion | click) for an ordinary ad; 0 = no conversions simulated."""
    relevant_cvr_boost: float = 3.0

    def __post_init__(self) -> None:
        if self.position_decay < 0:
            raise ValueError(f"ClickModel.position_decay={self.position_decay} must be >= 0")
        for name in ("relevant_ctr", "base_ctr", "conversion_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ClickModel.{name}={getattr(self, name)} must be in [0, 1]")
        if self.popularity_power < 0 or self.relevant_cvr_boost < 0:
            raise ValueError("ClickModel.popularity_power and relevant_cvr_boost must be >= 0")

    def examination(self, slate_size: int) -> np.ndarray:
        """(S,) probability that slot k is looked at."""
        return 1.0 / (1.0 + np.arange(slate_size)) ** self.position_decay

    def attractiveness(self, slates: np.ndarray, relevant: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """(N, S) click probability of each shown ad once examined (0 at empty slots, item <= 0).

        Args:
            slates: (N, S) item indices; relevant: (N,) or (N, R) relevant item indices per row
                (<= 0 = none); popularity: (n_items + 1,) interaction counts by item index.
        """
        slates = np.asarray(slates, dtype=np.int64)
        rel = np.asarray(relevant, dtype=np.int64).reshape(len(slates), -1)
        pop = np.asarray(popularity, dtype=float)
        scale = pop[1:].mean() if len(pop) > 1 and pop[1:].mean() > 0 else 1.0
        base = self.base_ctr * (np.maximum(pop, 0.0) / scale) ** self.popularity_power
        attract = np.minimum(base[np.maximum(slates, 0)], self.relevant_ctr)
        is_rel = (slates[..., None] == rel[:, None, :]).any(-1) & (slates > 0)
        attract = np.where(is_rel, self.relevant_ctr, attract)
        return np.where(slates > 0, attract, 0.0)

    def click_probability(self, slates: np.ndarray, relevant: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """(N, S) ground-truth P(click) per slot: examination × attractiveness."""
        slates = np.asarray(slates)
        return self.examination(slates.shape[1])[None] * self.attractiveness(slates, relevant, popularity)


@dataclass
class ImpressionLog:
    """Simulated impressions: slates shown, clicks and conversions per slot."""

    slates: np.ndarray
    """(N, S) item indices, slot 0 first."""
    clicks: np.ndarray
    """(N, S) 0/1."""
    conversions: np.ndarray | None
    """(N, S) 0/1 (only where clicked), or None when not simulated."""
    rows: np.ndarray
    """(N,) which request (row of the inputs) each impression belongs to."""
    scores: np.ndarray | None = None
    """(N, S) generator scores of the shown ads (the slate model's log P(SID | history)), if computed."""

    def __len__(self) -> int:
        return len(self.slates)


def impression_slates(pools: np.ndarray, relevant: np.ndarray, slate_size: int, include_prob: float,
                      rng: np.random.Generator) -> np.ndarray:
    """(N, S) randomly ordered slates: S distinct ads from each row's pool, the relevant ad put in
    (in place of a random slot) with probability ``include_prob``.

    Args:
        pools: (N, P) candidate item indices per request (<= 0 = none; P >= S live ads per row).
        relevant: (N,) the request's relevant item index (<= 0 = none).
    """
    pools = np.asarray(pools, dtype=np.int64)
    relevant = np.asarray(relevant, dtype=np.int64)
    if not 0.0 <= include_prob <= 1.0:
        raise ValueError(f"include_prob={include_prob} must be in [0, 1]")
    n, p = pools.shape
    if p < slate_size:
        raise ValueError(f"pools of {p} ads cannot fill slates of {slate_size}")
    keys = rng.random((n, p)) + (pools <= 0)  # empty pool entries sort last
    slates = np.take_along_axis(pools, np.argsort(keys, axis=1)[:, :slate_size], axis=1)
    if (slates <= 0).any():
        row = int(np.nonzero((slates <= 0).any(1))[0][0])
        raise ValueError(f"pools row {row} has fewer than slate_size={slate_size} live ads")
    put = (rng.random(n) < include_prob) & (relevant > 0) & ~(slates == relevant[:, None]).any(1)
    slot = rng.integers(0, slate_size, n)
    slates[put, slot[put]] = relevant[put]
    return slates


def simulate_clicks(slates: np.ndarray, relevant: np.ndarray, popularity: np.ndarray, model: ClickModel,
                    rng: np.random.Generator) -> ImpressionLog:
    """Draw clicks (and conversions) for shown slates under the position-based click model."""
    slates = np.asarray(slates, dtype=np.int64)
    p = model.click_probability(slates, relevant, popularity)
    clicks = (rng.random(p.shape) < p).astype(np.int8)
    conversions = None
    if model.conversion_rate > 0:
        rel = np.asarray(relevant, dtype=np.int64).reshape(len(slates), -1)
        is_rel = (slates[..., None] == rel[:, None, :]).any(-1)
        cvr = np.minimum(model.conversion_rate * np.where(is_rel, model.relevant_cvr_boost, 1.0), 1.0)
        conversions = (clicks.astype(bool) & (rng.random(p.shape) < cvr)).astype(np.int8)
    return ImpressionLog(slates, clicks, conversions, np.arange(len(slates)))


def popularity_pools(popularity: np.ndarray, n: int, size: int, rng: np.random.Generator,
                     power: float = 0.5) -> np.ndarray:
    """(n, size) distinct items per row drawn with probability ∝ (popularity + 1)^power (item 0 never)."""
    w = (np.asarray(popularity, dtype=float)[1:] + 1.0) ** power
    if size > len(w):
        raise ValueError(f"pool size {size} exceeds the {len(w)} items")
    out = np.empty((n, size), dtype=np.int64)
    for lo in range(0, n, 512):  # Efraimidis–Spirakis weighted sampling without replacement, in blocks
        keys = np.log(rng.random((min(512, n - lo), len(w)))) / w
        out[lo:lo + 512] = np.argpartition(-keys, size - 1, axis=1)[:, :size] + 1
    return out


def simulate_log(pools: np.ndarray, relevant: np.ndarray, popularity: np.ndarray, model: ClickModel, *,
                 slate_size: int, include_prob: float, repeats: int, seed: int) -> ImpressionLog:
    """``repeats`` simulated impressions per request: slates from ``pools``, clicks from ``model``."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(len(pools)), repeats)
    slates = impression_slates(np.asarray(pools)[rows], np.asarray(relevant)[rows], slate_size, include_prob, rng)
    log = simulate_clicks(slates, np.asarray(relevant)[rows], popularity, model, rng)
    log.rows = rows
    return log
