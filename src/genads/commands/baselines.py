"""``genads baselines``: train popularity / SASRec on a dataset and evaluate them (full ranking)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from genads.baselines import BASELINES, Popularity, SASRec
from genads.baselines.sasrec import PRESETS
from genads.data.dataset import atomic_write_text, load_dataset
from genads.data.split import SplitConfig, leave_one_out
from genads.eval.harness import drop_unseen_targets, evaluate_split_both, seen_items
from genads.eval.metrics import taac_columns


def cmd_baselines(args: argparse.Namespace) -> int:
    split = leave_one_out(load_dataset(args.dataset), SplitConfig(max_history=args.max_history))
    results = {}
    if args.drop_unseen_targets:
        split.test, dropped = drop_unseen_targets(split.test, seen_items(split))
        results["test_users_dropped_unseen_target"] = dropped
        print(f"dropped {dropped} test users whose test item never occurs in training; {len(split.test)} remain")
    for name in args.models.split(","):
        if name not in BASELINES:
            raise ValueError(f"--models: unknown baseline {name!r}; choose from {sorted(BASELINES)}")
        if name == "sasrec":
            cfg = replace(PRESETS[args.preset], max_len=args.max_history, loss=args.loss or PRESETS[args.preset].loss)
            if args.epochs:
                cfg = replace(cfg, epochs=args.epochs)
            model = SASRec(cfg)
        else:
            model = Popularity()
        log = model.fit(split, seed=args.seed, progress=True)
        results[name] = {**evaluate_split_both(model, split), "epochs": len(log), "log": log}
        for protocol, test in (("all", results[name]["test"]), ("excl", results[name]["history_ruled_out"]["test"])):
            print(f"{name:12s} [{protocol:4s}] test R@10 {test['recall@10']:.4f}  N@10 {test['ndcg@10']:.4f}  "
                  f"R@20 {test['recall@20']:.4f}  N@20 {test['ndcg@20']:.4f}"
                  + taac_columns(test, split.test.target_action))
    print("[all] = nothing ruled out; [excl] = the user's history ruled out (early stopping: "
          f"{'excl' if PRESETS[args.preset].exclude_history else 'all'})")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "metrics.json", json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out / 'metrics.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baselines", help="train and evaluate the popularity and SASRec baselines (full ranking)")
    p.add_argument("dataset", type=Path, help="dataset folder from `genads data import`")
    p.add_argument("--models", default="popularity,sasrec", help="comma-separated: popularity,sasrec")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                   help="SASRec preset; esasrec / esasrec-64: the eSASRec benchmark's SASRec+SS recipe (d 256 / 64)")
    p.add_argument("--loss", choices=["bce", "ce", "ss"], help="SASRec loss (default: the preset's)")
    p.add_argument("--epochs", type=int, help="override the preset's maximum epochs")
    p.add_argument("--max-history", type=int, default=50)
    p.add_argument("--drop-unseen-targets", action="store_true",
                   help="leave out test users whose test item never occurs in training (the eSASRec protocol)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="folder for metrics.json")
    p.set_defaults(func=cmd_baselines)
