"""The value-aware market study: a tuned cascade against value-aware end to end, before and after list-wise RL.

Per seed: draw a market and its logs; train the cascade (SASRec retrieval -> DIN pCTR -> GSP) and the
parallel end-to-end pipeline (generator -> value head -> learned payments) on those logs only; fine-tune
the end-to-end generation with list-wise RL on its own simulated traffic (a separate seed); then serve
one episode of traffic (another seed) with every variant and audit each auction's regret (Ψ).

Tuning is done on ``tuning_seeds`` only, for both sides with a small grid each: the cascade's retriever
loss and candidate count, the end-to-end RL reward mix. Evaluation seeds never enter a choice. Lifts over
the cascade are paired by seed (Student-t 95% intervals); the pre-declared criteria (RPM, CTR, user welfare,
advertiser welfare, Ψ ratio) get Holm-adjusted paired t-test p-values.

What each side is given: both train on the same click histories and the same exploration impression log;
the end-to-end side additionally interacts with the simulator during RL (``rl.steps x rl.requests x
rl.group`` lists of realised feedback), which the cascade does not; the report states that number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from genads.auction.mechanisms import gsp
from genads.data.split import left_pad
from genads.market.audit import AuditedAuction, psi
from genads.market.cascade import CascadeConfig, build_cascade
from genads.market.compare import interval, payment_profiles, train_payments
from genads.market.config import SimConfig
from genads.market.e2e_parallel import (
    ParallelE2EConfig,
    ParallelEndToEnd,
    build_parallel_e2e,
    train_value_head,
)
from genads.market.engine import make_traffic, run_episode
from genads.market.logs import make_logs
from genads.market.rl import RLConfig, expected_list_value, finetune
from genads.market.value import ValueConfig
from genads.market.world import make_world

VARIANTS = ("cascade", "e2e_sl", "e2e_rl", "e2e_rl_gsp", "e2e_no_value", "e2e_rl_no_bid", "oracle")
"""cascade; e2e before RL (value head, learned payments); after RL; after RL with GSP prices on the same
allocation; without the value head (Platt-calibrated generator score, learned payments); after RL without the
token bid (alpha = 0: bids do not shape generation); the oracle (true CTR x bid over every live ad, GSP): the
ceiling of any pipeline in a world without slate effects, where a cascade with perfect pCTR would tie it."""
METRICS = ("rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi", "rpm_expected", "ctr_expected",
           "value_efficiency", "absorbed_per_mille", "budget_spent_share", "ir_violations", "budget_overspend",
           "candidate_true_ctr")
CRITERIA = (("rpm", "greater"), ("ctr", "greater"), ("user_welfare", "not lower"),
            ("advertiser_welfare_per_mille", "not lower"))


@dataclass(frozen=True)
class StudyConfig:
    sim: SimConfig = field(default_factory=SimConfig)
    """World, logs, bidders, episode, audit and the payment-network budget (``sim.e2e.payment_*``)."""
    parallel: ParallelE2EConfig = field(default_factory=ParallelE2EConfig)
    rl: RLConfig = field(default_factory=lambda: RLConfig(steps=100, lr=1e-3, kl=0.05))
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    tuning_seeds: tuple[int, ...] = (0,)
    cascade_grid: tuple[tuple[str, int], ...] = (("ce", 20), ("ce", 50), ("ce", 200), ("ss", 50))
    """(retriever loss, retrieve) pairs tried for the cascade on the tuning seeds."""
    rl_revenue_weights: tuple[float, ...] = (0.5, 1.0)
    """RL reward mixes tried for the end-to-end side on the tuning seeds."""

    def __post_init__(self) -> None:
        if not self.seeds or set(self.seeds) & set(self.tuning_seeds):
            raise ValueError(f"seeds={self.seeds} must be non-empty and disjoint from tuning_seeds={self.tuning_seeds}")
        if self.parallel.candidates != self.sim.cascade.candidates:
            raise ValueError("both auctions must see the same number of candidates")


MARKETS = {"budget": 1.0, "unconstrained": 100.0}
"""Evaluation markets: advertisers' budgets as drawn (configs/market.yaml's budget-bound market) and x100."""


class Oracle:
    """Candidates: the live ads of highest true CTR x bid; pCTR: the true CTR; GSP. The engine passes the
    request's users (``needs_users``)."""

    name = "oracle"
    needs_users = True

    def __init__(self, market: Market, n: int) -> None:
        self.market, self.n = market, n

    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray,
                users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        del history  # the oracle reads the true CTR of the request's user
        ctr = self.market.world.all_ad_ctr(users)
        score = np.where((live & (bids > 0))[None], ctr * bids[None], -np.inf)
        ads = np.argsort(-score, axis=1, kind="stable")[:, : self.n]
        ok = np.take_along_axis(score, ads, 1) > -np.inf
        return np.where(ok, ads, -1), np.where(ok, np.take_along_axis(ctr, ads, 1), 1e-9)

    def auction(self, bids: np.ndarray, quality: np.ndarray):
        return gsp(bids, quality, len(self.market.world.slot_ctr), slot_ctr=self.market.world.slot_ctr)


def draw_world(cfg: SimConfig, rng: np.random.Generator):
    """The seed's world: the first worlds' (``cfg.world``), or the second world's page model when ``cfg.page_world``."""
    if cfg.page_world is None:
        return make_world(cfg.world, rng)
    from genads.market.world2 import page_choice_world

    return page_choice_world(cfg.world, cfg.page_world, rng)


class Market:
    """One seed's world, logs, histories and evaluation traffic."""

    def __init__(self, cfg: SimConfig, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.world = draw_world(cfg, rng)
        self.drawn = self.world
        self.logs = make_logs(self.world, cfg.logs, rng)
        self.hist = left_pad(self.logs.histories, cfg.logs.max_history)
        self.traffic = make_traffic(self.world, cfg.episode, np.random.default_rng(seed + 1000))


def serve(cfg: SimConfig, m: Market, pipe, net=None) -> dict:
    """One episode with ``pipe`` and its regret audit (Ψ against true CTR, learned prices when ``net``)."""
    res = run_episode(m.world, pipe, m.hist, m.traffic, cfg.bidders, cfg.episode, m.seed)
    aud = res.pop("audit")
    values = np.where(aud["ads"] >= 0, m.world.value[np.maximum(aud["ads"], 0)], 0.0)
    res.update(psi(AuditedAuction(m.world.slot_ctr, net), values, aud["quality"], aud["ctr"], cfg.audit, m.seed))
    ok = aud["ads"] >= 0
    res["candidate_true_ctr"] = float(aud["ctr"][ok].mean()) if ok.any() else 0.0
    return res


def with_payments(cfg: SimConfig, m: Market, pipe: ParallelEndToEnd) -> ParallelEndToEnd:
    """Train the payment network on the pipeline's own auctions (truthful bids on training traffic)."""
    b, q = payment_profiles(m.world, pipe, m.logs, cfg.e2e.payment_profiles, cfg.logs.max_history,
                            np.random.default_rng(m.seed + 7))
    pipe.net, _ = train_payments(b, q, m.world.slot_ctr, cfg.e2e.payment_iterations, m.seed)
    return pipe


def cascade_config(cfg: SimConfig, loss: str, retrieve: int) -> CascadeConfig:
    return replace(cfg.cascade, retrieve=retrieve, sasrec=replace(cfg.cascade.sasrec, loss=loss))


def tune(study: StudyConfig, log=print) -> dict:
    """Choose the cascade's (loss, retrieve) and the RL reward mix by mean RPM over the tuning seeds."""
    cfg = study.sim
    cas_rpm: dict[tuple[str, int], list[float]] = {c: [] for c in study.cascade_grid}
    rl_rpm: dict[float, list[float]] = {w: [] for w in study.rl_revenue_weights}
    for seed in study.tuning_seeds:
        m = Market(cfg, seed)
        for loss in sorted({c[0] for c in study.cascade_grid}):
            base, _ = build_cascade(m.world, m.logs, cascade_config(cfg, loss, study.cascade_grid[0][1]), seed)
            for c in [c for c in study.cascade_grid if c[0] == loss]:
                base.cfg = cascade_config(cfg, *c)
                cas_rpm[c].append(serve(cfg, m, base)["rpm"])
                log(f"tuning seed {seed}: cascade {c} RPM {cas_rpm[c][-1]:.1f}")
        pipe, _ = build_parallel_e2e(m.world, m.logs, study.parallel, seed)
        for w in study.rl_revenue_weights:
            tuned = pipe.with_config()
            finetune(tuned, m.world, m.hist, m.world.value, replace(study.rl, revenue_weight=w), seed + 500)
            rl_rpm[w].append(serve(cfg, m, with_payments(cfg, m, tuned), tuned.net)["rpm"])
            log(f"tuning seed {seed}: e2e RL revenue_weight {w} RPM {rl_rpm[w][-1]:.1f}")
    best_cas = max(cas_rpm, key=lambda c: np.mean(cas_rpm[c]))
    best_w = max(rl_rpm, key=lambda w: np.mean(rl_rpm[w]))
    return {"cascade": {"loss": best_cas[0], "retrieve": best_cas[1]}, "rl_revenue_weight": best_w,
            "cascade_grid_rpm": {f"{c[0]}/{c[1]}": v for c, v in cas_rpm.items()},
            "rl_grid_rpm": {str(w): v for w, v in rl_rpm.items()}}


def run_seed(study: StudyConfig, choice: dict, seed: int, log=print) -> dict:
    cfg = study.sim
    t0 = time.perf_counter()
    m = Market(cfg, seed)
    cascade, cas_info = build_cascade(m.world, m.logs, cascade_config(cfg, choice["cascade"]["loss"],
                                                                      choice["cascade"]["retrieve"]), seed)
    sl, e2e_info = build_parallel_e2e(m.world, m.logs, study.parallel, seed)
    platt, platt_info = train_value_head(sl.model, sl.item_codes.numpy(), m.logs, m.world.slot_ctr,
                                         m.world.config.ad_load, replace(study.parallel.value, factors=False), seed,
                                         m.world.ad_features)
    no_value = sl.with_config(head=platt)
    rl = sl.with_config()
    rl_cfg = replace(study.rl, revenue_weight=choice["rl_revenue_weight"])
    users = np.random.default_rng(seed + 900).integers(m.world.config.n_users, size=2000)
    before = expected_list_value(rl, m.world, m.hist, users, m.world.value, rl_cfg.revenue_weight)
    curve = finetune(rl, m.world, m.hist, m.world.value, rl_cfg, seed + 500)
    after = expected_list_value(rl, m.world, m.hist, users, m.world.value, rl_cfg.revenue_weight)
    for pipe in (sl, rl, no_value):
        with_payments(cfg, m, pipe)
    pipes = {"cascade": (cascade, None), "e2e_sl": (sl, sl.net), "e2e_rl": (rl, rl.net),
             "e2e_rl_gsp": (rl.with_config(payments="gsp"), None), "e2e_no_value": (no_value, no_value.net),
             "e2e_rl_no_bid": (rl.with_config(alpha=0.0), rl.net), "oracle": (Oracle(m, study.parallel.candidates), None)}
    out: dict = {"seed": seed, "training": {
        "cascade": {k: v for k, v in cas_info.items() if k != "ranker_loss"},
        "e2e": e2e_info, "no_value_head": platt_info,
        "rl": {"curve": curve, "expected_before": before, "expected_after": after,
               "interactions": rl_cfg.steps * rl_cfg.requests * rl_cfg.group}}}
    out["markets"] = {}
    for market, scale in MARKETS.items():
        m.world = replace(m.drawn, budget_rate=m.drawn.budget_rate * scale)
        out["markets"][market] = {}
        for name, (pipe, net) in pipes.items():
            res = serve(cfg, m, pipe, net)
            out["markets"][market][name] = {k: res[k] for k in METRICS}
            log(f"seed {seed} {market:13s} {name:14s} RPM {res['rpm']:.1f}  CTR {res['ctr']:.4f}  "
                f"UW {res['user_welfare']:.4f}  Ψ {res['psi']:.4f}")
    m.world = m.drawn
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def aggregate(per_seed: list[dict], market: str) -> dict:
    """One market's mean [95% CI] per variant and metric, the paired relative lift over the cascade, and the
    criteria with Holm-adjusted p-values (one-sided paired t-tests on e2e_rl's relative lift; "not lower" tests for
    evidence that it is lower; Ψ: the ratio e2e_rl / cascade against 0.75)."""
    runs = [s["markets"][market] for s in per_seed]
    summary: dict = {}
    for name in runs[0]:
        summary[name] = {}
        for metric in METRICS:
            vals = np.array([r[name][metric] for r in runs], dtype=float)
            mean, lo, hi = interval(vals)
            summary[name][metric] = {"mean": mean, "ci95": [lo, hi], "per_seed": vals.tolist()}
            base = np.array([r["cascade"][metric] for r in runs], dtype=float)
            if name != "cascade" and (base != 0).all():
                mean, lo, hi = interval(vals / base - 1.0)
                summary[name][metric]["lift_vs_cascade"] = {"mean": mean, "ci95": [lo, hi]}
    tests = []
    for metric, kind in CRITERIA:
        rel = np.array([r["e2e_rl"][metric] / r["cascade"][metric] - 1.0 for r in runs])
        alt = "greater" if kind == "greater" else "less"
        p = float(stats.ttest_1samp(rel, 0.0, alternative=alt).pvalue) if len(rel) > 1 else float("nan")
        tests.append({"metric": metric, "criterion": kind, "lift": float(rel.mean()), "p": p})
    ratio = np.array([r["e2e_rl"]["psi"] / max(r["cascade"]["psi"], 1e-12) for r in runs])
    p = float(stats.ttest_1samp(ratio, 0.75, alternative="less").pvalue) if len(ratio) > 1 else float("nan")
    tests.append({"metric": "psi_ratio", "criterion": "< 0.75", "lift": float(ratio.mean()), "p": p})
    order = np.argsort([t["p"] for t in tests])
    running = 0.0
    for rank, i in enumerate(order):  # Holm step-down
        running = max(running, min(1.0, (len(tests) - rank) * tests[i]["p"]))
        tests[i]["p_holm"] = running
    return {"variants": summary, "criteria": tests}


def run_study(study: StudyConfig, log=print) -> dict:
    t0 = time.perf_counter()
    choice = tune(study, log)
    log(f"chosen on tuning seeds {list(study.tuning_seeds)}: {choice['cascade']}, RL revenue_weight "
        f"{choice['rl_revenue_weight']}")
    per_seed = [run_seed(study, choice, s, log) for s in study.seeds]
    return {"choice": choice, "per_seed": per_seed, "summary": {m: aggregate(per_seed, m) for m in MARKETS},
            "seconds": round(time.perf_counter() - t0, 1)}


def default_study(sim: SimConfig, seeds: tuple[int, ...] | None = None) -> StudyConfig:
    """The study on ``sim``'s world with the e2e candidate count matched to the cascade's."""
    par = ParallelE2EConfig(candidates=sim.cascade.candidates, value=ValueConfig())
    return StudyConfig(sim=sim, parallel=par, **({"seeds": seeds} if seeds else {}))
