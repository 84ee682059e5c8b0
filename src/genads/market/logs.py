"""Training logs the simulator produces: click histories and an exploration impression log.

Both pipelines learn only from these logs (never from the latent vectors): the sequence models
(SASRec, the slate model) from click histories, the pCTR ranker, the reward model and the payment
network from the logged impressions. Items are indexed as in :mod:`genads.data.split`: ad ``a`` is
item ``a + 1`` and 0 is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genads.data.split import EvalSet, SequenceSplit, SplitConfig, left_pad
from genads.market.world import World


@dataclass(frozen=True)
class LogConfig:
    """How much history and exploration traffic the models are trained on."""

    history_len: int = 20
    """Ads each user clicked before the logs start (drawn from its true CTRs)."""
    history_sharpness: float = 2.0
    """Past clicks are drawn with probability proportional to ctr ** sharpness."""
    log_requests: int = 30000
    """Requests served by the exploration policy (random live ads in random ad slots)."""
    max_history: int = 30
    logging_temperature: float | None = None
    """None: the exploration log shows uniformly random ads (the first worlds). A value: the log comes from a
    previous system instead, which shows each request's ads by Plackett-Luce sampling from ``softmax((its pCTR
    logit + log value) / temperature)`` (:mod:`genads.market.logging_policy`): a non-uniform, biased log."""
    logging_noise: float = 0.5
    """Standard deviation of the previous system's pCTR logit error (with ``logging_temperature``)."""

    def __post_init__(self) -> None:
        if self.logging_temperature is not None and self.logging_temperature <= 0:
            raise ValueError(f"logging_temperature={self.logging_temperature} must be > 0 (or None: uniform)")
        if self.logging_noise < 0:
            raise ValueError(f"logging_noise={self.logging_noise} must be >= 0")
        for name in ("history_len", "log_requests", "max_history"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.history_len < 3:
            raise ValueError(f"history_len={self.history_len} must be >= 3 (train + validation + test)")
        if self.history_sharpness < 0:
            raise ValueError(f"history_sharpness={self.history_sharpness} must be >= 0")


@dataclass(frozen=True)
class Impressions:
    """The exploration log: one row per ad shown."""

    user: np.ndarray
    """(M,) user of the request."""
    history: np.ndarray
    """(M, max_history) left-padded item indices the user had clicked before the request."""
    item: np.ndarray
    """(M,) item index (ad + 1) shown."""
    slot: np.ndarray
    """(M,) ad slot (0 = the top ad position)."""
    click: np.ndarray
    """(M,) 1.0 if clicked."""
    creative: np.ndarray | None = None
    """(M,) creative shown (worlds with creatives: the previous system rotated each ad's creatives uniformly);
    None in the first worlds."""


@dataclass(frozen=True)
class Logs:
    histories: list[np.ndarray]
    """Per user, clicked item indices in time order (past clicks, then clicks in the log)."""
    impressions: Impressions
    n_ads: int

    def split(self) -> SequenceSplit:
        """Leave-one-out split of the click histories (every user has at least 3 clicks)."""
        return sequence_split(self.histories, self.n_ads)


def split_impressions(imp: Impressions, k: int, holdout: float) -> tuple[Impressions, Impressions]:
    """(train, held out): the last ``holdout`` share of the logged requests (``k`` rows each) held out."""
    n = len(imp.item) // k
    cut = k * (n - round(holdout * n))
    part = lambda sl: Impressions(user=imp.user[sl], history=imp.history[sl], item=imp.item[sl],  # noqa: E731
                                  slot=imp.slot[sl], click=imp.click[sl],
                                  creative=None if imp.creative is None else imp.creative[sl])
    return part(slice(0, cut)), part(slice(cut, None))


def make_logs(world: World, cfg: LogConfig, rng: np.random.Generator) -> Logs:
    """Past clicks for every user, then the exploration log on top of them."""
    imp, histories = exploration_log(world, past_clicks(world, cfg, rng), cfg, rng)
    return Logs(histories=histories, impressions=imp, n_ads=world.config.n_ads)


def sequence_split(histories: list[np.ndarray], n_ads: int, max_history: int = 50) -> SequenceSplit:
    """Leave-one-out split (last click = test, second last = validation) over items 1..n_ads."""
    users = np.arange(len(histories))
    item_ids = np.arange(-1, n_ads, dtype=np.int64)  # item index i <-> ad i - 1
    valid = EvalSet(users, left_pad([s[:-2] for s in histories], max_history), np.array([s[-2] for s in histories]))
    test = EvalSet(users, left_pad([s[:-1] for s in histories], max_history), np.array([s[-1] for s in histories]))
    cfg = SplitConfig(max_history=max_history)
    return SequenceSplit(item_ids, users, [s[:-2] for s in histories], valid, test, cfg)


def past_clicks(world: World, cfg: LogConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """``history_len`` distinct ads per user, drawn without replacement with weight ctr ** sharpness."""
    out = []
    for start in range(0, world.config.n_users, 512):
        users = np.arange(start, min(start + 512, world.config.n_users))
        logw = cfg.history_sharpness * np.log(world.all_ad_ctr(users))
        keys = logw + rng.gumbel(size=logw.shape)  # Gumbel top-k = sampling without replacement
        top = np.argsort(-keys, axis=1)[:, : cfg.history_len]
        out += [row[::-1] + 1 for row in top]  # least likely first: the strongest interest is the latest
    return out


def previous_system(world: World, users: np.ndarray, k: int, cfg: LogConfig, rng: np.random.Generator) -> np.ndarray:
    """(len(users), k) ads a previous system showed: Plackett-Luce over its noisy pCTR logit + log value."""
    from genads.market.logging_policy import logging_scores, plackett_luce

    out = np.empty((len(users), k), dtype=np.int64)
    for s in range(0, len(users), 1024):
        ctr = np.clip(world.all_ad_ctr(users[s:s + 1024]), 1e-12, 1 - 1e-12)
        scores = logging_scores(np.log(ctr / (1 - ctr)), world.value, cfg.logging_noise, rng)
        out[s:s + 1024] = plackett_luce(scores, k, cfg.logging_temperature, rng)[0]
    return out


def exploration_log(world: World, histories: list[np.ndarray], cfg: LogConfig,
                    rng: np.random.Generator) -> tuple[Impressions, list[np.ndarray]]:
    """Serve ``log_requests`` requests with uniformly random ads; clicks follow the true click model
    (whole pages with an organic feed when the world has slate effects).

    Returns the impressions and the histories extended with the clicks of the log (in request order).
    """
    k = world.config.ad_load
    users = rng.integers(world.config.n_users, size=cfg.log_requests)
    if cfg.logging_temperature is None:
        ads = np.stack([rng.choice(world.config.n_ads, k, replace=False) for _ in range(cfg.log_requests)])
    else:
        ads = previous_system(world, users, k, cfg, rng)
    n_creatives = getattr(world, "n_creatives", 1)
    creatives = rng.integers(n_creatives, size=ads.shape) if n_creatives > 1 else None  # a uniform rotation
    extra = {} if creatives is None else {"creatives": creatives}
    if world.config.slate_effects:  # whole pages: an organic feed (noisy true-CTR ranking) around the ads
        clicks = np.empty(ads.shape, dtype=bool)
        n_org = world.config.page_size - k
        ad_pos = list(world.config.ad_positions)
        for s in range(0, len(users), 1024):
            u = users[s:s + 1024]
            keys = np.log(world.organic_ctr(u)) + rng.gumbel(size=(len(u), world.config.n_organic))
            organic = np.argsort(-keys, axis=1)[:, :n_org]
            shape = (len(u), world.config.page_size)
            part = {k: v[s:s + 1024] for k, v in extra.items()}
            clicks[s:s + 1024] = world.page_clicks(u, ads[s:s + 1024], organic, rng.random(shape),
                                                   rng.random(shape), **part)[:, ad_pos]
    else:  # the original world: independent clicks per ad slot (kept draw for draw)
        ctr = world.ad_ctr(users, ads, **extra) * world.slot_ctr[None]
        clicks = rng.random(ctr.shape) < ctr
    extended = [list(h) for h in histories]
    hist_rows = []
    for r in range(cfg.log_requests):
        hist_rows.append(np.asarray(extended[users[r]][-cfg.max_history:], dtype=np.int64))
        extended[users[r]] += [int(a) + 1 for a in ads[r][clicks[r]]]
    history = left_pad([h for h in hist_rows for _ in range(k)], cfg.max_history)
    imp = Impressions(user=np.repeat(users, k), history=history, item=ads.reshape(-1) + 1,
                      slot=np.tile(np.arange(k), cfg.log_requests), click=clicks.reshape(-1).astype(np.float32),
                      creative=None if creatives is None else creatives.reshape(-1))
    return imp, [np.asarray(h, dtype=np.int64) for h in extended]
