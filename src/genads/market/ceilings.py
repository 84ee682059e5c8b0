"""The ceilings of the market verdict: the budget-paced perfect-pCTR oracle and the slate-aware headroom.

:class:`PacedOracle` is ``oracle_paced`` of :mod:`genads.market.verdict` (the myopic oracle,
:class:`genads.market.value_study.Oracle`, with pacing duals); :func:`slate_headroom` measures how much an
ordered slate chosen under the world's true click model could add over the myopic top-k, which bounds what a
slate-aware generator can gain in that world.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from genads.market.engine import make_traffic
from genads.market.value_study import Market, Oracle, draw_world
from genads.market.world import make_world

if TYPE_CHECKING:
    from genads.market.verdict import VerdictConfig


class PacedOracle(Oracle):
    """The oracle with budget pacing duals: each advertiser's true eCPM is divided by ``1 + lambda``, and lambda
    follows ``lambda <- max(0, lambda + eta * (spend / target - 1))`` after each batch on the oracle's own
    expected spend (GSP prices x true click probability). ``target`` is the advertiser's budget left (by the
    oracle's own expected spend) spread evenly over the requests left (``requests``: the episode's length; None:
    the budget spread evenly over the episode from the start, the plain dual-gradient rule, which also paces an
    advertiser whose budget could never run out). The auction ranks and prices on the paced scores (quality =
    true CTR / (1 + lambda))."""

    name = "oracle_paced"

    def __init__(self, market: Market, n: int, batch_size: int, eta: float, requests: int | None = None) -> None:
        super().__init__(market, n)
        self.eta, self.batch_size, self.requests = eta, batch_size, requests
        self.reset()

    def reset(self) -> None:
        self.lam = np.zeros(self.market.world.config.n_advertisers)
        self.spent = np.zeros_like(self.lam)
        self.seen = 0

    def propose(self, history, live, bids, users):
        del history
        w = self.market.world
        ctr = w.all_ad_ctr(users)
        shade = 1.0 / (1.0 + self.lam[w.owner])
        score = np.where((live & (bids > 0))[None], ctr * (bids * shade)[None], -np.inf)
        ads = np.argsort(-score, axis=1, kind="stable")[:, : self.n]
        ok = np.take_along_axis(score, ads, 1) > -np.inf
        ads = np.where(ok, ads, -1)
        q = np.where(ok, np.take_along_axis(ctr, np.maximum(ads, 0), 1) * shade[w.owner[np.maximum(ads, 0)]], 1e-9)
        # the dual step on this batch's expected spend
        cand_bids = np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0)
        alloc = self.auction(cand_bids, q)
        won = np.where(alloc.winners >= 0, np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1), -1)
        p_click = w.slot_ctr[None] * w.ad_ctr(users, won)
        spend = np.zeros(len(self.lam))
        np.add.at(spend, w.owner[np.maximum(won, 0)][won >= 0], (p_click * alloc.prices)[won >= 0])
        if self.requests is None:
            target = w.budget_rate * len(users) / 1000.0
        else:
            left = np.maximum(w.budget_rate * self.requests / 1000.0 - self.spent, 0.0)
            target = left * len(users) / max(self.requests - self.seen, len(users))
        self.spent += spend
        self.seen += len(users)
        self.lam = np.maximum(0.0, self.lam + self.eta * (spend / np.maximum(target, 1e-12) - 1.0))
        return ads, np.maximum(q, 1e-9)

def slate_headroom(world, users: np.ndarray, organic: np.ndarray, pool: int) -> dict:
    """Best ordered slate of the ``pool`` ads of highest true CTR x value (every ordered choice of ``ad_load``
    of them, under the world's true click model, with the request's organic feed) against the myopic oracle's
    slate (the top ``ad_load`` in order); expected advertiser value (value x click probability)."""
    k = world.config.ad_load
    ad_pos = list(world.config.ad_positions)
    perms = np.array(list(itertools.permutations(range(pool), k)))  # (P, k)
    best, myopic = 0.0, 0.0
    for u, org in zip(users, organic, strict=True):
        ev = world.all_ad_ctr(np.array([u]))[0] * world.value
        top = np.argsort(-ev, kind="stable")[:pool]
        slates = top[perms]
        p = world.page_click_prob(np.full(len(slates), u), slates, np.repeat(org[None], len(slates), 0))[:, ad_pos]
        val = (p * world.value[slates]).sum(1)
        best += float(val.max())
        myopic += float(val[0])  # perms[0] = (0, 1, ..., k-1): the top k in order
    return {"best_slate_value": best / len(users), "myopic_value": myopic / len(users),
            "headroom": best / max(myopic, 1e-12) - 1.0, "requests": len(users), "pool": pool}

def headroom(vc: VerdictConfig, seed: int) -> dict:
    """Slate-aware headroom of the seed's world and, when configured, of the slate world drawn with the same seed."""
    out = {}
    for name, wc in (("market_world", vc.sim.world), ("slate_world", vc.slate_world)):
        if wc is None:
            continue
        rng = np.random.default_rng(seed)
        world = draw_world(vc.sim, rng) if name == "market_world" else make_world(wc, rng)
        traffic = make_traffic(world, replace(vc.sim.episode, requests=vc.slate_requests),
                               np.random.default_rng(seed + 1000))
        out[name] = slate_headroom(world, traffic.users, traffic.organic, vc.slate_pool)
    return out
