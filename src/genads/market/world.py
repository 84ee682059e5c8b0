"""The simulated market's ground truth: users, ads, organic items, advertisers and the click model.

Users and items live in one latent space built from ``topics`` centres. A user's true click-through
rate for an item is ``sigmoid(base_logit + item_bias + affinity * <u, item>)`` (the ground-truth CTR);
a page of ``page_size`` positions is examined top-down with probability ``examination[p] =
1 / (1 + p) ** position_decay`` (the position-based click model), so an item at position p is
clicked with probability ``examination[p] * ctr``. Ads sit at the ``ad_positions`` of the page (the
ad load), organic items fill the others.

Slate effects (``click_model`` and ``cannibalisation``, off in the original world):

* ``click_model="cascade"`` is the dependent click model (Guo, Liu & Wang 2009, "Efficient
  multiple-click models in web search"): the page is scanned top-down, position p is clicked with
  probability ``E_p * a_p`` (``a_p`` the item's attractiveness, its CTR) and the user goes on to
  position p+1 with probability ``r_p`` after no click and ``r_p * (1 - stop_after_click)`` after a
  click, where ``r_p = examination[p+1] / examination[p]`` (so a page nobody clicks is examined as in
  the position-based model). In closed form ``E_0 = 1`` and ``E_{p+1} = E_p * r_p * (1 - stop * a_p)``:
  what sits above an ad (a tempting organic item, another ad) lowers the ad's clicks.
* ``cannibalisation=c`` lowers an ad's attractiveness by the factor ``1 - c * max_q cos+(ad, ad_q)``
  over the ads ``q`` shown above it on the same page (cosine of the latent vectors, clipped at 0):
  two near-duplicate ads on one page split the interest instead of doubling it.

:meth:`World.page_click_prob` gives the closed-form click probability of every position of whole
pages, :meth:`World.page_clicks` draws the clicks with given uniforms (common random numbers).

Advertisers own ads and have a private value per click (optionally the value of a conversion times
the ad's conversion rate), a budget for the episode and a target return on spend. The models never
see the latent vectors: they see ids, logged clicks and the ads' noisy content vectors
(``ad_features``, what a tokenizer would embed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLICK_MODELS = ("position", "cascade")


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
    click_model: str = "position"
    """"position" (independent examination per position) or "cascade" (the dependent click model)."""
    stop_after_click: float = 0.5
    """Cascade click model: probability that examination stops after a click."""
    cannibalisation: float = 0.0
    """Strength in [0, 1] of the attractiveness loss of an ad below a similar ad on the same page."""

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
        if self.click_model not in CLICK_MODELS:
            raise ValueError(f"click_model={self.click_model!r} must be one of {list(CLICK_MODELS)}")
        for name in ("stop_after_click", "cannibalisation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")

    @property
    def slate_effects(self) -> bool:
        """True when a click depends on the rest of the page (cascade examination or cannibalisation)."""
        return (self.click_model == "cascade" and self.stop_after_click > 0) or self.cannibalisation > 0

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

    def organic_item_ctr(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Ground-truth CTR of organic ``items`` (B, m) for ``users`` (B,); 0 where the item is -1."""
        cfg = self.config
        safe = np.maximum(items, 0)
        logit = cfg.base_logit + self.organic_bias[safe] + cfg.affinity * np.einsum("bd,bkd->bk", self.users[users],
                                                                                       self.organic[safe])
        return np.where(items >= 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    @property
    def continuation(self) -> np.ndarray:
        """(page_size,) ``r_p = examination[p+1] / examination[p]`` (0 after the last position)."""
        e = self.examination
        return np.append(e[1:] / e[:-1], 0.0)

    def cannibalised(self, ads: np.ndarray) -> np.ndarray:
        """(B, k) attractiveness factor of each ad slot: ``1 - c * max cos+`` with the ads above it (1 if c = 0)."""
        c = self.config.cannibalisation
        out = np.ones(ads.shape)
        if c == 0 or ads.shape[1] < 2:
            return out
        unit = self.ads / np.linalg.norm(self.ads, axis=1, keepdims=True)
        vec = unit[np.maximum(ads, 0)] * (ads >= 0)[..., None]  # (B, k, d), zero rows for empty slots
        cos = np.clip(np.einsum("bid,bjd->bij", vec, vec), 0.0, None)  # (B, k, k)
        above = np.tril(np.ones((ads.shape[1], ads.shape[1]), dtype=bool), k=-1)  # [j, i]: i above j
        worst = np.where(above[None], cos, 0.0).max(axis=2)
        return 1.0 - c * worst

    def attractiveness(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None = None) -> np.ndarray:
        """(B, page_size) click probability of each position once examined.

        ``ads`` (B, ad_load) sit at ``ad_positions`` (-1 = empty slot), ``organic`` (B, page_size -
        ad_load) fill the other positions in order (None or -1 = nothing there). Ads are discounted by
        :meth:`cannibalised`.
        """
        cfg = self.config
        ad_pos = np.asarray(cfg.ad_positions)
        org_pos = np.setdiff1d(np.arange(cfg.page_size), ad_pos)
        a = np.zeros((len(users), cfg.page_size))
        a[:, ad_pos] = self.ad_ctr(users, ads) * self.cannibalised(ads)
        if organic is not None and len(org_pos):
            a[:, org_pos] = self.organic_item_ctr(users, organic)
        return a

    def page_click_prob(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None = None) -> np.ndarray:
        """(B, page_size) ground-truth click probability of every position of whole pages.

        Args:
            users: (B,) user of each request.
            ads: (B, ad_load) ad index at each of ``ad_positions`` in order (-1 = empty slot).
            organic: (B, page_size - ad_load) organic item index at the other positions, top first
                (None: no organic feed, those positions are never clicked but still examined).

        Under ``click_model="position"`` this is ``examination[p] * attractiveness[p]`` (the original
        world when ``cannibalisation=0``); under ``"cascade"`` it is ``E_p * a_p`` with ``E_0 = 1`` and
        ``E_{p+1} = E_p * r_p * (1 - stop_after_click * a_p)`` (the dependent click model, see the module
        docstring). A slate's expected ad clicks are ``out[:, ad_positions]``, its expected revenue
        ``(out[:, ad_positions] * price_per_click).sum(1)``.
        """
        a = self.attractiveness(users, ads, organic)
        if self.config.click_model == "position":
            return self.examination[None] * a
        stop, r = self.config.stop_after_click, self.continuation
        out = np.empty_like(a)
        e = np.ones(len(a))
        for p in range(a.shape[1]):
            out[:, p] = e * a[:, p]
            e = e * r[p] * (1.0 - stop * a[:, p])
        return out

    def page_clicks(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None, click_draw: np.ndarray,
                    continue_draw: np.ndarray | None = None) -> np.ndarray:
        """(B, page_size) bool clicks drawn with the uniforms ``click_draw`` (and ``continue_draw``), each (B, page_size).

        Position model: position p is clicked iff ``click_draw[p] < examination[p] * a_p``. Cascade:
        position 0 is examined; an examined position is clicked iff ``click_draw[p] < a_p`` and the
        next one is examined iff ``continue_draw[p] < r_p * (1 - stop_after_click * clicked)`` — the
        click frequencies converge to :meth:`page_click_prob`.
        """
        a = self.attractiveness(users, ads, organic)
        if self.config.click_model == "position":
            return click_draw < self.examination[None] * a
        if continue_draw is None:
            raise ValueError("the cascade click model needs continue_draw")
        stop, r = self.config.stop_after_click, self.continuation
        clicked = np.zeros(a.shape, dtype=bool)
        examined = np.ones(len(a), dtype=bool)
        for p in range(a.shape[1]):
            clicked[:, p] = examined & (click_draw[:, p] < a[:, p])
            examined = examined & (continue_draw[:, p] < r[p] * (1.0 - stop * clicked[:, p]))
        return clicked


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
