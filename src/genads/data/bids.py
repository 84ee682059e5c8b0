"""Synthetic advertisers, bids and budgets for public data sets that have none.

Public recommendation logs carry no money. So that auction work has something to run on, genads
derives it, seeded and documented, and flags it as synthetic in meta.json:

* **advertiser**: the ad's brand; else its category; else the ad is its own advertiser.
* **bid** (value per click): each advertiser draws a base bid ``LogNormal(log(bid_median), bid_sigma)``;
  each of its ads bids ``base × LogNormal(0, ad_sigma)``.
* **budget** (per advertiser, repeated on each of its ads): ``base × clicks × U(budget_low, budget_high)``,
  where ``clicks`` counts the clicks and conversions on the advertiser's ads in the log. With the
  default range about half of the advertisers could not pay for all the clicks they got in the log.

Each advertiser's draws come from its own generator seeded by (seed, advertiser_id), so adding ads
of one advertiser never changes another's bids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MarketParams:
    """How synthetic bids and budgets are drawn."""

    seed: int = 0
    bid_median: float = 1.0
    """Median advertiser base bid, in currency units per click."""
    bid_sigma: float = 0.6
    """Log-scale spread of base bids across advertisers."""
    ad_sigma: float = 0.15
    """Log-scale spread of ad bids within an advertiser."""
    budget_low: float = 0.3
    budget_high: float = 1.5

    def __post_init__(self) -> None:
        if self.bid_median <= 0:
            raise ValueError(f"bid_median={self.bid_median} must be > 0")
        if not 0 <= self.budget_low <= self.budget_high:
            raise ValueError(f"need 0 <= budget_low={self.budget_low} <= budget_high={self.budget_high}")


def assign_advertisers(catalogue: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Advertiser ids for rows without one: by brand, else category, else the ad itself.

    Returns (advertiser ids int64, a short description of the rule used). Ids are dense, 1-based, in
    sorted order of the key, so they are the same for the same catalogue.
    """
    given = catalogue["advertiser_id"].to_numpy()
    if (given >= 0).all():
        return given.astype(np.int64), "given in the input"
    key = np.where(
        catalogue["brand"] != "",
        "brand:" + catalogue["brand"],
        np.where(catalogue["category"] != "", "category:" + catalogue["category"], "ad:" + catalogue["ad_id"].astype(str)),
    )
    codes = pd.Series(key).astype("category").cat.codes.to_numpy().astype(np.int64) + 1
    offset = int(given.max()) + 1 if (given >= 0).any() else 0
    ids = np.where(given >= 0, given, codes + offset)
    return ids.astype(np.int64), "brand, else category, else the ad itself"


def synthesize(
    advertiser_id: np.ndarray, ad_clicks: np.ndarray, params: MarketParams
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (bid per ad, budget of each ad's advertiser), both shape (n_ads,).

    ``ad_clicks`` (n_ads,) counts logged clicks and conversions per ad. Within an advertiser, ads
    take its jitter draws in catalogue order.
    """
    advertisers, inverse = np.unique(advertiser_id, return_inverse=True)
    clicks = np.bincount(inverse, weights=ad_clicks, minlength=len(advertisers))
    counts = np.bincount(inverse, minlength=len(advertisers))
    base = np.empty(len(advertisers))
    factor = np.empty(len(advertisers))
    draws = []
    for i, adv in enumerate(advertisers):
        rng = np.random.default_rng([params.seed, int(adv)])
        base[i] = params.bid_median * np.exp(params.bid_sigma * rng.standard_normal())
        factor[i] = rng.uniform(params.budget_low, params.budget_high)
        draws.append(rng.standard_normal(int(counts[i])))
    jitter = np.empty(len(advertiser_id))
    jitter[np.argsort(inverse, kind="stable")] = np.concatenate(draws) if draws else []
    bids = base[inverse] * np.exp(params.ad_sigma * jitter)
    budgets = base * np.maximum(clicks, 1.0) * factor
    return np.round(bids, 4), np.round(budgets[inverse], 2)


def describe(params: MarketParams) -> dict:
    """The meta.json record of how bids and budgets were made."""
    return {"synthetic": True, "method": "per-advertiser lognormal bids; budget from logged clicks", **asdict(params)}
