"""Ceilings before models: each effect's oracle headroom in the second world.

An oracle knows the world's truth (every user's attraction to every (ad, creative), the page choice model,
fatigue) and serves a whole episode: waves of sessions, ``session_len`` page views each, budgets spent in
expectation, bids from the (partly learning) bidders. It chooses each page to maximise the page's expected
value ``sum_ads P(click) * bid + organic_value * P(organic click)`` under the multinomial-logit choice, with
per-slot reserves. Five switches make it blind to one effect each:

* ``creative_aware``: the best creative per (user, ad); blind: each ad's creative of highest mean effect over all
  users (:func:`~genads.market.creatives.best_for_everyone`, what a per-creative bandit converges to);
* ``slate_aware``: the best ordered set of ads from the ``pool`` best by eCPM (exhaustive); blind (myopic):
  ads by eCPM, best on the top ad slot;
* ``load_aware``: the best ad load 0..k per page; blind: the fixed load (fewer only if reserves leave slots empty);
* ``fatigue_aware``: the attraction after the session's exposures; blind: the fresh attraction (the truth still
  fatigues);
* ``budget_aware``: eCPM ranked with each advertiser's bid divided by ``1 + lambda`` (pacing duals tuned in
  hindsight over ``budget_passes`` runs of the episode, the best kept, the first being lambda = 0); blind:
  lambda = 0.

An effect's headroom is the full oracle's value over the oracle blind to that effect alone (everything else
optimal). Expected values throughout (no click draws), so seeds differ only by the world and the traffic.
Revenue is bid-weighted expected clicks (first price per click, capped by the budget left): the allocation's
eCPM, the quantity every oracle row of the verdict ranks by.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from genads.market.creatives import best_for_everyone
from genads.market.learning_bidders import BanditBidders
from genads.market.world import WorldConfig
from genads.market.world2 import World2, World2Config

MARKETS = {"budget_bound": 1.0, "unconstrained": 100.0}


@dataclass(frozen=True)
class HeadroomConfig:
    seeds: tuple[int, ...] = tuple(range(1, 11))
    sessions: int = 100
    """Sessions per wave (served side by side)."""
    waves: int = 5
    """Waves of sessions in an episode: requests = waves x sessions x session_len."""
    pool: int = 8
    """Ads (best by eCPM) the slate-aware oracle orders exhaustively."""
    budget_passes: int = 10
    budget_step: float = 0.25
    organic_noise: float = 1.0
    """Gumbel noise of the organic ranker (as the first worlds' engine)."""

    def __post_init__(self) -> None:
        if min(self.sessions, self.waves, self.pool, self.budget_passes) < 1 or not self.seeds:
            raise ValueError("sessions, waves, pool and budget_passes must be >= 1 and seeds non-empty")


@dataclass(frozen=True)
class Oracle:
    creative_aware: bool = True
    slate_aware: bool = True
    load_aware: bool = True
    fatigue_aware: bool = True
    budget_aware: bool = True


VARIANTS = {"full": Oracle(), "creative_blind": Oracle(creative_aware=False), "myopic": Oracle(slate_aware=False),
            "fixed_load": Oracle(load_aware=False), "fatigue_blind": Oracle(fatigue_aware=False),
            "budget_blind": Oracle(budget_aware=False)}
EFFECTS = {"creative": "creative_blind", "slate": "myopic", "ad_load": "fixed_load", "fatigue": "fatigue_blind",
           "budget": "budget_blind"}
"""Effect -> the variant blind to it."""


@dataclass(frozen=True)
class Traffic2:
    users: np.ndarray
    """(waves, sessions) user of each session."""
    organic: np.ndarray
    """(waves, session_len, sessions, page_size) organic items of each page, ranker's order."""


def make_traffic2(w2: World2, cfg: HeadroomConfig, rng: np.random.Generator) -> Traffic2:
    wc, L = w2.base.config, w2.config.session_len
    users = rng.integers(wc.n_users, size=(cfg.waves, cfg.sessions))
    organic = np.empty((cfg.waves, L, cfg.sessions, wc.page_size), dtype=np.int64)
    for v in range(cfg.waves):
        logit = w2.organic_logits(users[v])
        for t in range(L):
            keys = logit + cfg.organic_noise * rng.gumbel(size=logit.shape)
            organic[v, t] = np.argsort(-keys, axis=1)[:, :wc.page_size]
    return Traffic2(users=users, organic=organic)


def _perms(pool: int, load: int) -> np.ndarray:
    rows = list(itertools.permutations(range(pool), load))
    return np.array(rows, dtype=int).reshape(len(rows), load)


class PageChooser:
    """The oracle's page choice for a batch of requests, under its view of the attraction weights."""

    def __init__(self, w2: World2, pool: int) -> None:
        self.w2, self.pool = w2, pool
        self.perms = [_perms(pool, L) for L in range(w2.max_ads + 1)]
        self.v0 = np.exp(w2.config.no_click_logit)

    def organic_sum(self, org_w: np.ndarray, load: int) -> np.ndarray:
        _, org_pos = self.w2.layout(load)
        return (self.w2.kappa[org_pos][None] * org_w[:, :len(org_pos)]).sum(1)

    def choose(self, view: np.ndarray, shadow: np.ndarray, bids: np.ndarray, live: np.ndarray, org_w: np.ndarray,
               oracle: Oracle) -> np.ndarray:
        """(B, max_ads) ads of each page, top ad slot first (-1 = no ad; the load is the count of ads)."""
        w2, ov, B = self.w2, self.w2.config.organic_value, len(view)
        ecpm = np.where(live[None], view * shadow[None], -np.inf)
        idx = np.argpartition(-ecpm, self.pool - 1, axis=1)[:, :self.pool]
        pv, ps = np.take_along_axis(view, idx, 1), shadow[idx]
        pb, ok = bids[idx], np.isfinite(np.take_along_axis(ecpm, idx, 1))
        loads = range(w2.max_ads + 1) if oracle.load_aware else range(min(w2.config.fixed_load, w2.max_ads) + 1)
        best_obj, best = np.full(B, -np.inf), np.full((B, w2.max_ads), -1)
        for L in loads:
            s_org = self.organic_sum(org_w, L)
            if L == 0:
                obj, pick = ov * s_org / (self.v0 + s_org), np.zeros((B, 0), dtype=int)
            else:
                obj, pick = (self._exhaustive if oracle.slate_aware else self._myopic)(pv, ps, pb, ok, s_org, L)
            better = (obj > best_obj) if oracle.load_aware else np.isfinite(obj)  # fixed: the largest feasible load
            best_obj = np.where(better, obj, best_obj)
            ads = np.full((B, w2.max_ads), -1)
            ads[:, :L] = np.take_along_axis(idx, np.maximum(pick, 0), 1) if L else ads[:, :0]
            best = np.where(better[:, None], ads, best)
        return best

    def _value(self, wv: np.ndarray, sv: np.ndarray, s_org: np.ndarray, L: int) -> np.ndarray:
        """(B, O) page value of options with ad weights ``wv`` and shadow bids ``sv`` (B, O, L)."""
        kap = self.w2.kappa[self.w2.layout(L)[0]]
        num = (kap * wv * sv).sum(-1) + self.w2.config.organic_value * s_org[:, None]
        return num / (self.v0 + (kap * wv).sum(-1) + s_org[:, None])

    def _exhaustive(self, pv, ps, pb, ok, s_org, L):
        perm = self.perms[L]  # (O, L)
        wv, sv, bv, okv = pv[:, perm], ps[:, perm], pb[:, perm], ok[:, perm]  # (B, O, L)
        feasible = (okv & (bv >= self.w2.reserves[:L])).all(-1)
        obj = np.where(feasible, self._value(wv, sv, s_org, L), -np.inf)
        o = obj.argmax(1)
        return obj[np.arange(len(o)), o], perm[o]

    def _myopic(self, pv, ps, pb, ok, s_org, L):
        B = len(pv)
        taken = ~ok.copy()
        pick = np.full((B, L), -1)
        for j in range(L):
            score = np.where(~taken & (pb >= self.w2.reserves[j]), pv * ps, -np.inf)
            c = score.argmax(1)
            good = np.isfinite(score[np.arange(B), c])
            pick[:, j] = np.where(good, c, -1)
            taken[np.arange(B)[good], c[good]] = True
        feasible = (pick >= 0).all(1)
        safe = np.maximum(pick, 0)[:, None]  # (B, 1, L)
        obj = self._value(np.take_along_axis(pv[:, None], safe, 2), np.take_along_axis(ps[:, None], safe, 2),
                          s_org, L)[:, 0]
        return np.where(feasible, obj, -np.inf), pick


def true_page(w2: World2, weights: np.ndarray, ads: np.ndarray, org_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Click probabilities of the ads (B, max_ads) and total organic click probability (B,) of the pages shown."""
    B, v0 = len(ads), np.exp(w2.config.no_click_logit)
    load = (ads >= 0).sum(1)
    wa = np.where(ads >= 0, np.take_along_axis(weights, np.maximum(ads, 0), 1), 0.0)
    kap_ads = np.zeros_like(wa)
    s_org = np.zeros(B)
    for L in np.unique(load):
        rows = load == L
        ad_pos, org_pos = w2.layout(int(L))
        kap_ads[np.ix_(rows, np.arange(L))] = w2.kappa[ad_pos]
        s_org[rows] = (w2.kappa[org_pos][None] * org_w[rows][:, :len(org_pos)]).sum(1)
    den = v0 + (kap_ads * wa).sum(1) + s_org
    return kap_ads * wa / den[:, None], s_org / den


def run_oracle(w2: World2, traffic: Traffic2, oracle: Oracle, budget: np.ndarray, lam: np.ndarray, seed: int,
               pool: int) -> dict:
    """Serve the episode with ``oracle``; returns its sums (and per-advertiser spend and live rounds)."""
    base, cfg = w2.base, w2.config
    n_adv = base.config.n_advertisers
    bidders = BanditBidders.draw(n_adv, cfg.learning, np.random.default_rng(seed))
    chooser = PageChooser(w2, pool)
    remaining, spend, live_rounds = budget.astype(float).copy(), np.zeros(n_adv), np.zeros(n_adv)
    pop_creative = best_for_everyone(w2.creatives, base.users)
    s = dict.fromkeys(("revenue", "ad_clicks", "organic_clicks", "ads_shown", "requests"), 0.0)
    rounds = 0
    for v in range(traffic.users.shape[0]):
        users = traffic.users[v]
        lb, eff = w2.ad_logits(users)
        chosen = eff.argmax(2) if oracle.creative_aware else np.broadcast_to(pop_creative, lb.shape)
        fresh = np.exp(lb + np.take_along_axis(eff, chosen[..., None], 2)[..., 0])
        org_all = np.exp(w2.organic_logits(users))
        exposures, seen = np.zeros(lb.shape), np.zeros(len(users))
        for t in range(cfg.session_len):
            bids = base.value * bidders.multipliers()[base.owner]
            live = (remaining[base.owner] >= bids) & (bids >= w2.reserves.min())
            live_adv = np.zeros(n_adv, dtype=bool)
            live_adv[base.owner[live]] = True
            live_rounds += live_adv
            true_w = fresh * w2.fatigue(exposures, seen)
            view = true_w if oracle.fatigue_aware else fresh
            shadow = bids / (1.0 + lam[base.owner]) if oracle.budget_aware else bids
            org_w = np.take_along_axis(org_all, traffic.organic[v, t], 1)
            ads = chooser.choose(view, shadow, bids, live, org_w, oracle)
            p_ads, p_org = true_page(w2, true_w, ads, org_w)
            owner = base.owner[np.maximum(ads, 0)]
            demand = np.zeros(n_adv)
            np.add.at(demand, owner[ads >= 0], (p_ads * bids[np.maximum(ads, 0)])[ads >= 0])
            paid = np.minimum(demand, remaining)
            frac = np.where(demand > 0, paid / np.maximum(demand, 1e-300), 1.0)
            remaining -= paid
            spend += paid
            utility = np.zeros(n_adv)
            gain = p_ads * (base.value - bids)[np.maximum(ads, 0)] * frac[owner]
            np.add.at(utility, owner[ads >= 0], gain[ads >= 0])
            bidders.update(utility, paid)
            s["revenue"] += paid.sum()
            s["ad_clicks"] += (p_ads * frac[owner])[ads >= 0].sum()
            s["organic_clicks"] += p_org.sum()
            s["ads_shown"] += (ads >= 0).sum()
            s["requests"] += len(users)
            rows = np.repeat(np.arange(len(users)), ads.shape[1])[(ads >= 0).ravel()]
            np.add.at(exposures, (rows, ads[ads >= 0]), 1.0)
            seen += (ads >= 0).sum(1)
            rounds += 1
    return s | {"spend": spend, "live_share": live_rounds / rounds,
                "objective": s["revenue"] + cfg.organic_value * s["organic_clicks"]}


def best_paced(w2: World2, traffic: Traffic2, oracle: Oracle, budget: np.ndarray, cfg: HeadroomConfig,
               seed: int) -> dict:
    """The oracle with pacing duals tuned in hindsight: ``budget_passes`` runs, the best objective kept.

    After each run ``1 + lambda <- (1 + lambda) * ratio ** budget_step`` per advertiser, ``ratio`` its spend over
    its budget divided by the share of rounds it was live (> 1: it ran out early), lambda >= 0."""
    n_adv = w2.base.config.n_advertisers
    lam = np.zeros(n_adv)
    best = run_oracle(w2, traffic, oracle, budget, lam, seed, cfg.pool) | {"pass": 0}
    if not oracle.budget_aware:
        return best
    last = best
    for p in range(1, cfg.budget_passes):
        ratio = last["spend"] / np.maximum(budget, 1e-12) / np.maximum(last["live_share"], 1e-3)
        if p == 1 and (last["live_share"] >= 1.0).all():
            break  # no budget ever ran out: pacing cannot help
        lam = np.maximum(0.0, (1.0 + lam) * np.maximum(ratio, 1e-6) ** cfg.budget_step - 1.0)
        last = run_oracle(w2, traffic, oracle, budget, lam, seed, cfg.pool) | {"pass": p}
        if last["objective"] > best["objective"]:
            best = last
    return best


def summary_row(r: dict, organic_value: float) -> dict:
    n = max(r["requests"], 1.0)
    return {"objective_per_mille": 1000 * r["objective"] / n, "rpm": 1000 * r["revenue"] / n,
            "ad_ctr": r["ad_clicks"] / max(r["ads_shown"], 1.0), "organic_clicks_per_mille": 1000 * r["organic_clicks"] / n,
            "mean_ad_load": r["ads_shown"] / n, "budget_pass": r.get("pass", 0)}


def seed_headroom(w2: World2, traffic: Traffic2, cfg: HeadroomConfig, seed: int,
                  variants: dict[str, Oracle] | None = None) -> dict:
    """{market: {variant: summary}} for one world and its traffic."""
    out = {}
    n_requests = traffic.users.size * w2.config.session_len
    for market, scale in MARKETS.items():
        budget = w2.base.budget_rate * n_requests / 1000.0 * scale
        out[market] = {name: summary_row(best_paced(w2, traffic, o, budget, cfg, seed), w2.config.organic_value)
                       for name, o in (variants or VARIANTS).items()}
    return out


def load_study(path) -> tuple[WorldConfig, World2Config, HeadroomConfig]:
    """The world, the second world's additions and the headroom study of a YAML file with keys ``world``,
    ``world2`` and ``headroom`` (keys left out keep their defaults; unknown keys raise naming the key)."""
    from pathlib import Path

    import yaml

    from genads.market.config import from_dict

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"world", "world2", "headroom"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: ['headroom', 'world', 'world2']")
    world = from_dict(WorldConfig, data.get("world", {}), f"{path}.world")
    extra = from_dict(World2Config, data.get("world2", {}), f"{path}.world2")
    extra.check(world)
    return world, extra, from_dict(HeadroomConfig, data.get("headroom", {}), f"{path}.headroom")


def with_overrides(w2: World2, **changes) -> World2:
    """The same world with some :class:`World2Config` values changed (for the sensitivity sweep)."""
    return replace(w2, config=replace(w2.config, **changes))


def interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and two-sided 95% t-interval of ``x`` over seeds."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def headroom_table(per_seed: list[dict], threshold: float = 0.02) -> list[dict]:
    """One row per (market, effect): the full oracle's objective and RPM over the blind one's, paired by seed."""
    rows = []
    for market in per_seed[0]["markets"]:
        for effect, blind in EFFECTS.items():
            lift = {k: np.array([s["markets"][market]["full"][k] / s["markets"][market][blind][k] - 1.0
                                 for s in per_seed]) for k in ("objective_per_mille", "rpm")}
            m, lo, hi = interval(lift["objective_per_mille"])
            rm, rlo, rhi = interval(lift["rpm"])
            rows.append({"market": market, "effect": effect, "blind_variant": blind, "n_seeds": len(per_seed),
                         "headroom": m, "ci_low": lo, "ci_high": hi, "rpm_headroom": rm, "rpm_ci_low": rlo,
                         "rpm_ci_high": rhi, "under_2pct": bool(m < threshold),
                         "ci_under_2pct": bool(np.isfinite(hi) and hi < threshold)})
    return rows
