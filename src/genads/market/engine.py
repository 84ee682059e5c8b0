"""One episode of traffic through a pipeline: auctions, budgets, clicks and the market's figures.

Requests arrive in batches. For each batch the bidders bid, the pipeline proposes candidates with
their pCTR, its auction allocates the ad slots and sets per-click prices, and the page (ads at the
ad positions, the organic feed elsewhere) is shown. Clicks come from the world's click model
(position-based, or the dependent/cascade model with cannibalisation, :meth:`World.page_clicks`)
through common random numbers fixed by the traffic (uniforms per request and position), so two
pipelines on the same traffic differ only by what they show and charge.

Budgets are gated per request (:func:`serve_batch`): an ad takes part in a batch only while its
advertiser's budget covers its bid, and within the batch, in request order, an ad is shown only if
what is left of its advertiser's budget covers the price of every click its ads on that page could
get; otherwise the slot stays empty (and, under the cascade model, the page's clicks are drawn
without it). Every click is charged its full price: a click is never served free (``absorbed_per_mille``
stays 0; the former rule, :func:`charge_clicks`, gave 4-14% of RPM away) and a budget is never
overspent. The expected revenue of the withdrawn slots (their click probability on the ungated page
x price) is reported as revenue lost to exhausted budgets (``lost_rpm``); ``gross_rpm`` = RPM + lost RPM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from genads.auction.mechanisms import Allocation
from genads.market.bidders import STRATEGIC, TRUTHFUL, AuctionBatch, BidderConfig, Bidders
from genads.market.world import World


class Pipeline(Protocol):
    name: str

    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation: ...


@dataclass(frozen=True)
class EpisodeConfig:
    requests: int = 6000
    batch_size: int = 200
    """Requests per batch; bidders re-pace and best-respond after every batch."""
    audit_auctions: int = 256
    """Auctions kept (evenly over the episode) for the regret audit."""
    organic_noise: float = 1.0
    """Gumbel noise scale of the organic ranker (it ranks organic items by noisy true CTR)."""

    def __post_init__(self) -> None:
        for name in ("requests", "batch_size", "audit_auctions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.organic_noise < 0:
            raise ValueError(f"organic_noise={self.organic_noise} must be >= 0")


@dataclass(frozen=True)
class Traffic:
    """The requests of an episode and every random draw that decides its clicks."""

    users: np.ndarray
    """(T,) user of each request."""
    click_draw: np.ndarray
    """(T, page_size) uniforms: position p is clicked iff draw < examination[p] * ctr."""
    conversion_draw: np.ndarray
    """(T, page_size) uniforms: a click converts iff draw < cvr."""
    organic: np.ndarray
    """(T, page_size - ad_load) organic items of each request (best first)."""
    continue_draw: np.ndarray | None = None
    """(T, page_size) uniforms of the cascade click model: examination goes on past p iff draw < r_p (...)."""


def make_traffic(world: World, cfg: EpisodeConfig, rng: np.random.Generator) -> Traffic:
    wc = world.config
    users = rng.integers(wc.n_users, size=cfg.requests)
    n_org = wc.page_size - wc.ad_load
    organic = np.empty((cfg.requests, n_org), dtype=np.int64)
    for s in range(0, cfg.requests, 1024):
        keys = np.log(world.organic_ctr(users[s:s + 1024])) + cfg.organic_noise * rng.gumbel(size=(len(users[s:s + 1024]), wc.n_organic))
        organic[s:s + 1024] = np.argsort(-keys, axis=1)[:, :n_org]
    click_draw, conversion_draw = rng.random((cfg.requests, wc.page_size)), rng.random((cfg.requests, wc.page_size))
    return Traffic(users=users, click_draw=click_draw, conversion_draw=conversion_draw, organic=organic,
                   continue_draw=rng.random((cfg.requests, wc.page_size)))


@dataclass
class Served:
    """What :func:`serve_batch` showed and charged."""

    ads: np.ndarray
    """(B, k) ads shown (-1 = empty or withdrawn)."""
    clicked: np.ndarray
    """(B, k) bool clicks on the ad slots."""
    charge: np.ndarray
    """(B, k) amount charged: the full price of every click."""
    withdrawn: np.ndarray
    """(B, k) bool: won the auction but withdrawn because the budget could not cover the page."""
    lost: float
    """Expected revenue of the withdrawn slots (click probability on the ungated page x price)."""


def serve_batch(world: World, users: np.ndarray, won: np.ndarray, prices: np.ndarray, organic: np.ndarray,
                click_draw: np.ndarray, continue_draw: np.ndarray | None, remaining: np.ndarray,
                creatives: np.ndarray | None = None) -> Served:
    """Show a batch of pages in request order with budgets gated per request, draw and charge the clicks.

    Advertisers whose won slots in the batch cost at most what is left of their budget even if every
    one is clicked are never touched. For the others the pages are served in request order: an ad
    stays only if the budget left covers the prices of all of its advertiser's ads kept so far on the
    page; a slot that does not fit is withdrawn before the page is shown, so the page's clicks are
    drawn without it. Each click is charged its full price. ``creatives`` (B, k): the creative shown in each slot,
    for worlds with creatives (None: the world's default).
    """
    kw = {} if creatives is None else {"creatives": creatives}
    ad_pos = np.asarray(world.config.ad_positions)
    owner = world.owner[np.maximum(won, 0)]
    shown = won.copy()
    clicked = world.page_clicks(users, won, organic, click_draw, continue_draw, **kw)[:, ad_pos] & (won >= 0)
    withdrawn = np.zeros(won.shape, dtype=bool)
    left = np.asarray(remaining, dtype=float).copy()
    worst = np.zeros(len(left))
    np.add.at(worst, owner[won >= 0], prices[won >= 0])
    risky = worst > left + 1e-12
    lost = 0.0
    for r in np.flatnonzero(((won >= 0) & risky[owner]).any(1)) if risky.any() else ():
        need: dict[int, float] = {}
        for j in np.flatnonzero(won[r] >= 0):
            a = int(owner[r, j])
            if not risky[a]:
                continue
            if left[a] - need.get(a, 0.0) < prices[r, j] - 1e-12:
                withdrawn[r, j], shown[r, j] = True, -1
            else:
                need[a] = need.get(a, 0.0) + float(prices[r, j])
        if withdrawn[r].any():
            one = {} if creatives is None else {"creatives": creatives[r:r + 1]}
            p = world.page_click_prob(users[r:r + 1], won[r:r + 1], organic[r:r + 1], **one)[0, ad_pos]
            lost += float((p * prices[r])[withdrawn[r]].sum())
            cd = None if continue_draw is None else continue_draw[r:r + 1]
            clicked[r] = world.page_clicks(users[r:r + 1], shown[r:r + 1], organic[r:r + 1], click_draw[r:r + 1],
                                           cd, **one)[0, ad_pos] & (shown[r] >= 0)
        for j in np.flatnonzero(clicked[r]):
            left[owner[r, j]] -= prices[r, j]
    return Served(shown, clicked, np.where(clicked, prices, 0.0), withdrawn, lost)


def charge_clicks(win_ads: np.ndarray, prices: np.ndarray, clicked: np.ndarray, owner: np.ndarray,
                  remaining: np.ndarray) -> np.ndarray:
    """(B, k) amount charged per click, in request then slot order, never more than the budget left.

    The engine's former rule (a click finding less than its price left was charged the rest: free
    clicks past the budget); kept to measure what it gave away, the engine now uses :func:`serve_batch`.
    """
    left = remaining.copy()
    charged = np.zeros(prices.shape)
    for r, j in zip(*np.nonzero(clicked), strict=True):  # row-major: request order, then slot
        adv = owner[win_ads[r, j]]
        charged[r, j] = min(prices[r, j], max(left[adv], 0.0))
        left[adv] -= charged[r, j]
    return charged


class Tally:
    """Running sums of an episode."""

    def __init__(self, n_adv: int) -> None:
        self.sums: dict[str, float] = dict.fromkeys(
            ("revenue", "clicks", "impressions", "conversions", "adv_welfare", "user_welfare", "expected_clicks",
             "expected_revenue", "expected_value", "oracle_value", "ir_violations", "ir_value_violations", "absorbed", "slots",
             "lost", "withdrawn"), 0.0)
        self.util_by_adv = np.zeros(n_adv)

    def add(self, **kw: float) -> None:
        for k, v in kw.items():
            self.sums[k] += float(v)


def run_episode(world: World, pipeline: Pipeline, histories: np.ndarray, traffic: Traffic, bidder_cfg: BidderConfig,
                cfg: EpisodeConfig, seed: int) -> dict:
    """Serve ``traffic`` with ``pipeline``; ``histories`` (n_users, L) left-padded click histories.

    A pipeline with ``needs_users = True`` (the oracle rows, which read the true CTR) is also given
    ``users=`` (B,) in :meth:`Pipeline.propose`. A pipeline with a ``creatives(history, won, users)`` method
    (worlds with creatives, :mod:`genads.market.creative_choice`) picks the creative of every won slot after the
    auction, and its ``observe(shown, creatives, clicked)`` (when it has one) sees the clicks. Returns the
    episode's figures (per-mille rates, CTR, welfare, IR and budget checks, revenue lost to exhausted budgets,
    strategic bidders' multipliers) and ``audit``: candidate sets for the regret audit.
    """
    wc, slot_ctr = world.config, world.slot_ctr
    ad_pos = np.asarray(wc.ad_positions)
    T = len(traffic.users)
    bidders = Bidders(world, bidder_cfg, T, cfg.batch_size, np.random.default_rng(seed))
    tally = Tally(wc.n_advertisers)
    audit_rows = set(np.linspace(0, T - 1, min(cfg.audit_auctions, T)).round().astype(int).tolist())
    audit: dict[str, list] = {"ads": [], "quality": [], "ctr": [], "bids": []}
    needs_users = getattr(pipeline, "needs_users", False)
    pick, observe = getattr(pipeline, "creatives", None), getattr(pipeline, "observe", None)
    for s in range(0, T, cfg.batch_size):
        rows = np.arange(s, min(s + cfg.batch_size, T))
        users, organic = traffic.users[rows], traffic.organic[rows]
        cont = None if traffic.continue_draw is None else traffic.continue_draw[rows]
        bids = bidders.bids()
        live = (bidders.remaining()[world.owner] >= bids) & (bids > 0)  # one click at most costs the bid
        if needs_users:
            ads, quality = pipeline.propose(histories[users], live, bids, users=users)
        else:
            ads, quality = pipeline.propose(histories[users], live, bids)
        cand_bids = np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0)
        alloc = pipeline.auction(cand_bids, quality)
        won = np.where(alloc.winners >= 0, np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1), -1)
        win_bid = np.where(won >= 0, np.take_along_axis(cand_bids, np.maximum(alloc.winners, 0), 1), 0.0)
        prices = alloc.prices
        chosen = pick(histories[users], won, users) if pick is not None else None
        kw = {} if chosen is None else {"creatives": chosen}
        served = serve_batch(world, users, won, prices, organic, traffic.click_draw[rows], cont, bidders.remaining(),
                             chosen)
        win, clicked, charge = served.ads, served.clicked, served.charge
        if observe is not None:
            observe(win, chosen, clicked)
        page_p = world.page_click_prob(users, win, organic, **kw)  # (B, page_size) on the page as shown
        click_p_ads = page_p[:, ad_pos]
        converted = clicked & (traffic.conversion_draw[rows][:, ad_pos] < world.cvr[np.maximum(win, 0)])
        values = world.value[np.maximum(win, 0)]
        tally.add(absorbed=(np.where(clicked, prices, 0.0) - charge).sum(), slots=win.size, lost=served.lost,
                  withdrawn=served.withdrawn.sum())
        spend = np.zeros(wc.n_advertisers)
        np.add.at(spend, world.owner[np.maximum(win, 0)][clicked], charge[clicked])
        bidders.charge(np.arange(wc.n_advertisers), spend)
        gain = np.where(clicked, values - charge, 0.0)
        np.add.at(tally.util_by_adv, world.owner[np.maximum(win, 0)][clicked], gain[clicked])
        truthful = bidders.kind[world.owner[np.maximum(win, 0)]] == TRUTHFUL
        tally.add(revenue=charge.sum(), clicks=clicked.sum(), impressions=(win >= 0).sum(),
                  conversions=converted.sum(), adv_welfare=gain.sum(), user_welfare=page_p.sum(),
                  expected_clicks=click_p_ads.sum(), expected_revenue=(click_p_ads * prices).sum(),
                  ir_violations=((win >= 0) & (prices > win_bid + 1e-9)).sum(),
                  ir_value_violations=((win >= 0) & truthful & (prices > values + 1e-9)).sum())
        cand_ctr = world.ad_ctr(users, ads)
        tally.add(expected_value=(click_p_ads * np.where(win >= 0, values, 0.0)).sum(),
                  oracle_value=oracle_value(world, users, live))
        for r in np.flatnonzero(np.isin(rows, list(audit_rows))):
            audit["ads"].append(ads[r])
            audit["quality"].append(quality[r])
            audit["ctr"].append(cand_ctr[r])
            audit["bids"].append(cand_bids[r])
        bidders.update(spend, AuctionBatch(ads, cand_bids, quality, cand_ctr), pipeline.auction, slot_ctr)
    return summarise(tally, bidders, T, world) | {"audit": {k: np.array(v) for k, v in audit.items()}}


def oracle_value(world: World, users: np.ndarray, live: np.ndarray) -> float:
    """Expected advertiser value of the best possible ad slots: the live ads of highest value x true CTR
    over the whole catalogue, in order (what a pipeline with perfect retrieval and pCTR would show)."""
    k = world.config.ad_load
    ev = np.where(live[None], world.all_ad_ctr(users) * world.value[None], 0.0)  # (B, n_ads)
    top = -np.sort(-np.partition(ev, ev.shape[1] - k, axis=1)[:, -k:], axis=1)  # (B, k) best first
    return float((top * world.slot_ctr[None]).sum())


def summarise(tally: Tally, bidders: Bidders, T: int, world: World) -> dict:
    t = tally.sums
    per_mille = 1000.0 / T
    strategic = bidders.kind == STRATEGIC
    overspend = np.maximum(bidders.spend - bidders.budget, 0.0)
    return {
        "requests": T,
        "rpm": t["revenue"] * per_mille,
        "rpm_expected": t["expected_revenue"] * per_mille,
        "lost_rpm": t["lost"] * per_mille,
        "gross_rpm": (t["revenue"] + t["lost"]) * per_mille,
        "lost_share": t["lost"] / max(t["revenue"] + t["lost"], 1e-12),
        "withdrawn_per_mille": t["withdrawn"] * per_mille,
        "ctr": t["clicks"] / max(t["impressions"], 1.0),
        "ctr_expected": t["expected_clicks"] / max(t["impressions"], 1.0),
        "clicks_per_mille": t["clicks"] * per_mille,
        "conversions_per_mille": t["conversions"] * per_mille,
        "advertiser_welfare_per_mille": t["adv_welfare"] * per_mille,
        "user_welfare": t["user_welfare"] / T,
        "value_efficiency": t["expected_value"] / max(t["oracle_value"], 1e-12),
        "fill_rate": t["impressions"] / max(t["slots"], 1.0),
        "absorbed_per_mille": t["absorbed"] * per_mille,
        "ir_violations": int(t["ir_violations"]),
        "ir_value_violations_truthful": int(t["ir_value_violations"]),
        "budget_overspend": float(overspend.sum()),
        "budget_spent_share": float(bidders.spend.sum() / bidders.budget.sum()),
        "advertisers_exhausted": int((bidders.remaining() <= 1e-6 * np.maximum(bidders.budget, 1e-12)).sum()),
        "strategic_gamma_mean": float(np.mean(bidders.history_gamma[-5:])) if bidders.history_gamma else 1.0,
        "strategic_utility_per_mille": float(tally.util_by_adv[strategic].sum() * per_mille),
        "truthful_utility_per_mille": float(tally.util_by_adv[bidders.kind == TRUTHFUL].sum() * per_mille),
    }
