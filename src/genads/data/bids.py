"""Synthetic advertisers, bids and budgets for public data sets that have none.

Public recommendation logs carry no money. So that auction work has something to run on, genads
derives it, seeded and documented, and flags it as synthetic in meta.json:

* **advertiser**: the ad's brand; else its category; else the ad is its own advertiser.
* **bid** (value per click): each advertiser draws a base bid ``LogNormal(log(bid_median), bid_sigma)``;
  each of its ads bids ``base × LogNormal(0, ad_sigma)``, the ad's factor drawn from its own generator.
* **budget** (per advertiser, repeated on each of its ads): ``base × clicks × U(budget_low, budget_high)``,
  where ``clicks`` counts the clicks and conversions on the advertiser's ads in the log. With the
  default range about half of the advertisers could not pay for all the clicks they got in the log.

Each advertiser's draws come from a generator seeded by (seed, a stable hash of the advertiser's
key: ``brand:NAME``, ``category:NAME``, ``advertiser:ID`` or ``ad:ID``) and each ad's jitter from one
seeded by (seed, ad_id). So adding, removing or changing the ads of one advertiser never changes
another advertiser's bids or budget, and an ad's bid does not depend on its neighbours.
"""

from __future__ import annotations

import hashlib
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
        if self.bid_sigma < 0 or self.ad_sigma < 0:
            raise ValueError(f"bid_sigma={self.bid_sigma} and ad_sigma={self.ad_sigma} must be >= 0")
        if not 0 <= self.budget_low <= self.budget_high:
            raise ValueError(f"need 0 <= budget_low={self.budget_low} <= budget_high={self.budget_high}")


def advertiser_keys(catalogue: pd.DataFrame) -> np.ndarray:
    """The key that identifies each ad's advertiser: the given id, else brand, else category, else the ad."""
    given = catalogue["advertiser_id"].to_numpy()
    brand = catalogue["brand"].astype(str).to_numpy()
    category = catalogue["category"].astype(str).to_numpy()
    ads = catalogue["ad_id"].astype(str).to_numpy()
    keys = [
        f"advertiser:{g}" if g >= 0 else f"brand:{b}" if b else f"category:{c}" if c else f"ad:{a}"
        for g, b, c, a in zip(given.tolist(), brand.tolist(), category.tolist(), ads.tolist(), strict=True)
    ]
    return np.array(keys, dtype=object)


def assign_advertisers(catalogue: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Advertiser ids for rows without one: by brand, else category, else the ad itself.

    Returns (advertiser ids int64, a short description of the rule used). Ids are dense, 1-based, in
    sorted order of the key (after the largest given id), so they are the same for the same catalogue.
    """
    given = catalogue["advertiser_id"].to_numpy()
    if (given >= 0).all():
        return given.astype(np.int64), "given in the input"
    keys = advertiser_keys(catalogue)
    codes = pd.Series(keys).astype("category").cat.codes.to_numpy().astype(np.int64) + 1
    offset = int(given.max()) + 1 if (given >= 0).any() else 0
    ids = np.where(given >= 0, given, codes + offset)
    return ids.astype(np.int64), "brand, else category, else the ad itself"


def _stable_hash(key: object) -> int:
    return int.from_bytes(hashlib.blake2b(str(key).encode("utf-8"), digest_size=8).digest(), "little")


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays: a fast, well-mixed, portable counter-based generator."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniforms(keys: np.ndarray, seed: int, stream: int, n: int) -> list[np.ndarray]:
    """``n`` arrays of uniforms in (0, 1), one value per key, determined by (seed, stream, key) only."""
    salt = _splitmix(np.array([_stable_hash(f"{seed}/{stream}")], dtype=np.uint64))[0]
    state = _splitmix(keys.astype(np.uint64) ^ salt)
    out = []
    for _ in range(n):
        state = _splitmix(state)
        out.append(((state >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)
    return out


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def synthesize(
    advertiser_key: np.ndarray, ad_clicks: np.ndarray, params: MarketParams, ad_id: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (bid per ad, budget of each ad's advertiser), both shape (n_ads,).

    ``advertiser_key`` (n_ads,) identifies each ad's advertiser (see ``advertiser_keys``; any values
    with a stable ``str``); ``ad_clicks`` (n_ads,) counts logged clicks and conversions per ad;
    ``ad_id`` (n_ads,) non-negative ints seeding each ad's jitter (default: the row number).
    """
    advertiser_key = np.asarray(advertiser_key, dtype=object).astype(str)
    ad_id = np.arange(len(advertiser_key)) if ad_id is None else np.asarray(ad_id, dtype=np.int64)
    advertisers, inverse = np.unique(advertiser_key, return_inverse=True)
    inverse = inverse.reshape(-1)
    clicks = np.bincount(inverse, weights=np.asarray(ad_clicks, dtype=float), minlength=len(advertisers))
    hashed = np.array([_stable_hash(k) for k in advertisers.tolist()], dtype=np.uint64)
    u1, u2, u3 = _uniforms(hashed, params.seed, 0, 3)
    base = params.bid_median * np.exp(params.bid_sigma * _normal(u1, u2))
    factor = params.budget_low + (params.budget_high - params.budget_low) * u3
    a1, a2 = _uniforms(ad_id, params.seed, 1, 2)
    bids = base[inverse] * np.exp(params.ad_sigma * _normal(a1, a2))
    budgets = base * np.maximum(clicks, 1.0) * factor
    return np.round(bids, 4), np.round(budgets[inverse], 2)


def describe(params: MarketParams) -> dict:
    """The meta.json record of how bids and budgets were made."""
    return {"synthetic": True, "method": "per-advertiser lognormal bids; budget from logged clicks",
            "advertiser_seed": "blake2b of the advertiser key (brand:/category:/advertiser:/ad:)",
            "ad_jitter_seed": "(seed, ad_id)", **asdict(params)}
