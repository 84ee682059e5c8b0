"""The second market world: creatives, multinomial-logit page choice, variable ad load, fatigue,
per-slot reserves and learning bidders. Opt-in (``configs/market_world2.yaml``); the first worlds
(:mod:`genads.market.world`) are untouched.

Users, ads, organic items and advertisers are drawn exactly as in :func:`genads.market.world.make_world`
(same :class:`~genads.market.world.WorldConfig`), then:

* every ad gets ``creatives.per_ad`` creatives (:mod:`genads.market.creatives`); ad ``a`` shown with
  creative ``c`` to user ``u`` has utility ``base_logit + ad_bias[a] + affinity * <u, a> + delta(u, a, c)``;
* a page of ``page_size`` positions carries ``L`` ads, ``0 <= L <= len(ad_positions)``, at the first ``L``
  of ``ad_positions`` (top first); organic items fill the other positions in the organic ranker's order, so
  every ad displaces an organic item;
* the user picks at most one item of the page by the multinomial logit of :mod:`genads.market.choice`
  (position effects ``kappa``, a no-click option);
* fatigue within a session: an ad's attraction is multiplied by ``fatigue_same_ad ** n`` after ``n`` earlier
  exposures of the same ad in the session, and every ad's by ``(1 - ad_blindness) ** m`` after ``m`` ads
  seen in the session;
* ad slot ``j`` accepts bids per click of at least ``reserves[j]`` (:mod:`genads.market.reserve`);
* a share of advertisers learn their bid multiplier by bandit feedback (:mod:`genads.market.learning_bidders`).

The logs of a run in this world come from a previous system, not a uniform policy: ``LogConfig.logging_temperature``
(:mod:`genads.market.logging_policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from genads.market.choice import draw_choice, page_probs, position_effects
from genads.market.creatives import CreativeConfig, Creatives, best_for_everyone, make_creatives
from genads.market.learning_bidders import LearningBidderConfig
from genads.market.reserve import slot_reserves
from genads.market.world import World, WorldConfig, make_world


@dataclass(frozen=True)
class World2Config:
    """What the second world adds to a :class:`WorldConfig` (every value's source: docs/market.md)."""

    creatives: CreativeConfig = field(default_factory=CreativeConfig)
    position_eta: float = 1.0
    """Position effect ``kappa[p] = (1 / (1 + p)) ** eta`` (Joachims et al. 2017's default severity)."""
    no_click_logit: float = 0.0
    """Log weight of the no-click option of the page choice."""
    organic_value: float = 0.3
    """What the platform counts an organic click as worth, in the currency of bids (assumed; swept)."""
    fixed_load: int = 3
    """The ad load of a platform that does not choose it (the first worlds' three ad slots)."""
    fatigue_same_ad: float = 0.8
    """Attraction factor per earlier exposure of the same ad in the session (assumed; swept)."""
    ad_blindness: float = 0.02
    """Attraction loss of every ad per ad already seen in the session (assumed)."""
    session_len: int = 8
    """Page views per session (fatigue resets between sessions)."""
    reserve_levels: tuple[float, ...] = (0.3, 0.2, 0.1)
    """Reserve per click of each ad slot (top first) as a share of the median value per click (assumed)."""
    learning: LearningBidderConfig = field(default_factory=LearningBidderConfig)

    def __post_init__(self) -> None:
        if self.position_eta < 0 or self.organic_value < 0:
            raise ValueError(f"position_eta={self.position_eta} and organic_value={self.organic_value} must be >= 0")
        for name in ("fatigue_same_ad", "ad_blindness"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if self.session_len < 1 or self.fixed_load < 0:
            raise ValueError(f"session_len={self.session_len} must be >= 1 and fixed_load={self.fixed_load} >= 0")

    def check(self, world: WorldConfig) -> None:
        """Raise if this config does not fit ``world`` (the ad slots are ``world.ad_positions``)."""
        if len(self.reserve_levels) != world.ad_load:
            raise ValueError(f"reserve_levels={self.reserve_levels} must give one level per ad slot "
                             f"(world.ad_positions={world.ad_positions})")
        if self.fixed_load > world.ad_load:
            raise ValueError(f"fixed_load={self.fixed_load} must be <= {world.ad_load} ad slots")


@dataclass(frozen=True)
class World2:
    base: World
    config: World2Config
    creatives: Creatives
    kappa: np.ndarray
    """(page_size,) position effects."""
    reserves: np.ndarray
    """(max ads,) reserve per click of each ad slot, top first."""

    @property
    def max_ads(self) -> int:
        return self.base.config.ad_load

    def layout(self, load: int) -> tuple[np.ndarray, np.ndarray]:
        """Ad positions and organic positions (top first) of a page with ``load`` ads."""
        wc = self.base.config
        ad_pos = np.asarray(wc.ad_positions[:load], dtype=int)
        return ad_pos, np.setdiff1d(np.arange(wc.page_size), ad_pos)

    def ad_logits(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_ads) creative-free utility and (B, n_ads, C) creative effects for users (B,)."""
        w, cfg = self.base, self.base.config
        u = w.users[users]
        return cfg.base_logit + w.ad_bias[None] + cfg.affinity * u @ w.ads.T, self.creatives.all_effects(u)

    def organic_logits(self, users: np.ndarray) -> np.ndarray:
        w, cfg = self.base, self.base.config
        return cfg.base_logit + w.organic_bias[None] + cfg.affinity * w.users[users] @ w.organic.T

    def fatigue(self, exposures: np.ndarray, ads_seen: np.ndarray) -> np.ndarray:
        """(B, n_ads) attraction factor after ``exposures`` (B, n_ads) of each ad and ``ads_seen`` (B,) ads."""
        c = self.config
        return c.fatigue_same_ad ** exposures * ((1.0 - c.ad_blindness) ** ads_seen)[:, None]


def make_world2(world_cfg: WorldConfig, cfg: World2Config, rng: np.random.Generator,
                encoder: Callable[[list[str]], np.ndarray] | None = None) -> World2:
    """Draw the base world with ``rng`` (as :func:`make_world`), then the creatives."""
    cfg.check(world_cfg)
    base = make_world(world_cfg, rng)
    creatives = make_creatives(world_cfg.n_ads, base.users, cfg.creatives, rng, encoder)
    return World2(base=base, config=cfg, creatives=creatives,
                  kappa=position_effects(world_cfg.page_size, cfg.position_eta),
                  reserves=slot_reserves(cfg.reserve_levels, float(np.median(base.value))))


@dataclass(frozen=True)
class PageChoiceWorldConfig(WorldConfig):
    """A :class:`WorldConfig` whose pages are chosen as a whole (so logs draw whole pages with organic items)."""

    @property
    def slate_effects(self) -> bool:
        return True


@dataclass(frozen=True)
class PageChoiceWorld(World):
    """The second world's page model behind the first world's API, for the pipelines and the engine as they are.

    Each ad's default creative is the one best for everyone (where a per-creative bandit converges), folded into
    the ad's vector and bias; ``no_click_logit`` is folded into every bias, so ``ad_ctr`` is an item's click
    probability alone on a page, ``examination`` is the position effect ``kappa`` and :meth:`page_click_prob` the
    multinomial logit with a no-click option (at most one click a page). Every click method takes ``creatives=``
    (same shape as ``ads``: the creative shown in each slot; None = the default): creative ``c`` of ad ``a`` adds
    ``creative_quality[a, c] + <u, creative_direction[a, c]>`` to the ad's logit (both relative to the default
    creative, so they are 0 there). ``creative_embedding`` (n_ads, C, e) is what models may see of the creatives:
    their texts' encoder vectors (the match directions are a hidden projection of them).
    Fatigue, the variable ad load, per-slot reserves and learning bidders need sessions and pages the engine does not
    have: they live in :mod:`genads.market.headroom` only.
    """

    kappa: np.ndarray | None = None
    creative_quality: np.ndarray | None = None
    """(n_ads, C) logit offset of each creative for everyone, relative to the ad's default creative."""
    creative_direction: np.ndarray | None = None
    """(n_ads, C, dim) match direction of each creative, relative to the ad's default creative."""
    creative_embedding: np.ndarray | None = None
    """(n_ads, C, e) the creatives' text embeddings (observable)."""
    default_creative: np.ndarray | None = None
    """(n_ads,) the creative shown when none is given (best for everyone)."""

    @property
    def examination(self) -> np.ndarray:
        return self.kappa

    @property
    def n_creatives(self) -> int:
        return 1 if self.creative_quality is None else self.creative_quality.shape[1]

    def creative_lift(self, users: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """(B, k, C) true logit offset of every creative of ``ads`` (B, k) for ``users`` (B,), relative to the
        default creative (0 where the ad is -1)."""
        safe = np.maximum(ads, 0)
        lift = self.creative_quality[safe] + np.einsum("bd,bkcd->bkc", self.users[users], self.creative_direction[safe])
        return np.where((ads >= 0)[..., None], lift, 0.0)

    def ad_ctr(self, users: np.ndarray, ads: np.ndarray, creatives: np.ndarray | None = None) -> np.ndarray:
        """Ground-truth CTR of ``ads`` (B, k) shown with ``creatives`` (B, k; None = the default) for ``users``."""
        ctr = super().ad_ctr(users, ads)
        if creatives is None or self.creative_quality is None:
            return ctr
        safe, c = np.maximum(ads, 0), np.clip(creatives, 0, self.n_creatives - 1)
        lift = self.creative_quality[safe, c] + np.einsum("bd,bkd->bk", self.users[users],
                                                          self.creative_direction[safe, c])
        logit = np.log(np.maximum(ctr, 1e-300)) - np.log1p(-np.minimum(ctr, 1 - 1e-16)) + lift
        return np.where(ads >= 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    def attractiveness(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None = None,
                       creatives: np.ndarray | None = None) -> np.ndarray:
        a = super().attractiveness(users, ads, organic)
        if creatives is not None:
            a[:, list(self.config.ad_positions)] = self.ad_ctr(users, ads, creatives) * self.cannibalised(ads)
        return a

    def page_click_prob(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None = None,
                        creatives: np.ndarray | None = None) -> np.ndarray:
        a = self.attractiveness(users, ads, organic, creatives)
        return page_probs(a / np.maximum(1.0 - a, 1e-12), self.kappa, 0.0)

    def page_clicks(self, users: np.ndarray, ads: np.ndarray, organic: np.ndarray | None, click_draw: np.ndarray,
                    continue_draw: np.ndarray | None = None, creatives: np.ndarray | None = None) -> np.ndarray:
        """(B, page_size) one click at most per page: the position of ``click_draw[:, 0]`` in the choice's CDF."""
        pos = draw_choice(self.page_click_prob(users, ads, organic, creatives), click_draw[:, 0])
        out = np.zeros((len(pos), self.config.page_size), dtype=bool)
        out[np.flatnonzero(pos >= 0), pos[pos >= 0]] = True
        return out


def page_choice_world(world_cfg: WorldConfig, cfg: World2Config, rng: np.random.Generator,
                      encoder: Callable[[list[str]], np.ndarray] | None = None) -> PageChoiceWorld:
    """Draw the second world (:func:`make_world2`) and wrap its page model as a :class:`PageChoiceWorld`."""
    if world_cfg.affinity <= 0 and cfg.creatives.match_std > 0:
        raise ValueError("world.affinity must be > 0 to carry the creatives' match term")
    w2 = make_world2(world_cfg, cfg, rng, encoder)
    b, cr, rows = w2.base, w2.creatives, np.arange(world_cfg.n_ads)
    best = best_for_everyone(cr, b.users)
    parts = {f.name: getattr(b, f.name) for f in fields(b)}
    v0 = cfg.no_click_logit
    parts.update(config=PageChoiceWorldConfig(**{f.name: getattr(world_cfg, f.name) for f in fields(world_cfg)}),
                 ads=b.ads + cr.direction[rows, best] / max(world_cfg.affinity, 1e-12),
                 ad_bias=b.ad_bias + cr.quality[rows, best] - v0, organic_bias=b.organic_bias - v0)
    return PageChoiceWorld(**parts, kappa=w2.kappa, creative_quality=cr.quality - cr.quality[rows, best][:, None],
                           creative_direction=cr.direction - cr.direction[rows, best][:, None],
                           creative_embedding=cr.embedding, default_creative=best)
