"""Bidders that learn from bandit feedback (AuctionGym's model), beside the best-responders of bidders.py.

AuctionGym (Jeunen, Murphy & Allison 2022, "Learning to bid with AuctionGym", AdKDD) lets a bidder learn
how far to shade its value from what it observes of its own auctions only: its wins, its prices and its
clicks, never the others' bids. Here each learning advertiser keeps one arm per bid multiplier of a grid
(its bid per click is ``value x multiplier``); after every round it observes the utility it got (value of
its clicks minus what it paid) and its spend, and the next round plays the arm of highest mean utility so
far, or, with probability ``epsilon_t = epsilon / (1 + t / decay)``, a random arm (decaying epsilon-greedy).
In a stationary market its arm, hence its spend, settles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LearningBidderConfig:
    share: float = 0.2
    """Share of advertisers that learn their bid multiplier (the others bid their value per click)."""
    grid: tuple[float, ...] = (0.4, 0.55, 0.7, 0.85, 1.0)
    """Bid multipliers (arms)."""
    epsilon: float = 0.3
    decay: float = 20.0
    """Rounds over which exploration halves."""

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1:
            raise ValueError(f"share={self.share} must be in [0, 1]")
        if not self.grid or min(self.grid) <= 0:
            raise ValueError(f"grid={self.grid} must be non-empty and > 0")
        if not 0 <= self.epsilon <= 1 or self.decay <= 0:
            raise ValueError(f"epsilon={self.epsilon} must be in [0, 1] and decay={self.decay} > 0")


class BanditBidders:
    """The multipliers of ``n`` advertisers, of which ``learners`` (bool mask) learn by epsilon-greedy."""

    def __init__(self, learners: np.ndarray, cfg: LearningBidderConfig, rng: np.random.Generator) -> None:
        self.learners, self.cfg, self.rng = np.asarray(learners, dtype=bool), cfg, rng
        n, g = len(self.learners), len(cfg.grid)
        self.grid = np.asarray(cfg.grid, dtype=float)
        self.total = np.zeros((n, g))
        self.count = np.zeros((n, g))
        self.arm = np.full(n, g - 1)  # start truthful-most
        self.t = 0
        self.spend_history: list[np.ndarray] = []

    @classmethod
    def draw(cls, n: int, cfg: LearningBidderConfig, rng: np.random.Generator) -> BanditBidders:
        learners = np.zeros(n, dtype=bool)
        learners[rng.permutation(n)[:round(cfg.share * n)]] = True
        return cls(learners, cfg, rng)

    def multipliers(self) -> np.ndarray:
        """(n,) bid multiplier of every advertiser this round (1 for those that do not learn)."""
        return np.where(self.learners, self.grid[self.arm], 1.0)

    def update(self, utility: np.ndarray, spend: np.ndarray) -> None:
        """Feed back the round's utility and spend (n,) of every advertiser; learners pick next round's arm."""
        idx = np.flatnonzero(self.learners)
        self.total[idx, self.arm[idx]] += utility[idx]
        self.count[idx, self.arm[idx]] += 1
        self.spend_history.append(np.asarray(spend, dtype=float).copy())
        self.t += 1
        eps = self.cfg.epsilon / (1.0 + self.t / self.cfg.decay)
        mean = np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.inf)  # untried arms first
        greedy = mean.argmax(1)
        explore = self.rng.random(len(self.arm)) < eps
        random_arm = self.rng.integers(len(self.grid), size=len(self.arm))
        self.arm = np.where(self.learners, np.where(explore, random_arm, greedy), self.arm)
