"""The pipelines a comparison can run: a registry name -> builder over one seed's trained parts.

Adding a pipeline is one entry in :data:`REGISTRY`. Besides the cascade, genads end to end and its
ablations, it holds the **attribution ladder** (each rung changes one stage, from the cascade to
genads end to end) and the **oracle rows** (each pipeline's candidates ranked and priced with the
true CTR, i.e. a perfect pCTR model):

1. ``cascade`` — SASRec retrieval -> DIN pCTR -> GSP.
2. ``gen_retrieval`` — the slate model generates the candidates without bids (alpha = 0) -> DIN -> GSP.
3. ``e2e_din_pctr`` — the slate model generates with token-level bids -> DIN -> GSP.
4. ``e2e_gsp`` — the same candidates, the reward model's pCTR -> GSP.
5. ``e2e`` — and the payment network's prices.

``cascade_oracle`` and ``e2e_oracle`` are rungs 1 and 3 with the true CTR in place of DIN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from genads.auction.mechanisms import Allocation, gsp
from genads.market.cascade import Cascade
from genads.market.e2e import EndToEnd
from genads.market.world import World

LADDER = ("cascade", "gen_retrieval", "e2e_din_pctr", "e2e_gsp", "e2e")
"""The attribution ladder, in order: each rung's change over the previous one is reported with its CI."""
ORACLES = ("cascade_oracle", "e2e_oracle")


@dataclass(frozen=True)
class Parts:
    """One seed's trained pipelines and the world they serve."""

    world: World
    cascade: Cascade
    e2e: EndToEnd


class RankerQuality:
    """The cascade's DIN pCTR behind the end-to-end quality interface."""

    def __init__(self, ranker) -> None:
        self.ranker = ranker

    def pctr(self, history: np.ndarray, items: np.ndarray, bids: np.ndarray) -> np.ndarray:
        return self.ranker.pctr(history, items)


class Staged:
    """Candidates from ``source`` -> pCTR (a ranker, or the true CTR) -> top ``candidates`` by eCPM -> GSP.

    ``source(history, live, bids)`` gives (B, k) ads (-1 = none). With ``world`` set, the pCTR is the
    world's true CTR (the oracle rows): the engine then passes ``users`` to :meth:`propose`.
    """

    def __init__(self, name: str, source: Callable, candidates: int, slot_ctr: np.ndarray, ranker=None,
                 world: World | None = None) -> None:
        if (ranker is None) == (world is None):
            raise ValueError("Staged needs exactly one of ranker= (learned pCTR) and world= (true CTR)")
        self.name, self.source, self.candidates, self.ranker, self.world = name, source, candidates, ranker, world
        self.slot_ctr = np.asarray(slot_ctr, dtype=float)
        self.needs_users = world is not None

    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray,
                users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = self.candidates
        pool = self.source(history, live, bids) if live.any() else None
        if pool is None:
            return np.full((len(history), n), -1), np.full((len(history), n), 1e-9)
        if self.world is not None:
            if users is None:
                raise ValueError(f"{self.name} reads the true CTR: propose needs users=")
            pctr = self.world.ad_ctr(users, pool)
        else:
            pctr = np.where(pool >= 0, self.ranker.pctr(history, np.where(pool >= 0, pool + 1, 0)), 0.0)
        ecpm = np.where(pool >= 0, bids[np.maximum(pool, 0)] * pctr, -1.0)
        best = np.argsort(-ecpm, axis=1, kind="stable")[:, :n]
        ads, quality = np.take_along_axis(pool, best, 1), np.take_along_axis(pctr, best, 1)
        pad = n - ads.shape[1]
        ads = np.pad(ads, ((0, 0), (0, pad)), constant_values=-1)
        quality = np.pad(quality, ((0, 0), (0, pad)), constant_values=1e-9)
        return ads, np.where(ads >= 0, np.maximum(quality, 1e-9), 1e-9)

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation:
        return gsp(bids, quality, len(self.slot_ctr), slot_ctr=self.slot_ctr)


def _cascade_oracle(p: Parts):
    return Staged("cascade_oracle", lambda h, live, b: p.cascade.retrieve(h, live), p.cascade.cfg.candidates,
                  p.world.slot_ctr, world=p.world)


def _gen_retrieval(p: Parts):
    blind = p.e2e.with_config(bidding=replace(p.e2e.cfg.bidding, alpha=0.0))
    return Staged("gen_retrieval", blind.generate, p.e2e.cfg.candidates, p.world.slot_ctr, ranker=p.cascade.ranker)


def _e2e_oracle(p: Parts):
    return Staged("e2e_oracle", p.e2e.generate, p.e2e.cfg.candidates, p.world.slot_ctr, world=p.world)


REGISTRY: dict[str, Callable[[Parts], object]] = {
    "cascade": lambda p: p.cascade,
    "gen_retrieval": _gen_retrieval,
    "e2e_din_pctr": lambda p: p.e2e.with_config(quality=RankerQuality(p.cascade.ranker), payments="gsp"),
    "e2e_gsp": lambda p: p.e2e.with_config(payments="gsp"),
    "e2e": lambda p: p.e2e.with_config(),
    "e2e_mean_bid": lambda p: p.e2e.with_config(bidding=replace(p.e2e.cfg.bidding, aggregate="mean")),
    "e2e_no_bid": lambda p: p.e2e.with_config(bidding=replace(p.e2e.cfg.bidding, alpha=0.0)),
    "cascade_oracle": _cascade_oracle,
    "e2e_oracle": _e2e_oracle,
}
"""name -> builder(parts) of the pipeline (the ``Pipeline`` protocol of :mod:`genads.market.engine`)."""


def build(name: str, parts: Parts):
    if name not in REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name](parts)
