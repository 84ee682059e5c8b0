"""Bid-aware decoding and reward re-ranking on Amazon Beauty with its synthetic bids.

    python benchmarks/beauty_bid_aware.py [--run runs/beauty_bid_aware] [--budget-min 20] [--users 2000]

The run folder is a ``genads train`` run (dataset/ from the S3-Rec loader with the import's
synthetic bids, sids/sids.parquet as in beauty_generative.py, config.json, model.safetensors); it
is made (tokenised + trained within ``--budget-min``) when it does not exist, so
``genads reward train/slate RUN`` work on it too.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from _common import print_table, save
from beauty_generative import beauty_sids
from genads.commands.slate import load_recommender
from genads.commands.tokenize import write_sids
from genads.data.dataset import atomic_write_text, load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import S3RecSource
from genads.data.split import SplitConfig, leave_one_out
from genads.decode.bidding import BidConfig
from genads.reward import (
    ClickModel,
    RerankConfig,
    RewardConfig,
    RewardTrainConfig,
    SlateRewardModel,
    fit,
    load_reward_model,
    save_reward_model,
    score_slates,
)
from genads.reward.pipeline import (
    BeamGenerator,
    SimulationConfig,
    compare_decoders,
    decode,
    item_bids,
    item_popularity,
    training_log,
)
from genads.reward.train import with_bid_scale, with_score_scale
from genads.slate.checkpoint import save_weights
from genads.slate.model import PRESETS
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS

ROOT = Path(__file__).resolve().parents[1]
SLATE, HISTORY = 10, 20


def prepare_run(run: Path, data: Path, budget_min: float, seed: int) -> dict:
    """Import Beauty, make its SIDs and train the slate model into ``run`` (a `genads train` run folder)."""
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "dataset" / "meta.json").is_file():
        import_dataset(S3RecSource(data), run / "dataset", progress=False)
    dataset = load_dataset(run / "dataset")
    split = leave_one_out(dataset, SplitConfig(max_history=50))
    (run / "sids").mkdir(exist_ok=True)
    start = time.process_time()
    sids, sid_stats = beauty_sids(dataset, split, "rq-kmeans", levels=3, codebook=256, seed=seed)
    write_sids(run / "sids" / "sids.parquet", split.item_ids[1:], sids[1:, :-1], sids[1:])
    train = replace(TRAIN_PRESETS["beauty"], time_budget_s=budget_min * 60)
    rec = SlateRecommender(sids, PRESETS["beauty"], train, run_dir=run)
    cfg = {"dataset": str((run / "dataset").resolve()), "sids": str((run / "sids").resolve()), "max_history": 50,
           "seed": seed, "preset": "beauty", "model": asdict(rec.config), "train": asdict(train), "world_size": 1,
           "sid_stats": sid_stats}
    atomic_write_text(run / "config.json", json.dumps(cfg, indent=2) + "\n")
    log = rec.fit(split, seed=seed, progress=False)
    save_weights(rec.model, run / "model.safetensors")
    return {"epochs": len(log), "cpu_seconds": round(time.process_time() - start, 1),
            "best_valid_ndcg@10": max((r["valid_ndcg@10"] for r in log if "valid_ndcg@10" in r), default=None)}


def train_reward(rec, split, bids, pop, args) -> tuple[SlateRewardModel, dict]:
    """Simulated impressions for sampled validation cases, then the reward model (saved in RUN/reward)."""
    sim = SimulationConfig(requests=args.requests, repeats=2, slate_size=SLATE, pool_size=args.pool,
                           click=ClickModel())
    cpu = time.process_time()
    log, hist = training_log(split.valid.history[:, -HISTORY:], split.valid.target, pop, sim, seed=args.seed,
                             generator=BeamGenerator(rec.model, rec.trie, rec.sids))
    sim_cpu = time.process_time() - cpu
    config = with_bid_scale(RewardConfig(levels=rec.sids.shape[1], codebook_size=int(rec.sids.max()) + 1,
                                         max_slate=SLATE, use_history=True, use_score=not args.no_score,
                                         dropout=0.1), bids[1:])
    config = with_score_scale(config, log.scores if config.use_score else None)
    torch.manual_seed(args.seed)
    model = SlateRewardModel(config)
    cpu = time.process_time()
    report = fit(model, log, rec.sids, bids, RewardTrainConfig(), seed=args.seed, history=hist)
    figures = {"simulation": {**asdict(sim), "note": "simulated impressions: Beauty has no impression log"},
               "fit": report, "simulate_cpu_s": round(sim_cpu, 1), "fit_cpu_s": round(time.process_time() - cpu, 1),
               "config": asdict(config)}
    save_reward_model(model, args.run / args.reward_dir, {"history_items": HISTORY, **figures})
    return model, figures


def position_check(model: SlateRewardModel, rec, split, bids: np.ndarray, pick: np.ndarray) -> dict:
    """Mean pCTR of the same plain-beam slates in beam order and reversed, per slot."""
    history = split.test.history[pick, -HISTORY:]
    slates, scores = decode(rec.model, rec.trie, rec.sids, history, beam=SLATE * 2, slate_size=SLATE)
    fwd = score_slates(model, slates, rec.sids, bids, RerankConfig(slate_size=SLATE), history, scores)[0]
    rev = score_slates(model, slates[:, ::-1].copy(), rec.sids, bids, RerankConfig(slate_size=SLATE), history,
                       scores[:, ::-1].copy())[0]
    top_fwd, bottom_rev = fwd[:, 0], rev[:, -1]  # the same ad at the top, then at the bottom
    return {"users": len(pick), "mean_pctr_by_slot": fwd.mean(0).tolist(),
            "same_ad_top_vs_bottom": float(top_fwd.mean() / bottom_rev.mean())}


def slate_run_figures(run: Path, cfg: dict, prepared: dict | None) -> dict:
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] \
        if (run / "metrics.jsonl").is_file() else []
    valid = [r["valid_ndcg@10"] for r in log if "valid_ndcg@10" in r]
    return {"path": str(run), "preset": cfg["preset"], "train": cfg["train"], "epochs": len(log),
            "best_valid_ndcg@10": max(valid, default=None), "stopped_by_time_budget":
            any(r.get("stopped_by_time_budget") for r in log), "prepared_now": prepared,
            "sid_stats": cfg.get("sid_stats")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "amazon" / "Beauty.txt")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "beauty_bid_aware")
    ap.add_argument("--budget-min", type=float, default=20.0, help="slate-model training budget when the run is made")
    ap.add_argument("--prepare-only", action="store_true", help="make the run folder and stop")
    ap.add_argument("--users", type=int, default=2000, help="test users sampled for the comparison")
    ap.add_argument("--requests", type=int, default=20000, help="validation cases with simulated impressions")
    ap.add_argument("--pool", type=int, default=30, help="beam = candidate pool re-ranked")
    ap.add_argument("--beam", type=int, default=20, help="beam of the plain / bid-aware rows")
    ap.add_argument("--weights", default="1,0.5,0", help="re-rank objectives: w in (1-w) x bid_ref + w x bid per click")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=0.0)
    ap.add_argument("--retrain-reward", action="store_true", help="train the reward model even if RUN/reward exists")
    ap.add_argument("--no-score", action="store_true", help="reward model without the generator-score feature")
    ap.add_argument("--reward-dir", default="reward", help="RUN/<this> holds the reward model")
    ap.add_argument("--suffix", default="", help="results/beauty_bid_aware{suffix}.json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    prepared = None
    if not (args.run / "model.safetensors").is_file():
        prepared = prepare_run(args.run, args.data, args.budget_min, args.seed)
        print(prepared)
    if args.prepare_only:
        return
    cfg, split, rec = load_recommender(args.run)
    dataset = load_dataset(cfg["dataset"])
    bids, pop = item_bids(dataset.catalogue, split.item_ids), item_popularity(split.train, split.n_items)
    if args.retrain_reward or not (args.run / args.reward_dir / "reward.safetensors").is_file():
        reward, reward_figures = train_reward(rec, split, bids, pop, args)
    else:
        reward, record = load_reward_model(args.run / args.reward_dir)
        reward_figures = {k: v for k, v in record.items() if k != "history_items"}
    fit_report = reward_figures["fit"]
    print(f"reward model: held-out log-loss {fit_report['valid_logloss']:.4f} (position-only "
          f"{fit_report['position_only_logloss']:.4f}), AUC {fit_report['valid_auc']:.3f} "
          f"(position-only {fit_report['position_only_auc']:.3f})")
    pick = np.sort(np.random.default_rng(args.seed).choice(len(split.test), min(args.users, len(split.test)),
                                                           replace=False))
    cpu, wall = time.process_time(), time.perf_counter()
    rows = compare_decoders(rec.model, rec.trie, rec.sids, bids, pop, split.test.history[pick, -HISTORY:],
                            split.test.target[pick], reward, ClickModel(), slate_size=SLATE, beam=args.beam,
                            pool_size=args.pool, bid=BidConfig(alpha=args.alpha, beta=args.beta),
                            revenue_weights=tuple(float(w) for w in args.weights.split(",")))
    compare_cpu, compare_wall = time.process_time() - cpu, time.perf_counter() - wall
    position = position_check(reward, rec, split, bids, pick[:500])
    print_table(rows, f"Beauty: {len(pick)} sampled test users, slates of {SLATE} (alpha={args.alpha}, "
                      f"beta={args.beta}); sim_* under the simulated click model (test item = relevant ad)")
    print(f"position check: same ad at the top vs the bottom of the same slate, mean pCTR ratio "
          f"{position['same_ad_top_vs_bottom']:.2f}")
    figures = {"dataset": "Beauty", "test_users_sampled": len(pick), "test_users_total": len(split.test),
               "slate_size": SLATE, "beam": args.beam, "revenue_weights": args.weights,
               "rerank_objective": "value per click = (1 - w) x median bid + w x bid; model_value uses w = 1", "pool": args.pool, "alpha": args.alpha, "beta": args.beta,
               "bids": {"synthetic": True, "median": float(np.median(bids[1:])), "mean": float(bids[1:].mean())},
               "click_model": asdict(ClickModel()), "rows": rows, "reward": reward_figures,
               "position_check": position, "compare_cpu_s": round(compare_cpu, 1),
               "compare_wall_s": round(compare_wall, 1), "slate_run": slate_run_figures(args.run, cfg, prepared),
               "note": "machine shared by several sessions (2 cores): wall times inflated, see the CPU seconds"}
    print(f"\nwrote {save(f'beauty_bid_aware{args.suffix}', figures)}")


if __name__ == "__main__":
    main()
