"""The simulated market's ground truth: users, ads, organic items, advertisers and the click model.

Users and items live in one latent space built from ``topics`` centres. A user's true click-through
rate for an item is ``sigmoid(base_logit + item_bias + affinity * <u, item>)`` (the ground-truth CTR);
a page of ``page_size`` positions is examined top-down with probability ``examination[p] =
1 / (1 + p) ** position_decay`` (the position-based click model), so an item at position p is
clicked with probability ``examination[p] * ctr``. Ads sit at the ``ad_positions`` of the page (the
ad load), organic items fill the others.

Advertisers own ads and have a private value per click (optionally the value of a conversion times
the ad's conversion rate), a budget for the episode and a target return on spend. The models never
see the latent vectors: they see ids, logged clicks and the ads' noisy content vectors
(``ad_features``, what a tokenizer would embed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorldConfig:
    """Size and shape of the simulated market."""

    n_users: int = 3000
    n_ads: int = 1000
    n_advertisers: int = 100
    n_organic: int = 500
    dim: int = 16
    """Latent dimension of users and items."""
    topics: int = 12
    """Interest clusters; each user mixes ``user_topics`` of them."""
    user_topics: int = 2
    topic_spread: float = 0.5
    """Standard deviation of an item around its topic centre (per unit-norm centre)."""
    base_logit: float = -3.6
    affinity: float = 2.5
    """Weight of the user–item inner product in the CTR logit."""
    item_bias_std: float = 0.4
    feature_noise: float = 0.3
    """Noise of the observable ad content vectors around the latent ones."""
    page_size: int = 6
    ad_positions: tuple[int, ...] = (1, 3, 5)
    """Page positions (0 = top) that carry ads: the ad load is ``len(ad_positions)``."""
    position_decay: float = 0.8
    value_mean: float = 1.0
    """Mean value per click (currency units)."""
    value_sigma: float = 0.6
    """Log-normal spread of advertisers' values per click."""
    conversions: bool = False
    """Values come from conversions: value per click = cvr x value per conversion (and conversions are drawn)."""
    budget_per_1000: float = 6.0
    """Mean advertiser budget per 1000 requests of the episode."""
    budget_sigma: float = 0.8
    roi_target_max: float = 1.3
    """Targets of return on spend are drawn from U[1, roi_target_max]: bids never exceed value / target."""

    def __post_init__(self) -> None:
        for name in ("n_users", "n_ads", "n_advertisers", "n_organic", "dim", "topics", "user_topics", "page_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_advertisers > self.n_ads:
            raise ValueError(f"n_advertisers={self.n_advertisers} must be <= n_ads={self.n_ads}")
        pos = self.ad_positions
        if not pos or len(set(pos)) != len(pos) or list(pos) != sorted(pos) or pos[0] < 0 or pos[-1] >= self.page_size:
            raise ValueError(f"ad_positions={pos} must be distinct, increasing and inside page_size={self.page_size}")
        if self.page_size - len(pos) > self.n_organic:
            raise ValueError(f"n_organic={self.n_organic} cannot fill {self.page_size - len(pos)} organic positions")
        for name in ("topic_spread", "affinity", "item_bias_std", "feature_noise", "position_decay", "value_sigma",
                     "budget_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.value_mean <= 0 or self.budget_per_1000 <= 0:
            raise ValueError(f"value_mean={self.value_mean} and budget_per_1000={self.budget_per_1000} must be > 0")
        if self.roi_target_max < 1:
            raise ValueError(f"roi_target_max={self.roi_target_max} must be >= 1")

    @property
    def ad_load(self) -> int:
        return len(self.ad_positions)


@dataclass(frozen=True)
class World:
    """One draw of the market (arrays indexed by user, ad 0..n_ads-1, organic item, advertiser)."""

    config: WorldConfig
    users: np.ndarray
    """(n_users, dim) latent interests."""
    ads: np.ndarray
    """(n_ads, dim) latent ad vectors."""
    ad_bias: np.ndarray
    """(n_ads,) per-ad CTR logit offset (creative quality)."""
    organic: np.ndarray
    """(n_organic, dim) latent organic items."""
    organic_bias: np.ndarray
    ad_features: np.ndarray
    """(n_ads, dim) observable content vectors (latent + noise): what the tokenizer sees."""
    owner: np.ndarray
    """(n_ads,) advertiser of each ad."""
    value: np.ndarray
    """(n_ads,) private value per click."""
    cvr: np.ndarray
    """(n_ads,) conversion probability after a click (value per click = cvr x value per conversion)."""
    budget_rate: np.ndarray
    """(n_advertisers,) budget per 1000 requests."""
    roi_target: np.ndarray
    """(n_advertisers,) target value / spend (>= 1)."""

    @property
    def examination(self) -> np.ndarray:
        """(page_size,) probability that each position is looked at."""
        return 1.0 / (1.0 + np.arange(self.config.page_size)) ** self.config.position_decay

    @property
    def slot_ctr(self) -> np.ndarray:
        """(ad_load,) examination of the ad positions: the auction's position CTRs."""
        return self.examination[list(self.config.ad_positions)]

    def ad_ctr(self, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """Ground-truth CTR (before position) of ``ads`` (B, k) for ``users`` (B,); 0 where ad is -1."""
        cfg = self.config
        safe = np.maximum(ads, 0)
        logit = cfg.base_logit + self.ad_bias[safe] + cfg.affinity * np.einsum("bd,bkd->bk", self.users[users],
                                                                                  self.ads[safe])
        return np.where(ads >= 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    def all_ad_ctr(self, users: np.ndarray) -> np.ndarray:
        """(B, n_ads) ground-truth CTR of every ad."""
        logit = self.config.base_logit + self.ad_bias[None] + self.config.affinity * self.users[users] @ self.ads.T
        return 1.0 / (1.0 + np.exp(-logit))

    def organic_ctr(self, users: np.ndarray) -> np.ndarray:
        """(B, n_organic) ground-truth CTR of every organic item."""
        logit = self.config.base_logit + self.organic_bias[None] + self.config.affinity * self.users[users] @ self.organic.T
        return 1.0 / (1.0 + np.exp(-logit))


def _items(centres: np.ndarray, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    topic = rng.integers(len(centres), size=n)
    return centres[topic] + spread * rng.standard_normal((n, centres.shape[1])) / np.sqrt(centres.shape[1])


def make_world(cfg: WorldConfig, rng: np.random.Generator) -> World:
    """Draw users, items and advertisers from ``cfg`` with ``rng``."""
    centres = rng.standard_normal((cfg.topics, cfg.dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    mix = rng.dirichlet(np.ones(cfg.user_topics), size=cfg.n_users)  # (U, m)
    picks = np.stack([rng.choice(cfg.topics, cfg.user_topics, replace=False) for _ in range(cfg.n_users)])
    users = np.einsum("um,umd->ud", mix, centres[picks]) * np.sqrt(cfg.user_topics)
    users += 0.3 * rng.standard_normal(users.shape) / np.sqrt(cfg.dim)
    ads = _items(centres, cfg.n_ads, cfg.topic_spread, rng)
    organic = _items(centres, cfg.n_organic, cfg.topic_spread, rng)
    features = ads + cfg.feature_noise * rng.standard_normal(ads.shape) / np.sqrt(cfg.dim)
    owner = np.concatenate([np.arange(cfg.n_advertisers), rng.integers(cfg.n_advertisers, size=cfg.n_ads - cfg.n_advertisers)])
    rng.shuffle(owner)
    adv_value = cfg.value_mean * rng.lognormal(-cfg.value_sigma**2 / 2, cfg.value_sigma, cfg.n_advertisers)
    cvr = rng.beta(2.0, 8.0, cfg.n_ads)  # mean 0.2
    value = adv_value[owner] * rng.lognormal(-0.02, 0.2, cfg.n_ads)
    if cfg.conversions:  # the same mean value per click, now cvr x value per conversion
        value = adv_value[owner] * cvr / cvr.mean()
    budget = cfg.budget_per_1000 * rng.lognormal(-cfg.budget_sigma**2 / 2, cfg.budget_sigma, cfg.n_advertisers)
    return World(config=cfg, users=users, ads=ads, ad_bias=cfg.item_bias_std * rng.standard_normal(cfg.n_ads),
                 organic=organic, organic_bias=cfg.item_bias_std * rng.standard_normal(cfg.n_organic),
                 ad_features=features.astype(np.float32), owner=owner.astype(np.int64), value=value, cvr=cvr,
                 budget_rate=budget, roi_target=rng.uniform(1.0, cfg.roi_target_max, cfg.n_advertisers))
