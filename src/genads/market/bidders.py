"""Auto-bidders: truthful, budget-paced (dual-gradient), and best-responding (misreport search).

* **truthful** bids its value per click until its budget is gone.
* **paced** bids ``value / (1 + mu)``; the dual variable follows the dual-gradient pacing rule of
  Balseiro & Gur (2019), ``mu <- max(mu_min, mu + lr * (spend / target - 1))`` after every batch of
  requests, where ``target`` is the budget spread evenly over the episode and ``mu_min = roi - 1``
  keeps every bid at or under ``value / roi_target`` (the ROI constraint).
* **strategic** paces like the above and also multiplies its bid by a factor ``gamma`` it
  re-chooses after every batch: the factor of a grid that would have given it the highest utility
  (true value, true CTR) on the auctions it took part in during the last batch, replayed with the
  others' bids fixed. A truthful mechanism leaves it at 1; a gap between its utility and its
  truthful utility is the regret it exploits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genads.auction.mechanisms import Allocation
from genads.auction.regret import EGA_GAMMAS
from genads.market.world import World

TRUTHFUL, PACED, STRATEGIC = 0, 1, 2
KIND_NAMES = ("truthful", "paced", "strategic")


@dataclass(frozen=True)
class BidderConfig:
    """The mix of bidding agents and their pacing."""

    paced_share: float = 0.6
    """Share of advertisers that pace their budget."""
    strategic_share: float = 0.2
    """Share of advertisers that pace and best-respond (the rest of the advertisers bid truthfully)."""
    pacing_lr: float = 0.3
    gammas: tuple[float, ...] = EGA_GAMMAS
    """Bid multipliers a strategic bidder searches (EGA's misreport grid by default)."""

    def __post_init__(self) -> None:
        if min(self.paced_share, self.strategic_share) < 0 or self.paced_share + self.strategic_share > 1:
            raise ValueError(f"paced_share={self.paced_share} and strategic_share={self.strategic_share} must be "
                             ">= 0 and sum to <= 1")
        if self.pacing_lr <= 0:
            raise ValueError(f"pacing_lr={self.pacing_lr} must be > 0")
        if not self.gammas or min(self.gammas) <= 0:
            raise ValueError(f"gammas={self.gammas} must be non-empty and > 0")


@dataclass
class AuctionBatch:
    """The auctions of one batch of requests, as the strategic bidders replay them."""

    ads: np.ndarray
    """(B, n) candidate ads, -1 = empty."""
    bids: np.ndarray
    quality: np.ndarray
    ctr: np.ndarray
    """(B, n) true position-free CTR of each candidate."""


Auction = Callable[[np.ndarray, np.ndarray], Allocation]
"""(bids (B, n), quality (B, n)) -> allocation over the ad slots."""


class Bidders:
    """Bidding state of every advertiser over one episode."""

    def __init__(self, world: World, cfg: BidderConfig, n_requests: int, batch_size: int,
                 rng: np.random.Generator) -> None:
        n = world.config.n_advertisers
        self.world, self.cfg = world, cfg
        kinds = np.full(n, TRUTHFUL)
        order = rng.permutation(n)
        n_strat, n_paced = round(cfg.strategic_share * n), round(cfg.paced_share * n)
        kinds[order[:n_strat]] = STRATEGIC
        kinds[order[n_strat:n_strat + n_paced]] = PACED
        self.kind = kinds
        self.budget = world.budget_rate * n_requests / 1000.0
        self.target = self.budget * batch_size / n_requests
        self.mu_min = world.roi_target - 1.0
        self.mu = self.mu_min.copy()
        self.gamma = np.ones(n)
        self.spend = np.zeros(n)
        self.history_gamma: list[float] = []

    def bids(self) -> np.ndarray:
        """(n_ads,) bid per click of every ad."""
        adv = self.world.owner
        shade = np.where(self.kind == TRUTHFUL, 1.0, 1.0 / (1.0 + self.mu)) * self.gamma
        return self.world.value * shade[adv]

    def remaining(self) -> np.ndarray:
        return self.budget - self.spend

    def charge(self, advertiser: np.ndarray, amounts: np.ndarray) -> None:
        np.add.at(self.spend, advertiser, amounts)
        # a charge that empties the budget is computed as budget - spend; summing it back can land one
        # rounding error above the budget: snap that (only that) back, so real overspend still shows
        rounding = (self.spend > self.budget) & (self.spend - self.budget <= 1e-9 * np.maximum(self.budget, 1.0))
        self.spend[rounding] = self.budget[rounding]

    def update(self, batch_spend: np.ndarray, batch: AuctionBatch, auction: Auction, slot_ctr: np.ndarray) -> None:
        """After a batch: pace on ``batch_spend`` (n_advertisers,), strategic bidders re-choose gamma."""
        paced = self.kind != TRUTHFUL
        step = self.cfg.pacing_lr * (batch_spend / np.maximum(self.target, 1e-12) - 1.0)
        self.mu = np.where(paced, np.maximum(self.mu_min, self.mu + step), self.mu)
        for adv in np.flatnonzero(self.kind == STRATEGIC):
            self.gamma[adv] = self._best_gamma(adv, batch, auction, slot_ctr)
        if (self.kind == STRATEGIC).any():
            self.history_gamma.append(float(self.gamma[self.kind == STRATEGIC].mean()))

    def _best_gamma(self, adv: int, batch: AuctionBatch, auction: Auction, slot_ctr: np.ndarray) -> float:
        totals = self.replay_utilities(adv, batch, auction, slot_ctr)
        return float(self.gamma[adv]) if totals is None else float(self.cfg.gammas[int(np.argmax(totals))])

    def replay_utilities(self, adv: int, batch: AuctionBatch, auction: Auction, slot_ctr: np.ndarray) -> np.ndarray | None:
        """(len(gammas),) utility ``adv`` would have had in ``batch`` with each multiplier (None: not in it)."""
        own = (batch.ads >= 0) & (self.world.owner[np.maximum(batch.ads, 0)] == adv)  # (B, n)
        rows = np.flatnonzero(own.any(1))
        if not len(rows):
            return None
        grid = np.asarray(self.cfg.gammas, dtype=float)
        g = len(grid)
        mine = np.tile(own[rows], (g, 1))  # (G*R, n)
        scale = np.repeat(grid / self.gamma[adv], len(rows))[:, None]
        bids = np.where(mine, np.tile(batch.bids[rows], (g, 1)) * scale, np.tile(batch.bids[rows], (g, 1)))
        quality, ctr = np.tile(batch.quality[rows], (g, 1)), np.tile(batch.ctr[rows], (g, 1))
        alloc = auction(bids, quality)
        values = self.world.value[np.maximum(np.tile(batch.ads[rows], (g, 1)), 0)]
        util = (alloc.click_rates(ctr, slot_ctr) * (values - alloc.bidder_prices(bids.shape[1])) * mine).sum(1)
        return util.reshape(g, len(rows)).sum(1)
