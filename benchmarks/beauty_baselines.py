"""SASRec and popularity on Amazon Beauty (S3-Rec split), next to the published figures.

Protocol: leave-one-out, histories up to 50, full ranking over all 12,101 items, Recall/NDCG@5/10.
The published SASRec/S3-Rec rows come from S3-Rec's code, whose full ranking rules out the items
already in the user's history; TIGER's generative decoding does not. Each model is therefore
reported under both protocols ("excl" = history items ruled out, "all" = nothing ruled out). Early
stopping uses the protocol named by ``--stop-on`` (default "excl", the protocol of the published rows
this script compares with; "all" when the rows are to be set beside generative models, which rule
nothing out). The JSON records which one each model stopped on.
SASRec is trained twice: with the paper's loss (BCE, one sampled negative per position, which the
published row used) and with full softmax cross-entropy. Note from the data README: ~43% of Beauty
users have equal timestamps on their validation and test items; the S3-Rec files break those ties
by product id, and every number on this split carries that noise.

    python benchmarks/beauty_baselines.py [--data ../shared/data/amazon] [--epochs 200] [--losses bce,ce]

``--preset esasrec`` (or ``esasrec-64``) instead runs the eSASRec benchmark's SASRec+SS recipe on its own protocol
(blondered/transformer_benchmark, s3_vanilla.yaml; see docs/baselines.md): leave-one-out, full ranking with the
user's *whole* history ruled out (not only the last 50), users whose test item never occurs in training (train +
validation) dropped (the count is recorded), early stopping on validation R@10 with the history ruled out, the
best-validation weights tested with the validation item in the history (no train + validation refit). Each
epoch's row is printed as it is made, so a run cut off still has its validation curve in its log.

    python benchmarks/beauty_baselines.py --preset esasrec [--budget-min 120 | --cpu-budget-min 120] [--epochs 200] [--tag esasrec]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from _common import print_table, save
from genads.baselines import Popularity, SASRec
from genads.baselines.sasrec import PRESETS
from genads.data.dataset import load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import S3RecSource
from genads.data.split import SplitConfig, leave_one_out, user_sequences
from genads.eval.harness import PROTOCOLS, drop_unseen_targets, evaluate_split, seen_items

PUBLISHED = {  # TIGER (NeurIPS 2023), Table 2, Beauty
    "SASRec (published)": {"recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605, "ndcg@10": 0.0318},
    "S3-Rec (published)": {"recall@10": 0.0647, "ndcg@10": 0.0327},
    "TIGER (published)": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
}
ESASREC_PUBLISHED = {  # eSASRec benchmark README (history ruled out); shared/research/generative-retrieval-2026.md §6
    "Beauty": {"SASRec+SS (eSASRec benchmark, published)": {"recall@10": 0.0921, "ndcg@10": 0.0531}},
    "Sports_and_Outdoors": {"SASRec+SS (eSASRec benchmark, published)": {"recall@10": 0.0569, "ndcg@10": 0.0314}},
}
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def print_epoch(row: dict) -> None:
    """One line per epoch, flushed (the run's log keeps the validation curve even if the run is cut off)."""
    print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


def overrides(cfg, pairs: list[str]) -> dict:
    """``["batching=random", "d_model=64"]`` -> {field: value}, each value cast to the type of the preset's."""
    fields = asdict(cfg)
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        kind = type(fields[key])
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon")
    ap.add_argument("--name", default="Beauty")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--losses", default="bce,ce")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", type=int, default=2, help="attention heads (S3-Rec's SASRec: 2)")
    ap.add_argument("--batch-size", type=int, default=256, help="S3-Rec's SASRec: 256")
    ap.add_argument("--tag", default="", help="suffix of the result file name (runs of different losses side by side)")
    ap.add_argument("--stop-on", choices=["excl", "all"], default="excl",
                    help="protocol of the validation NDCG@10 that early stopping follows")
    ap.add_argument("--preset", choices=["esasrec", "esasrec-64"],
                    help="run this SASRec preset on the eSASRec protocol instead of the --losses rows")
    ap.add_argument("--budget-min", type=float, default=0.0,
                    help="--preset: stop at the first validation after this many minutes (0 = none; best weights kept)")
    ap.add_argument("--cpu-budget-min", type=float, default=0.0,
                    help="--preset: stop at the first validation after this many CPU minutes of training (0 = none; "
                         "a paused run does not spend them)")
    ap.add_argument("--stop-file", type=Path,
                    help="--preset: end training at the first validation after this file appears (best weights kept; "
                         "the run is then tested and saved as usual, marked stopped_on_request)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="--preset: override one SASRecConfig field (repeatable; diagnostic runs, recorded in the JSON)")
    args = ap.parse_args()

    # --preset: histories uncapped, so the whole history is ruled out (the network still reads its last 50)
    with tempfile.TemporaryDirectory() as tmp:
        import_dataset(S3RecSource(args.data / f"{args.name}.txt"), Path(tmp) / "ds", progress=False)
        dataset = load_dataset(Path(tmp) / "ds")
        longest = max(len(s) for s in user_sequences(dataset, SplitConfig())[2])
        split = leave_one_out(dataset, SplitConfig(max_history=longest if args.preset else 50))
    rows, figures = [], {"dataset": args.name, "users": len(split.users), "items": split.n_items, "models": {}}
    if args.preset:
        split.test, dropped = drop_unseen_targets(split.test, seen_items(split))
        figures["protocol"] = ("eSASRec: leave-one-out, full ranking, whole history ruled out ('excl'); test users "
                               "whose test item never occurs in training (train + validation) dropped")
        figures |= {"test_users": len(split.test), "test_users_dropped_unseen_target": dropped,
                    "items_never_in_training": int(split.n_items - len(seen_items(split)))}
        print(f"dropped {dropped} test users whose test item never occurs in training; {len(split.test)} remain")
    figures["early_stopping_protocol"] = "excl" if args.preset else args.stop_on
    models = [("popularity", Popularity())]
    if args.preset:
        cfg = replace(PRESETS[args.preset], epochs=args.epochs, time_budget_s=args.budget_min * 60,
                      cpu_budget_s=args.cpu_budget_min * 60,
                      **overrides(PRESETS[args.preset], args.set))
        figures["overrides"] = args.set
        models.append((f"sasrec-{args.preset}", SASRec(cfg)))
    for loss in args.losses.split(",") if not args.preset else ():
        cfg = replace(PRESETS["paper"], loss=loss, epochs=args.epochs, n_heads=args.heads,
                      batch_size=args.batch_size, exclude_history=args.stop_on == "excl")
        models.append((f"sasrec-{loss}", SASRec(cfg)))
    for name, model in models:
        start, cpu = time.perf_counter(), time.process_time()
        fit_args = {"on_epoch": print_epoch} if isinstance(model, SASRec) else {}
        if isinstance(model, SASRec) and args.stop_file:
            fit_args["should_stop"] = args.stop_file.exists
        log = model.fit(split, seed=args.seed, progress=not args.preset, **fit_args)
        seconds = time.perf_counter() - start
        record = {"epochs": len(log), "train_seconds": round(seconds, 1),
                  "train_cpu_seconds": round(time.process_time() - cpu, 1), "log": log,
                  "config": asdict(model.config) if hasattr(model, "config") else {}}
        if isinstance(model, SASRec):
            best = [r for r in log if r.get("best")]
            record["best_epoch"] = best[-1]["epoch"] if best else None
            record["stopped_by_time_budget"] = any(r.get("stopped_by_time_budget") for r in log)
            record["stopped_on_request"] = any(r.get("stopped_on_request") for r in log)
            checked = [r for r in log if "valid_ndcg@10" in r]
            last_best = max((i for i, r in enumerate(checked) if r.get("best")), default=-1)
            record["patience_completed"] = len(checked) - 1 - last_best >= model.config.patience
        for protocol, exclude in sorted(PROTOCOLS.items(), key=lambda p: not p[1]):  # "excl" first
            result = evaluate_split(model, split, exclude_history=exclude)
            record[protocol] = {"test": result["test"], "valid": result["valid"]}
            rows.append({"model": f"{name} [{protocol}; stopped on {figures['early_stopping_protocol']}]",
                         **{k: result["test"][k] for k in KEYS},
                         "epochs": len(log), "train_min": round(seconds / 60, 1)})
        figures["models"][name] = record
        print_table(rows[-2:], f"{name} done")
    published = ESASREC_PUBLISHED.get(args.name, {}) if args.preset else PUBLISHED
    for name, figs in published.items():
        rows.append({"model": name, **figs})
    for name in figures["models"]:
        rec = figures["models"][name]
        if name.startswith("sasrec") and not args.preset:
            ref = PUBLISHED["SASRec (published)"]["recall@10"]
            rec["recall@10_vs_published"] = {p: rec[p]["test"]["recall@10"] / ref - 1 for p in ("excl", "all")}
        elif name.startswith("sasrec") and published:
            ref = next(iter(published.values()))
            excl = rec["excl"]["test"]
            rec["vs_published_excl"] = {m: excl[m] / ref[m] - 1 for m in ("recall@10", "ndcg@10")}
            rec["reproduces_within_5pct"] = all(excl[m] >= 0.95 * ref[m] for m in ("recall@10", "ndcg@10"))
    print_table(rows, f"{args.name}: full ranking, leave-one-out (test)")
    name = f"{args.name.lower()}_baselines" + (f"_{args.tag}" if args.tag else "")
    print(f"\nwrote {save(name, figures)}")


if __name__ == "__main__":
    main()
