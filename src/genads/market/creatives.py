"""Creatives in the world: several per ad, each with a text, its embedding, and a click effect.

Each ad has ``per_ad`` creatives (CreativeRanking, the public creative-selection dataset of Wang et al.
2021, "A hybrid bandit model with visual priors for creative ranking in display advertising", WWW, holds
1.7M creatives of 500k products: 3.4 per product). A creative's text is a selling angle on the ad's
product ("Trail running shoes: free next-day delivery"); the texts are embedded by the project's text
encoder (MiniLM, :class:`genads.creative.encoders.MiniLMEncoder`) or, in tests, the deterministic hashing
encoder, and projected into the world's latent space by a fixed random projection.

The click effect of creative ``c`` of ad ``a`` for user ``u`` is a logit offset

    delta(u, a, c) = q[a, c] + gamma * <u, d[a, c]>,

``q`` the creative's quality for everyone (centred within each ad, standard deviation ``quality_std``: what
a per-creative bandit learns from clicks) and ``d`` the direction of its embedding (centred within the ad)
scaled by ``gamma`` so that the user-specific match term has standard deviation ``match_std`` over users
and creatives: what only a personalised choice of the creative (EGA's (ad, creative) generation,
Uni-AdGen's personalised creatives) can exploit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CATEGORIES = (("skincare", "face serum", "night cream", "sunscreen", "cleanser"),
              ("running", "trail running shoes", "running jacket", "sports watch", "water bottle"),
              ("kitchen", "chef knife", "cast iron pan", "coffee grinder", "rice cooker"),
              ("gaming", "wireless controller", "gaming headset", "mechanical keyboard", "gaming mouse"),
              ("home", "bedside lamp", "linen duvet", "scented candle", "wall clock"),
              ("travel", "carry-on suitcase", "travel pillow", "packing cubes", "passport wallet"),
              ("baby", "baby stroller", "nappy bag", "baby monitor", "bottle warmer"),
              ("garden", "pruning shears", "garden hose", "seed starter kit", "bird feeder"),
              ("books", "crime novel", "cookbook", "travel guide", "children's picture book"),
              ("pets", "dog harness", "cat tree", "pet fountain", "chew toy"),
              ("fashion", "wool coat", "leather boots", "silk scarf", "denim jacket"),
              ("audio", "noise-cancelling headphones", "bluetooth speaker", "turntable", "earbuds"))
ANGLES = ("save 30% today", "rated 4.8 stars by 2,000 buyers", "free next-day delivery", "new season colours",
          "made from natural materials", "limited edition, while stocks last", "loved by professionals",
          "try it risk-free for 30 days")


@dataclass(frozen=True)
class CreativeConfig:
    per_ad: int = 3
    """Creatives per ad (CreativeRanking: 3.4 per product)."""
    quality_std: float = 0.25
    """Within-ad standard deviation of the creatives' CTR logit for everyone (assumed; see docs/market.md)."""
    match_std: float = 0.25
    """Standard deviation of the user-specific creative match logit (assumed; see docs/market.md)."""
    encoder: str = "minilm"
    """"minilm" (the project's text encoder) or "hashing" (deterministic stand-in, no model files)."""

    def __post_init__(self) -> None:
        if not 1 <= self.per_ad <= len(ANGLES):
            raise ValueError(f"per_ad={self.per_ad} must be in [1, {len(ANGLES)}]")
        if self.quality_std < 0 or self.match_std < 0:
            raise ValueError(f"quality_std={self.quality_std} and match_std={self.match_std} must be >= 0")
        if self.encoder not in ("minilm", "hashing"):
            raise ValueError(f"encoder={self.encoder!r} must be 'minilm' or 'hashing'")


@dataclass(frozen=True)
class Creatives:
    texts: list[str]
    """n_ads * per_ad texts, ad-major."""
    quality: np.ndarray
    """(n_ads, C) logit offset for everyone, centred within each ad."""
    direction: np.ndarray
    """(n_ads, C, dim) match direction in the latent space (gamma included), centred within each ad."""
    embedding: np.ndarray | None = None
    """(n_ads, C, e) the texts' encoder vectors: what a model may see of each creative."""

    @property
    def per_ad(self) -> int:
        return self.quality.shape[1]

    def effect(self, user_vecs: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """(B, k, C) logit offset of every creative of ``ads`` (B, k) (-1 = empty, any value) for users (B, dim)."""
        safe = np.maximum(ads, 0)
        return self.quality[safe] + np.einsum("bd,bkcd->bkc", user_vecs, self.direction[safe])

    def all_effects(self, user_vecs: np.ndarray) -> np.ndarray:
        """(B, n_ads, C) logit offset of every creative of every ad."""
        return self.quality[None] + np.einsum("bd,acd->bac", user_vecs, self.direction)


def best_for_everyone(creatives: Creatives, users: np.ndarray) -> np.ndarray:
    """(n_ads,) each ad's creative of highest mean click effect over ``users`` (U, dim): ``q + <mean user, d>``,
    the one creative a per-creative bandit that ignores who is looking converges to."""
    return (creatives.quality + np.einsum("d,acd->ac", users.mean(0), creatives.direction)).argmax(1)


def encoder_for(name: str) -> Callable[[list[str]], np.ndarray]:
    from genads.creative.encoders import HashingEncoder, MiniLMEncoder

    return MiniLMEncoder() if name == "minilm" else HashingEncoder(dim=256)


def creative_texts(n_ads: int, per_ad: int, rng: np.random.Generator) -> list[str]:
    """Each ad: a product of one category and ``per_ad`` distinct selling angles."""
    texts = []
    for _ in range(n_ads):
        cat = CATEGORIES[rng.integers(len(CATEGORIES))]
        product = cat[1 + rng.integers(len(cat) - 1)]
        for angle in rng.choice(len(ANGLES), per_ad, replace=False):
            texts.append(f"{product[0].upper()}{product[1:]} ({cat[0]}): {ANGLES[angle]}")
    return texts


def make_creatives(n_ads: int, users: np.ndarray, cfg: CreativeConfig, rng: np.random.Generator,
                   encoder: Callable[[list[str]], np.ndarray] | None = None) -> Creatives:
    """Creatives of ``n_ads`` ads for a world whose users are ``users`` (U, dim); ``encoder`` overrides cfg.encoder."""
    C, dim = cfg.per_ad, users.shape[1]
    texts = creative_texts(n_ads, C, rng)
    unique = sorted(set(texts))
    vecs = np.asarray((encoder or encoder_for(cfg.encoder))(unique), dtype=float)
    index = {t: i for i, t in enumerate(unique)}
    emb = vecs[[index[t] for t in texts]]
    proj = rng.standard_normal((emb.shape[1], dim)) / np.sqrt(dim)
    d = (emb @ proj).reshape(n_ads, C, dim)
    d -= d.mean(1, keepdims=True)
    raw = users[rng.integers(len(users), size=min(len(users), 500))] @ d.reshape(-1, dim).T
    scale = cfg.match_std / raw.std() if C > 1 and raw.std() > 0 else 0.0
    z = rng.standard_normal((n_ads, C)) * cfg.quality_std * (np.sqrt(C / (C - 1)) if C > 1 else 0.0)
    return Creatives(texts=texts, quality=z - z.mean(1, keepdims=True), direction=d * scale,
                     embedding=emb.reshape(n_ads, C, -1).astype(np.float32))


class CreativeBandit:
    """The cascade's creative choice after the auction: Beta-Bernoulli Thompson sampling per (ad, creative),
    as production creative-selection systems do (Wang et al. 2021's bandit baseline)."""

    def __init__(self, n_ads: int, per_ad: int, rng: np.random.Generator) -> None:
        self.clicks = np.zeros((n_ads, per_ad))
        self.shows = np.zeros((n_ads, per_ad))
        self.rng = rng

    def choose(self, ads: np.ndarray) -> np.ndarray:
        """Creative index for each ad of ``ads`` (any shape; -1 entries get 0)."""
        safe = np.maximum(ads, 0)
        draw = self.rng.beta(1.0 + self.clicks[safe], 1.0 + self.shows[safe] - self.clicks[safe])
        return np.where(ads >= 0, draw.argmax(-1), 0)

    def update(self, ads: np.ndarray, creatives: np.ndarray, clicked: np.ndarray) -> None:
        keep = ads >= 0
        np.add.at(self.shows, (ads[keep], creatives[keep]), 1.0)
        np.add.at(self.clicks, (ads[keep], creatives[keep]), clicked[keep].astype(float))
