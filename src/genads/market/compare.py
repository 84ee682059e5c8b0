"""Cascade against end to end on identical traffic, over several seeds, with confidence intervals.

Per seed: draw a market, log its clicks and an exploration impression log, train both pipelines
on those logs only, draw one episode of traffic and serve it with every variant (same users, same
click draws, same bidder types), then audit each variant's auction for regret (Ψ). Figures are
averaged over seeds with Student-t 95% intervals; the end-to-end lift over the cascade is paired
by seed.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from scipy import stats

from genads.auction.payment_net import PaymentNet, PaymentNetConfig, PaymentTrainConfig, train_payment_net
from genads.data.split import left_pad
from genads.market.audit import AuditedAuction, psi, psi_in_model
from genads.market.cascade import build_cascade
from genads.market.config import SimConfig
from genads.market.e2e import EndToEnd, RewardCTR, SlateScoreCTR, train_slate
from genads.market.engine import make_traffic, run_episode
from genads.market.logs import Logs, make_logs
from genads.market.world import World, make_world
from genads.reward.train import RewardTrainConfig

METRICS = ("rpm", "ctr", "advertiser_welfare_per_mille", "user_welfare", "psi", "ir_violations",
           "budget_overspend", "clicks_per_mille", "rpm_expected", "ctr_expected", "fill_rate",
           "strategic_gamma_mean", "psi_grid", "psi_ascent", "value_efficiency", "pctr_true_ctr_spearman",
           "pctr_over_true_ctr", "candidate_true_ctr", "psi_in_model_grid")
EGA_GAMMA_STEP = tuple(round(0.2 * i, 1) for i in range(1, 11))
"""{0.2, 0.4, ..., 2.0}: EGA's misreport grid at its coarser step (payment-network training)."""


def payment_profiles(world: World, pipe: EndToEnd, logs: Logs, n: int, max_history: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(values, pCTR), each (n, candidates): auctions of training traffic at truthful bids (the audit's profiles)."""
    bids = world.value
    live = np.ones(world.config.n_ads, dtype=bool)
    hist = left_pad(logs.histories, max_history)
    out_b, out_q = [], []
    for s in range(0, n, 256):
        users = rng.integers(world.config.n_users, size=min(256, n - s))
        ads, q = pipe.propose(hist[users], live, bids)
        out_b.append(np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0))
        out_q.append(q)
    return np.concatenate(out_b), np.concatenate(out_q)


def train_payments(bids: np.ndarray, quality: np.ndarray, slot_ctr: np.ndarray, iterations: int,
                   seed: int) -> tuple[PaymentNet, dict]:
    """EGA's payment network on logged auctions (augmented Lagrangian, misreport grid)."""
    torch.manual_seed(seed)
    cfg = PaymentNetConfig(n_bidders=bids.shape[1], slot_ctr=tuple(float(c) for c in slot_ctr), hidden=32,
                           bid_scale=float(np.median(bids[bids > 0])), quality_scale=float(np.median(quality)))
    net = PaymentNet(cfg)
    values = torch.as_tensor(bids, dtype=torch.float32)[..., None]
    context = torch.as_tensor(quality, dtype=torch.float32)[..., None]
    log = train_payment_net(net, values, context, PaymentTrainConfig(
        iterations=iterations, batch_size=128, lr=3e-3, rho_every=max(iterations // 6, 1), lambda_init=3.0,
        gammas=EGA_GAMMA_STEP, seed=seed), log_every=max(iterations // 10, 1))
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
    b, q = payment_profiles(world, pipe, logs, cfg.e2e.payment_profiles, cfg.logs.max_history,
                            np.random.default_rng(seed + 7))
    net, pay_log = train_payments(b, q, world.slot_ctr, cfg.e2e.payment_iterations, seed)
    pipe.net = net
    held = slice(len(b) - min(cfg.episode.audit_auctions, len(b) // 4), len(b))  # audit on the training distribution
    for name, mech in (("learned", AuditedAuction(world.slot_ctr, net)), ("gsp", AuditedAuction(world.slot_ctr))):
        pay_log[f"psi_training_profiles_{name}"] = psi(mech, b[held], q[held], q[held], cfg.audit, seed)["psi"]
    info = {"slate_epochs": len(slate_log),
            "slate_valid_ndcg@10": max((r.get("valid_ndcg@10", 0.0) for r in slate_log), default=0.0),
            **quality_info, "payment_training": pay_log}
    return pipe, info


class RankerQuality:
    """The cascade's DIN pCTR behind the end-to-end quality interface (the diagnostic hybrid)."""

    def __init__(self, ranker) -> None:
        self.ranker = ranker

    def pctr(self, history: np.ndarray, items: np.ndarray, bids: np.ndarray) -> np.ndarray:
        return self.ranker.pctr(history, items)


def variant(name: str, cascade, e2e: EndToEnd):
    if name == "cascade":
        return cascade
    if name == "e2e_din_pctr":
        return e2e.with_config(quality=RankerQuality(cascade.ranker), payments="gsp")
    changes = {"e2e": {}, "e2e_mean_bid": {"bidding": replace(e2e.cfg.bidding, aggregate="mean")},
               "e2e_gsp": {"payments": "gsp"}, "e2e_no_bid": {"bidding": replace(e2e.cfg.bidding, alpha=0.0)}}[name]
    return e2e.with_config(**changes)


def pctr_quality(pctr: np.ndarray, ctr: np.ndarray, ads: np.ndarray) -> dict[str, float]:
    """How well a pipeline's pCTR tracks the ground truth on its audited candidates."""
    ok = ads >= 0
    p, t = pctr[ok], ctr[ok]
    return {"pctr_true_ctr_spearman": float(stats.spearmanr(p, t)[0]) if len(p) > 2 else float("nan"),
            "pctr_over_true_ctr": float(p.mean() / max(t.mean(), 1e-12)),
            "candidate_true_ctr": float(t.mean())}


def run_seed(cfg: SimConfig, seed: int, log=print) -> dict:
    """Every variant on one seed's market and traffic: {variant: figures} plus training info and timings."""
    t0, c0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(seed)
    world = make_world(cfg.world, rng)
    logs = make_logs(world, cfg.logs, rng)
    log(f"seed {seed}: market and logs ready ({len(logs.impressions.item)} impressions)")
    cascade, cas_info = build_cascade(world, logs, cfg.cascade, seed)
    log(f"seed {seed}: cascade trained ({time.perf_counter() - t0:.0f}s)")
    e2e, e2e_info = build_e2e(world, logs, cfg, seed)
    log(f"seed {seed}: end-to-end trained ({time.perf_counter() - t0:.0f}s)")
    traffic = make_traffic(world, cfg.episode, np.random.default_rng(seed + 1000))
    hist = left_pad(logs.histories, cfg.logs.max_history)
    out: dict = {"seed": seed, "variants": {}, "training": {"cascade": cas_info, "e2e": e2e_info}}
    for name in cfg.variants:
        pipe = variant(name, cascade, e2e)
        res = run_episode(world, pipe, hist, traffic, cfg.bidders, cfg.episode, seed)
        aud = res.pop("audit")
        values = np.where(aud["ads"] >= 0, world.value[np.maximum(aud["ads"], 0)], 0.0)
        net = e2e.net if name != "cascade" and pipe.cfg.payments == "learned" else None
        mech = AuditedAuction(world.slot_ctr, net)
        res.update(psi(mech, values, aud["quality"], aud["ctr"], cfg.audit, seed))
        res["psi_in_model_grid"] = psi_in_model(mech, values, aud["quality"])
        res.update(pctr_quality(aud["quality"], aud["ctr"], aud["ads"]))
        out["variants"][name] = res
        log(f"seed {seed}: {name:13s} RPM {res['rpm']:.2f}  CTR {res['ctr']:.4f}  Ψ {res['psi']:.4f}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["cpu_seconds"] = round(time.process_time() - c0, 1)
    return out


def interval(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95% interval of the mean (a point when n = 1)."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and 95% CI of every metric per variant, and the paired lift of each variant over the cascade."""
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
    per_seed = [run_seed(cfg, s, log) for s in cfg.seeds]
    return {"per_seed": per_seed, "summary": aggregate(per_seed),
            "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}
