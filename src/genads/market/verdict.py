"""The market verdict: the strongest cascade against the best log-trained end-to-end variant.

One protocol for every learned model, both sides, every seed:

* **Shared splits.** The retrievers (SASRec, the parallel generator) train on the click histories'
  leave-one-out training part and early-stop on its validation clicks (NDCG@10). The pCTR models (the
  cascade's DIN, the end-to-end value head) train on the first ``1 - holdout`` of the exploration log's
  requests and early-stop on the rest; both report within-request AUC and log-loss on those same held-out
  requests. Schedules are the defaults (not cut); :func:`schedule_check` retrains everything with every
  maximum epoch count doubled and records how far each side's RPM moves.
* **Equal feedback.** Both sides learn from the same logs only: the end-to-end side is *before* RL
  (no simulated interaction), so no side gets feedback the other does not.
* **Two cascades.** Bid-blind retrieval (today's) and bid-aware retrieval (SASRec logit + alpha * log bid);
  each tuned on the tuning seed (retrieve count, alpha); "the cascade" is the one of higher RPM there.
* **End-to-end fixes, each a row.** The value head as fitted (``e2e``); its per-ad biases shrunk by
  empirical Bayes (``e2e_eb``); generation on a lower confidence bound (``e2e_lcb``); a relevance prior
  (``e2e_rel``); the value head trained jointly with the generator's trunk on next-ad + position-aware click
  likelihood, early-stopped on the same held-out requests (``e2e_joint``, :mod:`genads.parallel.joint_value`);
  a generator whose item score has an ID term beside its codes (``ParallelConfig.id_weight``, the hybrid that
  closed half the gap to SASRec offline), with its own value head (``e2e_ids``) or trained jointly with it
  (``e2e_ids_joint``); the generator's own relevance as a candidate gate (``e2e_gate``: generation among the
  ``gate`` ads of highest log P(ad | history) + alpha * log bid, tuned over the cascade's own grid of retrieve
  counts and alphas); and ``e2e_best``, the joint choice over generator (codes or codes + IDs) x head
  (frozen-trunk or joint) x shrinkage x LCB z x relevance weight, and over generator x head x gate.
  Every choice is made on the tuning seed only (geometric mean of the two markets' RPM).
* **Payments on the frontier.** ``e2e_best``'s allocation rule with GSP (its row), GSP with a reserve tuned on
  the tuning seed (``e2e_best_reserve``) and the learned payment network (``e2e_best_learned``).
* **Ceilings.** ``oracle``: the full-catalogue perfect-pCTR oracle (true CTR x bid over every live ad, GSP);
  ``oracle_paced``: the same with each advertiser's score divided by ``1 + lambda`` (pacing duals updated on
  its own expected spend); and the slate-aware headroom per world (:func:`slate_headroom`).

Every variant serves the same traffic in the budget-bound market (budgets as drawn) and the unconstrained one
(budgets x100). Per variant the figures include the chosen ads' mean true CTR (auction winners, position
free) and the candidates'.

This module trains, tunes and runs one seed; :mod:`genads.market.verdict_study` runs the whole study (every seed,
the schedule check, the ceilings, the aggregate) and :mod:`genads.market.ceilings` holds the oracles' side.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from genads.eval.ctr_metrics import mean_request_auc
from genads.market.cascade import Cascade, CascadeConfig, build_cascade
from genads.market.ceilings import PacedOracle, headroom
from genads.market.compare import payment_profiles, train_payments
from genads.market.config import SimConfig
from genads.market.creative_choice import with_creatives
from genads.market.e2e_parallel import ParallelE2EConfig, ParallelEndToEnd, build_joint, build_parallel_e2e
from genads.market.logs import Logs, split_impressions
from genads.market.recorder import Recorder
from genads.market.value import ValueConfig, shrunk_head
from genads.market.value_study import Market, Oracle, serve
from genads.market.world import WorldConfig

MARKETS = {"budget_bound": 1.0, "unconstrained": 100.0}
METRICS = ("rpm", "gross_rpm", "lost_rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi",
           "ir_violations", "budget_overspend", "winners_true_ctr", "candidates_true_ctr", "rpm_expected",
           "value_efficiency", "budget_spent_share", "absorbed_per_mille")
CASCADES = ("cascade_blind", "cascade_bid")
FIXES = ("e2e", "e2e_eb", "e2e_lcb", "e2e_rel", "e2e_joint", "e2e_ids", "e2e_ids_joint", "e2e_gate", "e2e_best")
PAYMENTS = ("e2e_best_reserve", "e2e_best_learned")
ORACLES = ("oracle", "oracle_paced")


@dataclass(frozen=True)
class VerdictConfig:
    sim: SimConfig = field(default_factory=SimConfig)
    """World, logs, bidders, episode, audit, the cascade's models and the payment network's budget."""
    parallel: ParallelE2EConfig = field(default_factory=lambda: ParallelE2EConfig(payments="gsp"))
    seeds: tuple[int, ...] = tuple(range(1, 11))
    tuning_seed: int = 0
    holdout: float = 0.2
    """Share of the exploration log's requests (the latest) both pCTR models are early-stopped and scored on."""
    cascade_retrieve: tuple[int, ...] = (20, 50, 200)
    cascade_alpha: tuple[float, ...] = (0.5, 1.0, 2.0)
    """alpha of the bid-aware cascade's retrieval score (the bid-blind one has alpha = 0)."""
    shrink: tuple[bool, ...] = (False, True)
    joint: tuple[bool, ...] = (False, True)
    """Value heads tried for ``e2e_best``: the frozen-trunk one (False) and the jointly trained one (True)."""
    ids: tuple[bool, ...] = (False, True)
    """Generators tried for ``e2e_best``: codes only (False) and codes + an ID term in the item score (True)."""
    gates: bool = True
    """Also try the candidate gate (``e2e_gate``) over ``cascade_retrieve`` x (0, *``cascade_alpha``), for every
    generator and head (no shrinkage, LCB or relevance prior with it)."""
    id_logit_weight: float = 1.0
    """Weight of h·e in the ID generator's item logit (1: as SASRec's output layer; the model's ``id_weight`` is
    this times m · item_temperature / temperature)."""
    lcb_z: tuple[float, ...] = (0.0, 1.0, 2.0)
    relevance_weight: tuple[float, ...] = (0.0, 0.25, 1.0)
    reserves: tuple[float, ...] = (0.25, 0.5, 0.75)
    """GSP reserve prices tried, as shares of the median value per click."""
    pacing_eta: float = 0.5
    """Step of the paced oracle's dual update (per batch, on spend / target - 1)."""
    slate_world: WorldConfig | None = None
    """A second world (e.g. configs/market_slate.yaml's) whose slate-aware headroom is also measured."""
    slate_requests: int = 200
    slate_pool: int = 20
    schedule_check: bool = True

    def __post_init__(self) -> None:
        if not self.seeds or self.tuning_seed in self.seeds:
            raise ValueError(f"seeds={self.seeds} must be non-empty and exclude tuning_seed={self.tuning_seed}")
        if self.parallel.candidates != self.sim.cascade.candidates:
            raise ValueError("both auctions must see the same number of candidates")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout={self.holdout} must be in (0, 1)")


def scaled(vc: VerdictConfig, factor: int) -> tuple[CascadeConfig, ParallelE2EConfig]:
    """The cascade's and the end-to-end side's configs with every maximum epoch count times ``factor``."""
    c, p = vc.sim.cascade, vc.parallel
    if factor == 1:
        return c, p
    c = replace(c, sasrec=replace(c.sasrec, epochs=c.sasrec.epochs * factor),
                ranker=replace(c.ranker, epochs=c.ranker.epochs * factor))
    p = replace(p, train=replace(p.train, epochs=p.train.epochs * factor),
                value=replace(p.value, epochs=p.value.epochs * factor),
                joint=replace(p.joint, epochs=p.joint.epochs * factor))
    return c, p


@dataclass
class Trained:
    market: Market
    cascade: Cascade
    e2e: ParallelEndToEnd
    eb_head: object
    info: dict
    joint: ParallelEndToEnd | None = None
    """The pipeline whose generator trunk and value head were trained jointly (fix (b))."""
    joint_eb_head: object = None
    ids: ParallelEndToEnd | None = None
    """The pipeline whose generator scores items by codes + an ID term, with its own value head."""
    ids_eb_head: object = None
    ids_joint: ParallelEndToEnd | None = None
    ids_joint_eb_head: object = None


def train(vc: VerdictConfig, seed: int, factor: int = 1, log=print) -> Trained:
    """Both sides' models on one seed's logs, on the shared splits (see the module docstring)."""
    t0 = time.process_time()
    m = Market(vc.sim, seed)
    k = m.world.config.ad_load
    train_imp, held = split_impressions(m.logs.impressions, k, vc.holdout)
    n_req = len(m.logs.impressions.item) // k
    if len(train_imp.item) // k != round(n_req * (1.0 - vc.holdout)):
        raise RuntimeError("the DIN and value-head holdouts must be the same requests")
    c_cfg, p_cfg = scaled(vc, factor)
    p_cfg = replace(p_cfg, value=replace(p_cfg.value, holdout=vc.holdout))
    cascade, c_info = build_cascade(m.world, Logs(m.logs.histories, train_imp, m.logs.n_ads), c_cfg, seed, held=held)
    t1 = time.process_time()
    e2e, e_info = build_parallel_e2e(m.world, m.logs, p_cfg, seed)
    eb = shrunk_head(e2e.head)
    t2 = time.process_time()
    joint, j_info = build_joint(e2e, m.world, m.logs, p_cfg, seed)
    joint_eb = shrunk_head(joint.head)
    t3 = time.process_time()
    ids = ids_joint = None
    if True in vc.ids:
        i_cfg = with_ids(p_cfg, vc.id_logit_weight)
        ids, ii_info = build_parallel_e2e(m.world, m.logs, i_cfg, seed)
        ids_joint, ij_info = build_joint(ids, m.world, m.logs, i_cfg, seed) if True in vc.joint else (None, {})
    info = {"sasrec_valid_ndcg@10": c_info["sasrec_valid_ndcg@10"], "sasrec_epochs": c_info["sasrec_epochs"],
            "din_valid_auc": c_info["din"]["valid_auc_within_request"], "din_valid_logloss": c_info["din"]["valid_logloss"],
            "din_epochs": c_info["din"]["epochs"],
            "generator_valid_ndcg@10": e_info["generator_valid_ndcg@10"], "generator_epochs": e_info["generator_epochs"],
            "value_valid_auc": e_info["value_head"]["valid_auc_within_request"],
            "value_valid_logloss": e_info["value_head"]["valid_logloss"], "value_epochs": e_info["value_head"]["epochs"],
            "constant_valid_logloss": e_info["value_head"]["valid_logloss_constant"],
            "joint_valid_auc": j_info["valid_auc_within_request"], "joint_valid_logloss": j_info["valid_logloss"],
            "joint_epochs": j_info["epochs"], "joint_best_epoch": j_info["best_epoch"],
            "joint_generator_valid_ndcg@10": j_info["generator_valid_ndcg@10"],
            "held_out_requests": n_req - len(train_imp.item) // k,
            "cpu_seconds_cascade": round(t1 - t0, 1), "cpu_seconds_e2e": round(t2 - t1, 1),
            "cpu_seconds_joint": round(t3 - t2, 1)}
    info.update(head_scores(e2e, eb, m, vc.holdout))
    info.update({f"joint_eb_{k[9:]}": v for k, v in head_scores(joint, joint_eb, m, vc.holdout).items()})
    if ids is not None:
        info.update({"ids_generator_valid_ndcg@10": ii_info["generator_valid_ndcg@10"],
                     "ids_generator_epochs": ii_info["generator_epochs"],
                     "ids_valid_auc": ii_info["value_head"]["valid_auc_within_request"],
                     "ids_valid_logloss": ii_info["value_head"]["valid_logloss"],
                     "ids_epochs": ii_info["value_head"]["epochs"]})
        if ids_joint is not None:
            info.update({"ids_joint_valid_auc": ij_info["valid_auc_within_request"],
                         "ids_joint_valid_logloss": ij_info["valid_logloss"], "ids_joint_epochs": ij_info["epochs"],
                         "ids_joint_generator_valid_ndcg@10": ij_info["generator_valid_ndcg@10"]})
        info["cpu_seconds_ids"] = round(time.process_time() - t3, 1)
    log(f"seed {seed} x{factor} trained: " + ", ".join(f"{a} {b:.4f}" if isinstance(b, float) else f"{a} {b}"
                                                      for a, b in info.items()))
    return Trained(m, cascade, e2e, eb, info, joint, joint_eb, ids, None if ids is None else shrunk_head(ids.head),
                   ids_joint, None if ids_joint is None else shrunk_head(ids_joint.head))


def with_ids(p: ParallelE2EConfig, logit_weight: float) -> ParallelE2EConfig:
    """``p`` with a generator whose item score adds ``logit_weight`` · h·e to the item logit (an ID table, the
    model's ``id_weight`` scaled by m · item_temperature / temperature so that the logit's ID part is unscaled)."""
    model = p.model
    weight = logit_weight * p.codes.n_codes * p.train.item_temperature / model.temperature
    return replace(p, model=replace(model, n_items=max(1, model.n_items), id_weight=weight))


@torch.no_grad()
def head_scores(pipe: ParallelEndToEnd, eb_head, m: Market, holdout: float) -> dict:
    """Held-out within-request AUC and log-loss of the empirical-Bayes head on the value head's held-out requests."""
    imp, k = m.logs.impressions, m.world.config.ad_load
    n = len(imp.item) // k
    cut = round(n * (1.0 - holdout))
    rows = np.arange(cut * k, n * k)
    h, logp, hist = pipe.user_state(imp.history[rows[::k]])
    req = np.repeat(np.arange(len(rows) // k), k)
    items = torch.from_numpy(imp.item[rows])
    p = torch.sigmoid(eb_head.pair_logits(h[req], logp[req, items - 1], items, hist[req])).double().numpy()
    exam = m.world.slot_ctr[imp.slot[rows]]
    pc = np.clip(exam * p, 1e-6, 1 - 1e-6)
    y = imp.click[rows]
    return {"value_eb_valid_logloss": float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean()),
            "value_eb_valid_auc": mean_request_auc(p, y, req)}


def cascade_variant(t: Trained, retrieve: int, alpha: float) -> Cascade:
    return Cascade(t.cascade.retriever, t.cascade.ranker, replace(t.cascade.cfg, retrieve=retrieve, bid_alpha=alpha),
                   t.cascade.slot_ctr)


def e2e_from(t: Trained, c: dict, **changes) -> ParallelEndToEnd:
    """The end-to-end pipeline under the fix setting ``c`` (a tuning choice: shrink, z, rw, joint, ids, gate)."""
    return e2e_variant(t, c["shrink"], c["z"], c["rw"], c.get("joint", False), c.get("ids", False),
                       gate=c.get("gate", 0), gate_alpha=c.get("gate_alpha", 0.0), **changes)


def e2e_variant(t: Trained, shrink: bool, z: float, rw: float, joint: bool = False, ids: bool = False,
                **changes) -> ParallelEndToEnd:
    """The end-to-end pipeline under one fix setting: the codes-only or (``ids``) codes + ID generator, with its
    frozen-trunk (``joint`` False) or jointly trained head, its per-ad biases shrunk or not, generation on an LCB
    ``z``, relevance weight ``rw``."""
    base, eb = {(False, False): (t.e2e, t.eb_head), (True, False): (t.joint, t.joint_eb_head),
                (False, True): (t.ids, t.ids_eb_head), (True, True): (t.ids_joint, t.ids_joint_eb_head)}[joint, ids]
    if base is None:
        raise ValueError(f"this seed's models have no {'jointly trained ' if joint else ''}"
                         f"{'codes + ID ' if ids else ''}pipeline")
    head = eb if shrink else base.head
    return base.with_config(head=head, lcb_z=z, relevance_weight=rw, payments=changes.pop("payments", "gsp"), **changes)


def run_markets(vc: VerdictConfig, t: Trained, pipe, net=None) -> dict:
    """{market: figures} of one pipeline served in both markets."""
    m, out = t.market, {}
    for market, scale in MARKETS.items():
        m.world = replace(m.drawn, budget_rate=m.drawn.budget_rate * scale)
        if isinstance(pipe, Oracle):
            pipe.market = m
            if isinstance(pipe, PacedOracle):
                pipe.reset()
        rec = Recorder(with_creatives(pipe, m, vc.holdout), m.world)  # a no-op unless the world has creatives
        res = serve(vc.sim, m, rec, net)
        res.update(rec.figures())
        out[market] = {key: float(res[key]) for key in METRICS}
    m.world = m.drawn
    return out


def score(figs: dict) -> float:
    """Tuning objective: the geometric mean of the two markets' RPM."""
    return float(np.exp(np.mean([np.log(max(figs[mk]["rpm"], 1e-9)) for mk in MARKETS])))


def median_value(t: Trained) -> float:
    return float(np.median(t.market.world.value))


def tune(vc: VerdictConfig, log=print) -> tuple[dict, Trained]:
    """Every choice of the verdict, on the tuning seed only (geometric mean RPM of the two markets)."""
    t = train(vc, vc.tuning_seed, log=log)
    grid: dict = {"cascade": {}, "e2e": {}, "reserve": {}}
    for retrieve, alpha in itertools.product(vc.cascade_retrieve, (0.0, *vc.cascade_alpha)):
        figs = run_markets(vc, t, cascade_variant(t, retrieve, alpha))
        grid["cascade"][f"{retrieve}/{float(alpha)}"] = score(figs)
        log(f"tuning: cascade retrieve {retrieve} alpha {alpha}: {score(figs):.1f}")
    for ids, joint, shrink, z, rw in itertools.product(vc.ids, vc.joint, vc.shrink, vc.lcb_z, vc.relevance_weight):
        figs = run_markets(vc, t, e2e_variant(t, shrink, z, rw, joint, ids))
        grid["e2e"][f"{int(joint)}/{int(shrink)}/{float(z)}/{float(rw)}" + ("/ids" if ids else "")] = score(figs)
        log(f"tuning: e2e ids {ids} joint {joint} shrink {shrink} z {z} rw {rw}: {score(figs):.1f}")
    if vc.gates:
        for ids, joint, gate, ga in itertools.product(vc.ids, vc.joint, vc.cascade_retrieve, (0.0, *vc.cascade_alpha)):
            figs = run_markets(vc, t, e2e_variant(t, False, 0.0, 0.0, joint, ids, gate=gate, gate_alpha=ga))
            grid["e2e"][f"{int(joint)}/0/0.0/0.0" + ("/ids" if ids else "") + f"/g{gate}@{float(ga)}"] = score(figs)
            log(f"tuning: e2e ids {ids} joint {joint} gate {gate} alpha {ga}: {score(figs):.1f}")

    def best(keys, table):
        return max(keys, key=lambda key: table[key])

    c, e = grid["cascade"], grid["e2e"]
    blind = best([f"{r}/0.0" for r in vc.cascade_retrieve], c)
    bid = best([f"{r}/{a}" for r in vc.cascade_retrieve for a in vc.cascade_alpha], c)

    def fix(key: str) -> dict:
        j, s, z, rw, *rest = key.split("/")
        gate = next((r[1:].split("@") for r in rest if r.startswith("g")), ("0", "0.0"))
        return {"shrink": bool(int(s)), "z": float(z), "rw": float(rw), "joint": bool(int(j)), "ids": "ids" in rest,
                "gate": int(gate[0]), "gate_alpha": float(gate[1])}

    choice = {
        "cascade_blind": {"retrieve": int(blind.split("/")[0]), "alpha": 0.0},
        "cascade_bid": {"retrieve": int(bid.split("/")[0]), "alpha": float(bid.split("/")[1])},
        "e2e": fix("0/0/0.0/0.0"),
        "e2e_eb": fix("0/1/0.0/0.0"),
        "e2e_lcb": fix(best([f"0/0/{z}/0.0" for z in vc.lcb_z if z > 0], e)),
        "e2e_rel": fix(best([f"0/0/0.0/{r}" for r in vc.relevance_weight if r > 0], e)),
        "e2e_best": fix(best(list(e), e)),
    }
    if True in vc.joint:
        choice["e2e_joint"] = fix("1/0/0.0/0.0")
    gated = [key for key in e if "/g" in key]
    if gated:
        choice["e2e_gate"] = fix(best(gated, e))
    if True in vc.ids:
        choice["e2e_ids"] = fix("0/0/0.0/0.0/ids")
        if True in vc.joint:
            choice["e2e_ids_joint"] = fix("1/0/0.0/0.0/ids")
    choice["cascade"] = "cascade_bid" if c[bid] > c[blind] else "cascade_blind"
    eb = choice["e2e_best"]
    for r in vc.reserves:
        figs = run_markets(vc, t, e2e_from(t, eb, reserve=r * median_value(t)))
        grid["reserve"][str(r)] = score(figs)
        log(f"tuning: e2e_best reserve {r} x median value: {score(figs):.1f}")
    choice["reserve_share"] = float(best(list(grid["reserve"]), grid["reserve"]))
    choice["grid"] = grid
    return choice, t


def pipelines(vc: VerdictConfig, t: Trained, choice: dict, log=print) -> dict:
    """{variant: (pipeline, payment net or None)} of one seed's trained parts under the tuning seed's choices."""
    out = {}
    for name in CASCADES:
        out[name] = (cascade_variant(t, choice[name]["retrieve"], choice[name]["alpha"]), None)
    for name in FIXES:
        if name not in choice:
            continue
        c = choice[name]
        out[name] = (e2e_from(t, c), None)
    eb = choice["e2e_best"]
    out["e2e_best_reserve"] = (e2e_from(t, eb, reserve=choice["reserve_share"] * median_value(t)), None)
    learned = e2e_from(t, eb, payments="learned")
    m, cfg = t.market, vc.sim
    b, q = payment_profiles(m.world, learned, m.logs, cfg.e2e.payment_profiles, cfg.logs.max_history,
                            np.random.default_rng(m.seed + 7))
    learned.net, _ = train_payments(b, q, m.world.slot_ctr, cfg.e2e.payment_iterations, m.seed)
    out["e2e_best_learned"] = (learned, learned.net)
    out["oracle"] = (Oracle(m, vc.parallel.candidates), None)
    out["oracle_paced"] = (PacedOracle(m, vc.parallel.candidates, vc.sim.episode.batch_size, vc.pacing_eta,
                                       vc.sim.episode.requests), None)
    return out


def run_seed(vc: VerdictConfig, choice: dict, seed: int, log=print) -> dict:
    t0 = time.process_time()
    t = train(vc, seed, log=log)
    out = {"seed": seed, "training": t.info, "markets": {mk: {} for mk in MARKETS}}
    for name, (pipe, net) in pipelines(vc, t, choice, log).items():
        for mk, figs in run_markets(vc, t, pipe, net).items():
            out["markets"][mk][name] = figs
            log(f"seed {seed} {mk:13s} {name:17s} RPM {figs['rpm']:7.1f} gross {figs['gross_rpm']:7.1f} "
                f"CTR {figs['ctr']:.4f} winners' true CTR {figs['winners_true_ctr']:.3f} Ψ {figs['psi']:.4f}")
    out["slate_headroom"] = headroom(vc, seed)
    out["cpu_seconds"] = round(time.process_time() - t0, 1)
    return out


def default_verdict(sim: SimConfig, seeds: tuple[int, ...], tuning_seed: int = 0,
                    slate_world: WorldConfig | None = None) -> VerdictConfig:
    """The verdict on ``sim``'s world, the end-to-end candidate count matched to the cascade's, default schedules."""
    par = ParallelE2EConfig(candidates=sim.cascade.candidates, value=ValueConfig(), payments="gsp")
    return VerdictConfig(sim=sim, parallel=par, seeds=seeds, tuning_seed=tuning_seed, slate_world=slate_world)


def tiny_verdict(vc: VerdictConfig) -> VerdictConfig:
    """Small models and one-point grids for configs/market_tiny.yaml (smoke runs, the demo, tests): seconds per seed,
    the machinery, not a verdict."""
    from genads.market.value_demo_step import tiny_study

    par = tiny_study(vc.sim, 0, 1).parallel
    return replace(vc, parallel=replace(par, payments="gsp"), cascade_retrieve=(vc.sim.cascade.retrieve,),
                   cascade_alpha=(1.0,), lcb_z=(0.0, 1.0), relevance_weight=(0.0, 0.5), reserves=(0.5,),
                   slate_requests=20, slate_pool=8)


