"""Demo step "rerank": the slate reward model on simulated impressions, then bid-aware decoding + re-ranking."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from genads.eval.report import figure_png
from genads.reward.model import RewardConfig, SlateRewardModel
from genads.reward.pipeline import (
    BeamGenerator,
    SimulationConfig,
    compare_decoders,
    item_bids,
    item_popularity,
    training_log,
)
from genads.reward.simulate import ClickModel
from genads.reward.train import RewardTrainConfig, fit, with_bid_scale, with_score_scale

SLATE, POOL, HISTORY = 10, 20, 20


def _plot(slot_ctr: np.ndarray, slot_pred: np.ndarray, exam: np.ndarray, rows: list[dict]):  # a matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    slots = np.arange(1, len(slot_ctr) + 1)
    axes[0].plot(slots, slot_ctr, "o-", label="simulated clicks (held out)")
    axes[0].plot(slots, slot_pred, "s--", label="reward model pCTR")
    axes[0].plot(slots, exam * slot_ctr[0], ":", color="grey", label="examination (scaled)")
    axes[0].set_xlabel("slot")
    axes[0].set_ylabel("CTR")
    axes[0].legend(fontsize=8)
    for r in rows:
        axes[1].scatter(r["recall@10"], r["sim_revenue"], s=40)
        axes[1].annotate(r["decoder"].replace(" + reward re-rank", "\n+ re-rank"), (r["recall@10"], r["sim_revenue"]),
                         fontsize=7, xytext=(4, 2), textcoords="offset points")
    axes[1].set_xlabel("Recall@10 (test item)")
    axes[1].set_ylabel("simulated revenue per slate")
    fig.tight_layout()
    return fig


def run(ctx) -> None:  # ctx: DemoContext (demo.py imports the steps)
    rec = ctx.artifacts.get("slate_model")
    if rec is None or rec.model is None:
        raise ValueError("the rerank step needs ctx.artifacts['slate_model'] from the slate step")
    start, cpu = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        figures, rows, plot = _run(ctx, rec)
    finally:
        torch.set_num_threads(threads)
    ctx.metrics["rerank"] = {**figures, "decoders": rows, "seconds": round(time.perf_counter() - start, 1),
                             "cpu_seconds": round(time.process_time() - cpu, 1)}
    sim = figures["simulation"]
    s = ctx.report.section("Slate reward model and bid-aware decoding")
    s.paragraphs.append(
        "The demo data logs interactions, not impressions, so impressions are <em>simulated</em>: for "
        f"{figures['requests_simulated']} validation cases ({sim['repeats']} impressions each), slates of {SLATE} ads drawn from the slate model's beam (half of the "
        f"requests) or from popularity samples, the user's validation item put in with probability "
        f"{sim['include_prob']}, shown in random order; clicks follow a position-based model (examination "
        f"1/(1+slot)^{sim['click']['position_decay']}, attractiveness {sim['click']['relevant_ctr']} for the "
        f"relevant ad, ≈{sim['click']['base_ctr']} scaled by popularity otherwise). The reward model (self-attention "
        "over the slate: SID embedding + slot + log-bid + the slate model's log P(SID | history), with a "
        "user-history token) predicts per-slot pCTR; "
        f"held-out log-loss {figures['fit']['valid_logloss']:.4f} vs {figures['fit']['position_only_logloss']:.4f} "
        "for the per-slot mean CTR. Test users: plain beam search, token-level bid-aware beam search (score + "
        "log bid of the prefix's max or mean live bid), and the bid-aware beam's pool of "
        f"{POOL} re-ranked to maximise Σ pCTR × bid. Simulated CTR and revenue use the same click model with the "
        "test item as the relevant ad.")
    s.tables.append((f"Decoders on {figures['test_users']} test users (slates of {SLATE})", rows))
    s.images.append(("Learned position effect; accuracy vs revenue", figure_png(plot)))


def _run(ctx, rec) -> tuple[dict, list[dict], object]:
    split, sids = ctx.split, rec.sids
    bids = item_bids(ctx.dataset.catalogue, split.item_ids)
    pop = item_popularity(split.train, split.n_items)
    click = ClickModel()
    sim = SimulationConfig(requests=300 if ctx.fast else 4000, repeats=2 if ctx.fast else 3, slate_size=SLATE,
                           pool_size=POOL, click=click)
    log, hist = training_log(split.valid.history[:, -HISTORY:], split.valid.target, pop, sim, seed=ctx.seed,
                             generator=BeamGenerator(rec.model, rec.trie, sids))
    torch.manual_seed(ctx.seed)
    config = with_bid_scale(RewardConfig(levels=sids.shape[1], codebook_size=int(sids.max()) + 1, max_slate=SLATE,
                                         use_history=True, use_score=True, dropout=0.1), bids[1:])
    reward = SlateRewardModel(with_score_scale(config, log.scores))
    report = fit(reward, log, sids, bids, RewardTrainConfig(epochs=2 if ctx.fast else 8), seed=ctx.seed, history=hist)
    n_test = 60 if ctx.fast else 500
    pick = np.sort(np.random.default_rng(ctx.seed).choice(len(split.test), min(n_test, len(split.test)), replace=False))
    rows = compare_decoders(rec.model, rec.trie, sids, bids, pop, split.test.history[pick, -HISTORY:],
                            split.test.target[pick], reward, click, slate_size=SLATE, beam=POOL, pool_size=POOL)
    ctx.artifacts["reward_model"] = reward
    plot = _plot(np.array(report["slot_ctr"]), np.array(report["slot_pctr"]), click.examination(SLATE), rows)
    figures = {"simulation": {**asdict(sim), "note": "simulated impressions"}, "fit": report,
               "reward_config": asdict(reward.config), "test_users": len(pick), "requests_simulated": len(hist)}
    return figures, rows, plot
