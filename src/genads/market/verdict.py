"""Issue 25's market verdict: the strongest cascade against the best log-trained end-to-end variant.

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
  and ``e2e_best``, the joint choice over head (frozen-trunk or joint) x shrinkage x LCB z x relevance weight.
  Every choice is made on the tuning seed only (geometric mean of the two markets' RPM).
* **Payments on the frontier.** ``e2e_best``'s allocation rule with GSP (its row), GSP with a reserve tuned on
  the tuning seed (``e2e_best_reserve``) and the learned payment network (``e2e_best_learned``).
* **Ceilings.** ``oracle``: the full-catalogue perfect-pCTR oracle (true CTR x bid over every live ad, GSP);
  ``oracle_paced``: the same with each advertiser's score divided by ``1 + lambda`` (pacing duals updated on
  its own expected spend); and the slate-aware headroom per world (:func:`slate_headroom`).

Every variant serves the same traffic in the budget-bound market (budgets as drawn) and the unconstrained one
(budgets x100). Per variant the figures include the chosen ads' mean true CTR (auction winners, position
free) and the candidates'.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import stats

from genads.eval.ctr_metrics import mean_request_auc
from genads.market.cascade import Cascade, CascadeConfig, build_cascade
from genads.market.compare import interval, payment_profiles, train_payments
from genads.market.config import SimConfig
from genads.market.creative_choice import with_creatives
from genads.market.e2e_parallel import ParallelE2EConfig, ParallelEndToEnd, build_joint, build_parallel_e2e
from genads.market.engine import make_traffic
from genads.market.logs import Logs, split_impressions
from genads.market.value import ValueConfig, shrunk_head
from genads.market.value_study import Market, Oracle, draw_world, serve
from genads.market.world import WorldConfig, make_world

MARKETS = {"budget_bound": 1.0, "unconstrained": 100.0}
METRICS = ("rpm", "gross_rpm", "lost_rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi",
           "ir_violations", "budget_overspend", "winners_true_ctr", "candidates_true_ctr", "rpm_expected",
           "value_efficiency", "budget_spent_share", "absorbed_per_mille")
CASCADES = ("cascade_blind", "cascade_bid")
FIXES = ("e2e", "e2e_eb", "e2e_lcb", "e2e_rel", "e2e_joint", "e2e_best")
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


class Recorder:
    """A pipeline that also tallies the true (position-free) CTR of its candidates and of its auction winners.

    It asks the engine for the request's users (``needs_users``) to read the ground truth; the wrapped
    pipeline gets them only if it needs them. The strategic bidders' replays call :meth:`auction` with other
    shapes; only the call right after :meth:`propose` is counted."""

    needs_users = True

    def __init__(self, pipe, world) -> None:
        self.pipe, self.world, self.name = pipe, world, getattr(pipe, "name", "pipeline")
        self.sums = np.zeros(4)  # candidate CTR sum, candidates, winner CTR sum, winners
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def propose(self, history, live, bids, users):
        if getattr(self.pipe, "needs_users", False):
            ads, q = self.pipe.propose(history, live, bids, users=users)
        else:
            ads, q = self.pipe.propose(history, live, bids)
        ctr = self.world.ad_ctr(users, ads)
        self.sums[:2] += ctr[ads >= 0].sum(), (ads >= 0).sum()
        self._last = (ads, ctr)
        return ads, q

    def auction(self, bids, quality):
        alloc = self.pipe.auction(bids, quality)
        if self._last is not None and self._last[0].shape == bids.shape:
            _, ctr = self._last
            w = alloc.winners
            self.sums[2:] += np.where(w >= 0, np.take_along_axis(ctr, np.maximum(w, 0), 1), 0.0).sum(), (w >= 0).sum()
            self._last = None
        return alloc

    def __getattr__(self, name: str):  # the creative hooks of a wrapped pipeline (genads.market.creative_choice)
        pipe = self.__dict__.get("pipe")
        if pipe is None:
            raise AttributeError(name)
        return getattr(pipe, name)

    def figures(self) -> dict:
        return {"candidates_true_ctr": float(self.sums[0] / max(self.sums[1], 1)),
                "winners_true_ctr": float(self.sums[2] / max(self.sums[3], 1))}


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
            "cpu_seconds_joint": round(time.process_time() - t2, 1)}
    info.update(head_scores(e2e, eb, m, vc.holdout))
    info.update({f"joint_eb_{k[9:]}": v for k, v in head_scores(joint, joint_eb, m, vc.holdout).items()})
    log(f"seed {seed} x{factor} trained: " + ", ".join(f"{a} {b:.4f}" if isinstance(b, float) else f"{a} {b}"
                                                      for a, b in info.items()))
    return Trained(m, cascade, e2e, eb, info, joint, joint_eb)


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


def e2e_variant(t: Trained, shrink: bool, z: float, rw: float, joint: bool = False, **changes) -> ParallelEndToEnd:
    """The end-to-end pipeline under one fix setting: the frozen-trunk (``joint`` False) or jointly trained
    generator and head, its per-ad biases shrunk or not, generation on an LCB ``z``, relevance weight ``rw``."""
    base = t.joint if joint else t.e2e
    if base is None:
        raise ValueError("this seed's models have no jointly trained pipeline")
    head = (t.joint_eb_head if joint else t.eb_head) if shrink else base.head
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
    for joint, shrink, z, rw in itertools.product(vc.joint, vc.shrink, vc.lcb_z, vc.relevance_weight):
        figs = run_markets(vc, t, e2e_variant(t, shrink, z, rw, joint))
        grid["e2e"][f"{int(joint)}/{int(shrink)}/{float(z)}/{float(rw)}"] = score(figs)
        log(f"tuning: e2e joint {joint} shrink {shrink} z {z} rw {rw}: {score(figs):.1f}")

    def best(keys, table):
        return max(keys, key=lambda key: table[key])

    c, e = grid["cascade"], grid["e2e"]
    blind = best([f"{r}/0.0" for r in vc.cascade_retrieve], c)
    bid = best([f"{r}/{a}" for r in vc.cascade_retrieve for a in vc.cascade_alpha], c)

    def fix(key: str) -> dict:
        j, s, z, rw = key.split("/")
        return {"shrink": bool(int(s)), "z": float(z), "rw": float(rw), "joint": bool(int(j))}

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
    choice["cascade"] = "cascade_bid" if c[bid] > c[blind] else "cascade_blind"
    eb = choice["e2e_best"]
    for r in vc.reserves:
        figs = run_markets(vc, t, e2e_variant(t, eb["shrink"], eb["z"], eb["rw"], eb.get("joint", False),
                                              reserve=r * median_value(t)))
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
        out[name] = (e2e_variant(t, c["shrink"], c["z"], c["rw"], c.get("joint", False)), None)
    eb = choice["e2e_best"]
    ej = eb.get("joint", False)
    out["e2e_best_reserve"] = (e2e_variant(t, eb["shrink"], eb["z"], eb["rw"], ej,
                                           reserve=choice["reserve_share"] * median_value(t)), None)
    learned = e2e_variant(t, eb["shrink"], eb["z"], eb["rw"], ej, payments="learned")
    m, cfg = t.market, vc.sim
    b, q = payment_profiles(m.world, learned, m.logs, cfg.e2e.payment_profiles, cfg.logs.max_history,
                            np.random.default_rng(m.seed + 7))
    learned.net, _ = train_payments(b, q, m.world.slot_ctr, cfg.e2e.payment_iterations, m.seed)
    out["e2e_best_learned"] = (learned, learned.net)
    out["oracle"] = (Oracle(m, vc.parallel.candidates), None)
    out["oracle_paced"] = (PacedOracle(m, vc.parallel.candidates, vc.sim.episode.batch_size, vc.pacing_eta,
                                       vc.sim.episode.requests), None)
    return out


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


def schedule_check(vc: VerdictConfig, choice: dict, base: Trained | None = None, seed: int | None = None,
                   log=print) -> dict:
    """On one seed (the tuning seed by default): retrain both sides with every maximum epoch count doubled and
    compare the verdict's two pipelines' RPM with the default schedules' (``base``: that seed's models trained
    with the defaults, retrained when None). Passes when neither side moves by more than 2% in either market."""
    seed = vc.tuning_seed if seed is None else seed
    base = train(vc, seed, log=log) if base is None else base
    t2 = train(vc, seed, factor=2, log=log)
    out: dict = {"seed": seed, "training_doubled": t2.info, "training_default": base.info, "rpm": {}}
    cas, eb = choice[choice["cascade"]], choice["e2e_best"]
    for side, make in (("cascade", lambda t: cascade_variant(t, cas["retrieve"], cas["alpha"])),
                       ("e2e_best", lambda t: e2e_variant(t, eb["shrink"], eb["z"], eb["rw"], eb.get("joint", False)))):
        a, b = run_markets(vc, base, make(base)), run_markets(vc, t2, make(t2))
        out["rpm"][side] = {mk: {"default": a[mk]["rpm"], "doubled": b[mk]["rpm"],
                                 "change": b[mk]["rpm"] / a[mk]["rpm"] - 1.0} for mk in MARKETS}
    out["max_abs_change"] = max(abs(v["change"]) for s in out["rpm"].values() for v in s.values())
    out["passes"] = bool(out["max_abs_change"] <= 0.02)
    log(f"schedule check, seed {seed}: max |RPM change| with doubled epochs {out['max_abs_change']:.4f} "
        f"({'passes' if out['passes'] else 'FAILS'} the 2% bound)")
    return out


def schedule_study(vc: VerdictConfig, choice: dict, seeds: tuple[int, ...], log=print, on_seed=None) -> dict:
    """:func:`schedule_check` on several seeds: per side and market the mean RPM change [95% CI] of doubling every
    maximum epoch count, so training noise on one seed is not read as an under-trained schedule."""
    checks = []
    for seed in seeds:
        checks.append(schedule_check(vc, choice, seed=seed, log=log))
        summary = {side: {mk: dict(zip(("mean", "low", "high"), interval(np.array(
            [c["rpm"][side][mk]["change"] for c in checks])), strict=True)) for mk in MARKETS}
            for side in ("cascade", "e2e_best")}
        result = {"seeds": [c["seed"] for c in checks], "checks": checks, "change": summary,
                  "max_abs_mean_change": max(abs(v["mean"]) for s in summary.values() for v in s.values())}
        if on_seed is not None:
            on_seed(result)
    return result


def ceilings(vc: VerdictConfig, seeds: tuple[int, ...], etas: tuple[float, ...], log=print, on_seed=None) -> dict:
    """The budget-aware ceiling with its dual step tuned (:class:`PacedOracle` pacing the budget *left* over the
    requests left): ``oracle_paced``'s ``eta`` chosen on the tuning seed by
    budget-bound RPM (no model is trained: the oracles read the truth), then the myopic and the paced oracle on
    ``seeds`` in both markets, and per seed the better of the two (the ceiling)."""

    def bare(seed: int) -> Trained:
        return Trained(Market(vc.sim, seed), None, None, None, {})  # type: ignore[arg-type]

    t = bare(vc.tuning_seed)
    grid = {}
    for eta in etas:
        figs = run_markets(vc, t, PacedOracle(t.market, vc.parallel.candidates, vc.sim.episode.batch_size, eta,
                                              vc.sim.episode.requests))
        grid[str(eta)] = figs["budget_bound"]["rpm"]
        log(f"ceilings: tuning eta {eta}: budget-bound RPM {grid[str(eta)]:.1f}")
    eta = float(max(grid, key=grid.get))
    out: dict = {"eta": eta, "eta_grid_rpm": grid, "per_seed": []}
    for seed in seeds:
        t = bare(seed)
        row = {"seed": seed}
        for name, pipe in (("oracle", Oracle(t.market, vc.parallel.candidates)),
                           ("oracle_paced", PacedOracle(t.market, vc.parallel.candidates, vc.sim.episode.batch_size,
                                                        eta, vc.sim.episode.requests))):
            row[name] = run_markets(vc, t, pipe)
        out["per_seed"].append(row)
        log(f"ceilings: seed {seed}: " + ", ".join(f"{n} {mk} RPM {row[n][mk]['rpm']:.1f}" for n in ORACLES
                                                   for mk in MARKETS))
        out["summary"] = {mk: {key: dict(zip(("mean", "low", "high"), interval(np.array(
            [f(r) for r in out["per_seed"]])), strict=True))
            for key, f in (("oracle_rpm", lambda r, mk=mk: r["oracle"][mk]["rpm"]),
                           ("oracle_paced_rpm", lambda r, mk=mk: r["oracle_paced"][mk]["rpm"]),
                           ("paced_over_myopic", lambda r, mk=mk: r["oracle_paced"][mk]["rpm"] / r["oracle"][mk]["rpm"]),
                           ("ceiling_rpm", lambda r, mk=mk: max(r["oracle"][mk]["rpm"], r["oracle_paced"][mk]["rpm"])),
                           ("oracle_gross_rpm", lambda r, mk=mk: r["oracle"][mk]["gross_rpm"]))}
            for mk in MARKETS}
        if on_seed is not None:
            on_seed(out)
    return out


def holm_table(tests: list[dict], alpha: float = 0.05) -> list[dict]:
    """Holm step-down over ``tests`` (each with per-seed paired relative differences ``d`` and a one-sided
    alternative): the adjusted p-value, and the t-interval of the mean whose each side is a one-sided bound at the
    test's Holm step (two-sided level 1 - 2 alpha / (m - rank)): the bound on the tested side excludes 0 exactly
    when that step's one-sided test rejects (``ci_level`` is the one-sided level 1 - alpha / (m - rank))."""
    m = len(tests)
    for t in tests:
        d = np.asarray(t["d"], float)
        if len(d) < 2 or np.allclose(d, d[0]):
            t["p"] = 1.0 if len(d) < 2 or (d[0] <= 0 if t["alternative"] == "greater" else d[0] >= 0) else 0.0
        else:
            t["p"] = float(stats.ttest_1samp(d, 0.0, alternative=t["alternative"]).pvalue)
    order = np.argsort([t["p"] for t in tests], kind="stable")
    running = 0.0
    for rank, i in enumerate(order):
        t = tests[i]
        running = max(running, min(1.0, (m - rank) * t["p"]))
        t["p_holm"], t["rejected"] = running, bool(running < alpha)
        d = np.asarray(t["d"], float)
        level = 1.0 - alpha / (m - rank)  # one-sided
        half = float(stats.t.ppf(level, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        t["mean"], t["ci_holm"], t["ci_level"] = float(d.mean()), [float(d.mean() - half), float(d.mean() + half)], level
    return tests


def aggregate(per_seed: list[dict], choice: dict) -> dict:
    """Per market: every variant's mean [95% CI] and paired relative lift over the verdict's cascade; the criteria
    of the issue (Holm over both markets); each fix's paired effect over the plain e2e; the gap to the oracle."""
    cas = choice["cascade"]
    out: dict = {"markets": {}, "cascade": cas}
    tests = []
    for mk in MARKETS:
        runs = [s["markets"][mk] for s in per_seed]
        table: dict = {}
        for name in runs[0]:
            table[name] = {}
            for metric in METRICS:
                v = np.array([r[name][metric] for r in runs], float)
                mean, lo, hi = interval(v)
                row = {"mean": mean, "ci95": [lo, hi], "per_seed": v.tolist()}
                base = np.array([r[cas][metric] for r in runs], float)
                if name != cas and (base != 0).all():
                    mean, lo, hi = interval(v / base - 1.0)
                    row["lift_vs_cascade"] = {"mean": mean, "ci95": [lo, hi]}
                table[name][metric] = row
        fixes = {}
        for name in FIXES[1:]:
            if name not in runs[0]:
                continue
            d = np.array([r[name]["rpm"] / r["e2e"]["rpm"] - 1.0 for r in runs])
            mean, lo, hi = interval(d)
            fixes[name] = {"rpm_lift_vs_e2e": {"mean": mean, "ci95": [lo, hi]}}
        oracle = {name: interval(np.array([r[name]["rpm"] / r["oracle"]["rpm"] for r in runs])) for name in runs[0]}
        gross = {name: interval(np.array([r[name]["gross_rpm"] / r["oracle"]["gross_rpm"] for r in runs]))
                 for name in runs[0]}
        out["markets"][mk] = {"variants": table, "fix_effects": fixes,
                              "rpm_share_of_oracle": {k: {"mean": v[0], "ci95": [v[1], v[2]]} for k, v in oracle.items()},
                              "gross_rpm_share_of_oracle": {k: {"mean": v[0], "ci95": [v[1], v[2]]}
                                                            for k, v in gross.items()}}
        tests.append({"market": mk, "claim": "e2e_best RPM > cascade", "alternative": "greater",
                      "d": [r["e2e_best"]["rpm"] / r[cas]["rpm"] - 1.0 for r in runs]})
        tests.append({"market": mk, "claim": "e2e_best CTR lower than cascade (must NOT be shown)",
                      "alternative": "less", "d": [r["e2e_best"]["ctr"] / r[cas]["ctr"] - 1.0 for r in runs]})
    out["criteria"] = holm_table(tests)
    done = {}
    for mk in MARKETS:
        rpm = next(t for t in out["criteria"] if t["market"] == mk and t["alternative"] == "greater")
        ctr = next(t for t in out["criteria"] if t["market"] == mk and t["alternative"] == "less")
        v = out["markets"][mk]["variants"]
        share = out["markets"][mk]["rpm_share_of_oracle"]["e2e_best"]["mean"]
        done[mk] = {"rpm_ci_above_0": bool(rpm["rejected"] and rpm["ci_holm"][0] > 0),
                    "ctr_not_significantly_lower": not ctr["rejected"],
                    "winners_true_ctr_at_least_cascade": bool(v["e2e_best"]["winners_true_ctr"]["mean"]
                                                              >= v[cas]["winners_true_ctr"]["mean"]),
                    "rpm_share_of_oracle": share, "rpm_at_least_95pct_of_oracle": bool(share >= 0.95)}
    out["done_when"] = done
    out["n_seeds"] = len(per_seed)
    out["all_hold"] = bool(len(per_seed) >= 10 and all(all(v for k, v in d.items() if k != "rpm_share_of_oracle")
                                                       for d in done.values()))
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


def run_verdict(vc: VerdictConfig, log=print, on_seed=None, resume: dict | None = None) -> dict:
    """Tuning, then every evaluation seed (the schedule check right after the first, so a run cut short still has
    it), aggregated after each seed; ``on_seed(result)`` is called with the result so far after every seed.

    ``resume``: the figures of an earlier run of the same code and config (cut short): its choices, schedule check
    and finished seeds are kept, and only the seeds of ``vc.seeds`` it lacks are run (no tuning again)."""
    cpu0 = time.process_time()
    if resume is None:
        choice, tuned = tune(vc, log)
        result: dict = {"choice": choice, "schedule_check": None, "per_seed": [], "tuning_seed": vc.tuning_seed,
                        "seeds_planned": list(vc.seeds), "cpu_seconds_tuning": round(time.process_time() - cpu0, 1),
                        "cpu_seconds_schedule_check": 0.0}
    else:
        if resume["tuning_seed"] != vc.tuning_seed:
            raise ValueError(f"resume: tuning seed {resume['tuning_seed']} != {vc.tuning_seed}")
        choice, tuned = resume["choice"], None
        result = {k: resume[k] for k in ("choice", "schedule_check", "tuning_seed", "cpu_seconds_tuning",
                                         "cpu_seconds_schedule_check")}
        result["per_seed"] = [s for s in resume["per_seed"] if s["seed"] in vc.seeds]
        result["seeds_planned"] = list(vc.seeds)
        result["resumed_seeds"] = [s["seed"] for s in result["per_seed"]]
    done = {s["seed"] for s in result["per_seed"]}
    for seed in vc.seeds:
        if seed in done:
            continue
        result["per_seed"].append(run_seed(vc, choice, seed, log))
        if vc.schedule_check and result["schedule_check"] is None:
            c0 = time.process_time()
            result["schedule_check"] = schedule_check(vc, choice, tuned, log=log)
            result["cpu_seconds_schedule_check"] = round(time.process_time() - c0, 1)
            tuned = None
        result["summary"] = aggregate(result["per_seed"], choice)
        result["seeds_done"] = [s["seed"] for s in result["per_seed"]]
        result["cpu_seconds_per_seed"] = [s["cpu_seconds"] for s in result["per_seed"]]
        if on_seed is not None:
            on_seed(result)
    return result
