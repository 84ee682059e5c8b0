"""Cascade against end to end on identical traffic, over several seeds, with confidence intervals.

Per seed: draw a market, log its clicks and an exploration impression log, train both pipelines
on those logs only (the last ``impression_holdout`` share of the logged requests held out, where
both pCTR models are scored: within-request AUC and log-loss), draw one episode of traffic and
serve it with every variant (:mod:`genads.market.variants`: same users, same click draws, same
bidder types) in every market of ``cfg.markets`` (budget-bound, unconstrained: the same trained
parts), then audit each variant's auction for regret (Ψ). Figures are averaged over seeds with
Student-t 95% intervals; lifts over the cascade and the ladder's steps are paired by seed.

The payment network is trained against the audit's own misreport grid (EGA's 19 points) on
auctions of *training* users; Ψ of its prices and of GSP's is then measured on the same held-out
auctions (users disjoint from the training ones), where both share one allocation (rank by bid x
pCTR) and differ only in prices.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from scipy import stats

from genads.auction.payment_net import PaymentNet, PaymentNetConfig, PaymentTrainConfig, train_payment_net
from genads.auction.regret import EGA_GAMMAS
from genads.data.split import left_pad
from genads.eval.statistics import interval
from genads.market.audit import AuditedAuction, generation_psi, psi, psi_in_model
from genads.market.cascade import build_cascade
from genads.market.config import SimConfig
from genads.market.e2e import EndToEnd, RewardCTR, SlateScoreCTR, train_slate
from genads.market.engine import make_traffic, run_episode
from genads.market.logs import Logs, make_logs, split_impressions
from genads.market.pctr_eval import score_pctr
from genads.market.variants import Parts, RankerQuality, build  # noqa: F401  (RankerQuality: older import path)
from genads.market.world import World, make_world
from genads.reward.train import RewardTrainConfig

METRICS = ("rpm", "ctr", "advertiser_welfare_per_mille", "user_welfare", "psi", "ir_violations",
           "budget_overspend", "clicks_per_mille", "rpm_expected", "ctr_expected", "fill_rate",
           "strategic_gamma_mean", "psi_grid", "psi_ascent", "value_efficiency", "pctr_true_ctr_spearman",
           "pctr_over_true_ctr", "candidate_true_ctr", "psi_in_model_grid", "gross_rpm", "lost_rpm", "lost_share",
           "budget_spent_share", "absorbed_per_mille", "withdrawn_per_mille")
MARKETS = {"budget_bound": 1.0, "unconstrained": 100.0}
"""Markets of a run: advertisers' budgets as drawn, and x100 (the same trained pipelines serve both)."""
EGA_GAMMA_STEP = tuple(round(0.2 * i, 1) for i in range(1, 11))
"""{0.2, 0.4, ..., 2.0}: EGA's coarser misreport grid (the payment network's former training grid;
it now trains against :data:`EGA_GAMMAS`, the grid the audit searches)."""


def profile_users(n_users: int, audit_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training users, audit users): a disjoint split of the users for the payment network's auctions."""
    perm = np.random.default_rng(seed + 11).permutation(n_users)
    cut = n_users - max(1, round(audit_share * n_users))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def payment_profiles(world: World, pipe: EndToEnd, logs: Logs, n: int, max_history: int,
                     rng: np.random.Generator, users: np.ndarray | None = None,
                     return_ctr: bool = False) -> tuple[np.ndarray, ...]:
    """(values, pCTR), each (n, candidates): auctions of requests by ``users`` (default: all) at truthful bids.

    With ``return_ctr`` also the candidates' true CTR (n, candidates), for the audit.
    """
    bids = world.value
    live = np.ones(world.config.n_ads, dtype=bool)
    hist = left_pad(logs.histories, max_history)
    pool = np.arange(world.config.n_users) if users is None else np.asarray(users)
    out_b, out_q, out_c = [], [], []
    for s in range(0, n, 256):
        who = pool[rng.integers(len(pool), size=min(256, n - s))]
        ads, q = pipe.propose(hist[who], live, bids)
        out_c.append(world.ad_ctr(who, ads))
        out_b.append(np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0))
        out_q.append(q)
    if return_ctr:
        return np.concatenate(out_b), np.concatenate(out_q), np.concatenate(out_c)
    return np.concatenate(out_b), np.concatenate(out_q)


def train_payments(bids: np.ndarray, quality: np.ndarray, slot_ctr: np.ndarray, iterations: int,
                   seed: int, gammas: tuple[float, ...] = EGA_GAMMAS) -> tuple[PaymentNet, dict]:
    """EGA's payment network on logged auctions (augmented Lagrangian, misreport grid ``gammas``:
    by default the audit's own grid, so training and audit face the same adversary on the grid)."""
    torch.manual_seed(seed)
    cfg = PaymentNetConfig(n_bidders=bids.shape[1], slot_ctr=tuple(float(c) for c in slot_ctr), hidden=32,
                           bid_scale=float(np.median(bids[bids > 0])), quality_scale=float(np.median(quality)))
    net = PaymentNet(cfg)
    values = torch.as_tensor(bids, dtype=torch.float32)[..., None]
    context = torch.as_tensor(quality, dtype=torch.float32)[..., None]
    log = train_payment_net(net, values, context, PaymentTrainConfig(
        iterations=iterations, batch_size=128, lr=3e-3, rho_every=max(iterations // 6, 1), lambda_init=3.0,
        gammas=tuple(gammas), seed=seed), log_every=max(iterations // 10, 1))
    net.eval()
    return net, {"revenue": log.revenue, "regret": log.regret}


def build_e2e(world: World, logs: Logs, cfg: SimConfig, seed: int) -> tuple[EndToEnd, dict]:
    model, sids, slate_log = train_slate(logs, world.ad_features, cfg.e2e, seed)
    if cfg.e2e.quality == "reward":
        quality = RewardCTR(sids, world.slot_ctr, cfg.logs.max_history, seed)
        quality.fit(logs.impressions, world.config.ad_load, RewardTrainConfig(epochs=cfg.e2e.reward_epochs), seed)
        quality_info = {"quality_model": "permutation-aware slate reward model",
                        "reward_fit": {k: v for k, v in quality.log.items() if not isinstance(v, np.ndarray)}}
    else:
        quality = SlateScoreCTR(model, sids)
        quality.fit(logs.impressions, world.slot_ctr, rows=20000, seed=seed)
        quality_info = {"quality_model": "slate model log-probability, Platt-calibrated on the impression log",
                        "calibration": [float(quality.a.detach()), float(quality.b.detach())]}
    pipe = EndToEnd(model, sids, quality, None, cfg.e2e, world.slot_ctr)
    train_users, audit_users = profile_users(world.config.n_users, cfg.audit_user_share, seed)
    b, q = payment_profiles(world, pipe, logs, cfg.e2e.payment_profiles, cfg.logs.max_history,
                            np.random.default_rng(seed + 7), users=train_users)
    net, pay_log = train_payments(b, q, world.slot_ctr, cfg.e2e.payment_iterations, seed)
    pipe.net = net
    hb, hq, hc = payment_profiles(world, pipe, logs, cfg.episode.audit_auctions, cfg.logs.max_history,
                                  np.random.default_rng(seed + 8), users=audit_users, return_ctr=True)
    pay_log["psi_identical_allocations"] = psi_identical(world, net, (b, q), (hb, hq, hc), cfg, seed)
    pay_log["audit_users"], pay_log["training_users"] = len(audit_users), len(train_users)
    info = {"slate_epochs": len(slate_log),
            "slate_valid_ndcg@10": max((r.get("valid_ndcg@10", 0.0) for r in slate_log), default=0.0),
            **quality_info, "payment_training": pay_log}
    return pipe, info


def psi_identical(world: World, net: PaymentNet, train: tuple, held: tuple, cfg: SimConfig, seed: int) -> dict:
    """Ψ of learned prices and GSP on the *same* auctions (same candidates, bids and pCTR, hence the same
    allocation): the held-out audit set (users disjoint from the payment network's training users,
    clicks at the true CTR, grid + ascent) and, for reference, training auctions in the model's own
    world (clicks at the pCTR, the grid the network was trained against)."""
    hb, hq, hc = held
    tb, tq = train[0][: len(hb)], train[1][: len(hb)]
    out: dict = {}
    for name, mech in (("learned", AuditedAuction(world.slot_ctr, net)), ("gsp", AuditedAuction(world.slot_ctr))):
        r = psi(mech, hb, hq, hc, cfg.audit, seed)
        out[name] = {"psi_heldout": r["psi"], "psi_heldout_grid": r["psi_grid"], "psi_heldout_ascent": r["psi_ascent"],
                     "psi_heldout_in_model_grid": psi_in_model(mech, hb, hq),
                     "psi_training_in_model_grid": psi_in_model(mech, tb, tq)}
    return out


def variant(name: str, cascade, e2e: EndToEnd, world: World | None = None):
    """The pipeline ``name`` of :data:`genads.market.variants.REGISTRY` (kept for older callers)."""
    return build(name, Parts(world, cascade, e2e))


def pctr_quality(pctr: np.ndarray, ctr: np.ndarray, ads: np.ndarray) -> dict[str, float]:
    """How well a pipeline's pCTR tracks the ground truth on its audited candidates."""
    ok = ads >= 0
    p, t = pctr[ok], ctr[ok]
    return {"pctr_true_ctr_spearman": float(stats.spearmanr(p, t)[0]) if len(p) > 2 else float("nan"),
            "pctr_over_true_ctr": float(p.mean() / max(t.mean(), 1e-12)),
            "candidate_true_ctr": float(t.mean())}


def train_parts(cfg: SimConfig, seed: int, log=print) -> tuple[Parts, Logs, dict]:
    """One seed's world, logs and both trained pipelines, plus training info and the pCTR models' held-out scores."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    world = make_world(cfg.world, rng)
    logs = make_logs(world, cfg.logs, rng)
    train_imp, held_imp = split_impressions(logs.impressions, world.config.ad_load, cfg.impression_holdout)
    train_logs = replace(logs, impressions=train_imp)
    log(f"seed {seed}: market and logs ready ({len(train_imp.item)} training, {len(held_imp.item)} held-out impressions)")
    cascade, cas_info = build_cascade(world, train_logs, cfg.cascade, seed)
    log(f"seed {seed}: cascade trained ({time.perf_counter() - t0:.0f}s)")
    e2e, e2e_info = build_e2e(world, train_logs, cfg, seed)
    log(f"seed {seed}: end-to-end trained ({time.perf_counter() - t0:.0f}s)")
    k = world.config.ad_load
    scores = {"din": score_pctr(lambda h, i, u: cascade.ranker.pctr(h, i), held_imp, k, world.slot_ctr),
              "reward_model": score_pctr(lambda h, i, u: e2e.quality.pctr(h, i, np.ones(i.shape)), held_imp, k,
                                         world.slot_ctr),
              "true_ctr": score_pctr(lambda h, i, u: world.ad_ctr(u, i - 1), held_imp, k, world.slot_ctr)}
    info = {"cascade": cas_info, "e2e": e2e_info, "pctr_heldout": scores, "train_seconds": round(time.perf_counter() - t0, 1)}
    return Parts(world, cascade, e2e), logs, info


def generation_audit(cfg: SimConfig, parts: Parts, hist: np.ndarray, seed: int) -> dict:
    """:func:`generation_psi` of the cascade, e2e with GSP and e2e on held-out users' requests; the audited
    advertisers are those whose ads the cascade and e2e propose most often at truthful bids."""
    world = parts.world
    _, audit_users = profile_users(world.config.n_users, cfg.audit_user_share, seed)
    users = np.random.default_rng(seed + 9).choice(audit_users, min(cfg.audit.generation_requests, len(audit_users)),
                                                   replace=False)
    live = np.ones(world.config.n_ads, dtype=bool)
    counts = np.zeros(world.config.n_advertisers)
    for pipe in (parts.cascade, parts.e2e):
        ads, _ = pipe.propose(hist[users], live, world.value)
        np.add.at(counts, world.owner[ads[ads >= 0]], 1)
    advertisers = np.argsort(-counts, kind="stable")[: cfg.audit.generation_advertisers]
    return {name: generation_psi(world, build(name, parts), hist[users], users, advertisers)
            for name in ("cascade", "e2e_gsp", "e2e") if name in cfg.variants}


def run_seed(cfg: SimConfig, seed: int, log=print) -> dict:
    """Every variant in every market on one seed's world and traffic: {market: {variant: figures}} plus training info."""
    t0, c0 = time.perf_counter(), time.process_time()
    parts, logs, training = train_parts(cfg, seed, log)
    world = parts.world
    traffic = make_traffic(world, cfg.episode, np.random.default_rng(seed + 1000))
    hist = left_pad(logs.histories, cfg.logs.max_history)
    out: dict = {"seed": seed, "markets": {}, "training": training}
    for market in cfg.markets:
        mworld = replace(world, budget_rate=world.budget_rate * MARKETS[market])
        figures: dict = {}
        for name in cfg.variants:
            pipe = build(name, replace(parts, world=mworld))
            res = run_episode(mworld, pipe, hist, traffic, cfg.bidders, cfg.episode, seed)
            aud = res.pop("audit")
            values = np.where(aud["ads"] >= 0, world.value[np.maximum(aud["ads"], 0)], 0.0)
            net = parts.e2e.net if isinstance(pipe, EndToEnd) and pipe.cfg.payments == "learned" else None
            mech = AuditedAuction(world.slot_ctr, net)
            res.update(psi(mech, values, aud["quality"], aud["ctr"], cfg.audit, seed))
            res["psi_in_model_grid"] = psi_in_model(mech, values, aud["quality"])
            res.update(pctr_quality(aud["quality"], aud["ctr"], aud["ads"]))
            figures[name] = res
            log(f"seed {seed} {market}: {name:14s} RPM {res['rpm']:.2f} (gross {res['gross_rpm']:.2f})  "
                f"CTR {res['ctr']:.4f}  Ψ {res['psi']:.4f}")
        out["markets"][market] = {"variants": figures}
    if cfg.audit.generation_advertisers:
        out["generation_audit"] = generation_audit(cfg, parts, hist, seed)
    out["variants"] = out["markets"][cfg.markets[0]]["variants"]  # the first market (the single-market layout)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["cpu_seconds"] = round(time.process_time() - c0, 1)
    return out


def aggregate(per_seed: list[dict], market: str | None = None) -> dict:
    """Mean and 95% CI of every metric per variant, and the paired lift of each variant over the cascade."""
    if market is not None:
        per_seed = [{"variants": s["markets"][market]["variants"]} for s in per_seed]
    names = list(per_seed[0]["variants"])
    summary: dict = {}
    for name in names:
        summary[name] = {}
        for m in METRICS:
            vals = np.array([s["variants"][name][m] for s in per_seed], dtype=float)
            mean, lo, hi = interval(vals)
            summary[name][m] = {"mean": mean, "ci95": [lo, hi], "per_seed": vals.tolist()}
            if name != "cascade":
                base = np.array([s["variants"]["cascade"][m] for s in per_seed], dtype=float)
                rel = np.where(base != 0, vals / np.where(base != 0, base, 1.0) - 1.0, np.nan)
                if np.isfinite(rel).all():
                    mean, lo, hi = interval(rel)
                    summary[name][m]["lift_vs_cascade"] = {"mean": mean, "ci95": [lo, hi]}
    return summary


def run_comparison(cfg: SimConfig, log=print) -> dict:
    """All seeds, then the aggregate: {"config", "per_seed", "summary", "seconds", "cpu_seconds"}."""
    t0, c0 = time.perf_counter(), time.process_time()
    from genads.market.criteria import judge, ladder

    per_seed = [run_seed(cfg, s, log) for s in cfg.seeds]
    markets = {m: aggregate(per_seed, m) for m in cfg.markets}
    return {"per_seed": per_seed, "summary": markets[cfg.markets[0]], "markets": markets,
            "ladder": {m: ladder(per_seed, m) for m in cfg.markets}, "criteria": judge({"world": per_seed}),
            "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}
