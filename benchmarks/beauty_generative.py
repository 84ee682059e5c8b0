"""The generative slate model on Amazon Beauty (S3-Rec split), beside popularity, SASRec and TIGER.

Protocol: leave-one-out, full ranking over all 12,101 items (constrained beam search over the trie
of every item, beam 20), Recall/NDCG@5/10. SIDs: RQ-KMeans (or, with --tokenizer e2e, the end-to-end
UniSID-style tokenizer; 3 levels x 256, + a disambiguation level) over fused item vectors; Beauty has no text, so the vectors are the anonymised attribute
multi-hot (category/brand ids) and collaborative PPMI-SVD vectors computed from the *training*
sequences only (validation and test items never shape the SIDs). ~43% of Beauty users have equal
timestamps on their validation and test items (see ../shared/data/README.md): numbers carry that noise.
SASRec rows (Beauty) come from the committed benchmarks/results/beauty_baselines*.json (not retrained).
``--name Sports_and_Outdoors`` runs the same protocol on Sports, beside TIGER's Sports figures.
``--family parallel`` runs the parallel-code generator (exact scoring) and SASRec with sampled softmax in the
same run (two worker processes, one thread each), one preset for every data set; see benchmarks/_parallel_bench.py.
``--sasrec-preset esasrec`` (or ``esasrec-64``) trains the eSASRec recipe there instead of the plain "ss" preset, on
the eSASRec protocol; ``--parallel-preset esasrec`` trains the generator with that recipe's training too.
Every row is given
under both protocols: nothing ruled out, and the user's history ruled out (for the SID model, its beam's list
with the history removed, so at most beam-width ads remain).

    python benchmarks/beauty_generative.py --family parallel --parallel-preset esasrec --sasrec-preset esasrec-64
        --cpu-budget-min 40 [--workers 1]
    python benchmarks/beauty_generative.py --family parallel [--name Sports_and_Outdoors] [--budget-min 100]
        [--set parallel.d_model=96 --set sasrec.dropout=0.3 ...] [--models parallel,sasrec] [--tag NAME]

    python benchmarks/beauty_generative.py [--budget-min 100] [--preset beauty] [--threads 1]
        [--set d_model=128 --set lr=1e-3 ...] [--run-dir runs/beauty-gen] [--pilot 3000 --tag NAME]

``--set`` overrides fields of the preset's SlateConfig or TrainConfig. ``--pilot N`` is for short
tuning runs: no test evaluation; Recall/NDCG on N evenly spaced validation users at each ``--beams``
width, written to results/beauty_generative_pilot_TAG.json. ``--run-dir`` keeps metrics.jsonl (a row per
epoch, so a run cut off still has its validation figures) and a checkpoint that ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, print_table, read_metrics, save
from genads.baselines import Popularity
from genads.data.dataset import atomic_write_text, load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import S3RecSource
from genads.data.split import EvalSet, SplitConfig, leave_one_out
from genads.encode.attributes import multi_hot
from genads.encode.collaborative import collaborative_vectors, cooccurring_pairs
from genads.encode.fusion import fuse
from genads.encode.tokens import item_tokens
from genads.eval.harness import evaluate
from genads.eval.metrics import ranking_metrics
from genads.slate.checkpoint import load_weights
from genads.slate.model import PRESETS, SlateConfig, SlateModel
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS, TrainConfig
from genads.tokenize import (
    ItemFeatures,
    RQKMeansConfig,
    RQKMeansTokenizer,
    UniSIDConfig,
    UniSIDTokenizer,
    disambiguate,
)

PUBLISHED_BY_DATASET = {  # TIGER (NeurIPS 2023), Table 2
    "Beauty": {
        "SASRec (published)": {"recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605, "ndcg@10": 0.0318},
        "TIGER (published)": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
    },
    "Sports_and_Outdoors": {
        "TIGER (published)": {"recall@5": 0.0264, "ndcg@5": 0.0181, "recall@10": 0.0400, "ndcg@10": 0.0225},
    },
}
PUBLISHED_STRONG = {  # shared/research/generative-retrieval-2026.md: eSASRec benchmark README [V], BARGE Table II [S]
    "Beauty": {"SASRec+SS (eSASRec benchmark, published)": {"recall@10": 0.0921, "ndcg@10": 0.0531},
               "BARGE (preprint, published)": {"recall@10": 0.0927, "ndcg@10": 0.0547}},
    "Sports_and_Outdoors": {"SASRec+SS (eSASRec benchmark, published)": {"recall@10": 0.0569, "ndcg@10": 0.0314},
                            "BARGE (preprint, published)": {"recall@10": 0.0544, "ndcg@10": 0.0308}},
}
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def beauty_sids(dataset, split, method: str, levels: int, codebook: int, seed: int,
                residual: str = "spherical") -> tuple[np.ndarray, dict]:
    """(n_items + 1, levels + 1) SIDs over attribute + training-only collaborative vectors.

    ``method``: "rq-kmeans" (residual k-means) or "e2e" (the UniSID-style tokenizer, with attribute
    tokens and co-occurring pairs from the training sequences as side inputs).
    """
    train_rows = [s - 1 for s in split.train]  # item index i = catalogue row i - 1 (catalogue sorted by ad_id)
    attrs = multi_hot(dataset.catalogue["attributes"].tolist())[0]
    collab = collaborative_vectors(train_rows, split.n_items, seed=seed)
    vectors = fuse({"attributes": attrs, "collab": collab})
    if method == "e2e":
        tokens, vocab = item_tokens(dataset.catalogue)
        features = ItemFeatures(tokens=tokens, vocab_size=len(vocab), pairs=cooccurring_pairs(train_rows))
        codes = UniSIDTokenizer(UniSIDConfig(levels=levels, codebook_size=codebook)).fit(vectors, seed=seed,
                                                                                         features=features)
    else:
        codes = RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=codebook, residual=residual)).fit(
            vectors, seed=seed)
    sids = np.zeros((split.n_items + 1, levels + 1), dtype=np.int64)
    sids[1:] = disambiguate(codes)
    n_unique = len(np.unique(codes, axis=0))
    return sids, {"method": method, **({"residual": residual} if method == "rq-kmeans" else {}), "collision_rate": 1 - n_unique / len(codes),
                  "disambiguation_vocab": int(sids[:, -1].max() + 1),
                  "vector_dims": {"attributes": attrs.shape[1], "collab": collab.shape[1]}}


def overrides(pairs: list[str], model: SlateConfig, train: TrainConfig) -> tuple[SlateConfig, TrainConfig]:
    """Apply ``field=value`` pairs to whichever config has the field (values parsed as JSON, else str)."""
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key in {f.name for f in dataclasses.fields(SlateConfig)}:
            model = replace(model, **{key: value})
        elif key in {f.name for f in dataclasses.fields(TrainConfig)}:
            train = replace(train, **{key: value})
        else:
            raise SystemExit(f"--set {pair}: no field {key!r} in SlateConfig or TrainConfig")
    return model, train


def cached_sids(cache: Path, dataset, split, method: str, seed: int, residual: str) -> tuple[np.ndarray, dict, float]:
    """SIDs from ``cache`` (.npy + .json) when present, else computed and stored there."""
    stats_path = cache.with_suffix(".json")
    if cache.is_file() and stats_path.is_file():
        return np.load(cache, allow_pickle=False), json.loads(stats_path.read_text()), 0.0
    start = time.perf_counter()
    sids, stats = beauty_sids(dataset, split, method, levels=3, codebook=256, seed=seed, residual=residual)
    seconds = time.perf_counter() - start
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npy")
    np.save(tmp, sids, allow_pickle=False)
    os.replace(tmp, cache)
    atomic_write_text(stats_path, json.dumps(stats))
    return sids, stats, seconds


def subset(eval_set: EvalSet, n: int) -> EvalSet:
    """``n`` evenly spaced cases (all when n >= len)."""
    if n <= 0 or n >= len(eval_set):
        return eval_set
    idx = np.linspace(0, len(eval_set) - 1, n).round().astype(int)
    return EvalSet(eval_set.users[idx], eval_set.history[idx], eval_set.target[idx])


def pilot_metrics(rec: SlateRecommender, eval_set: EvalSet, beams: list[int]) -> dict[str, dict]:
    """Validation Recall/NDCG@5/10 at each beam width."""
    out = {}
    for beam in beams:
        rec.train = replace(rec.train, beam=beam)
        ranked = np.concatenate([rec.recommend(eval_set.history[i:i + 512], 10, users=eval_set.users[i:i + 512])
                                 for i in range(0, len(eval_set), 512)])
        out[f"beam{beam}"] = ranking_metrics(ranked, eval_set.target, ks=(5, 10))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon")
    ap.add_argument("--name", default="Beauty")
    ap.add_argument("--preset", default="beauty", choices=sorted(PRESETS))
    ap.add_argument("--budget-min", type=float, default=100.0, help="training time budget (minutes)")
    ap.add_argument("--epochs", type=int, help="override the preset's maximum epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--tokenizer", choices=["rq-kmeans", "e2e"], default="rq-kmeans", help="how SIDs are made")
    ap.add_argument("--residual", choices=["spherical", "l2"], default="spherical",
                    help="RQ-KMeans residual mode (spherical: the tokenizer's default; l2: classic)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a SlateConfig/TrainConfig field of the preset (repeatable)")
    ap.add_argument("--run-dir", type=Path, help="write metrics.jsonl and a resumable checkpoint here")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --run-dir")
    ap.add_argument("--prior-seconds", type=float, nargs=2, default=(0.0, 0.0), metavar=("WALL", "CPU"),
                    help="with --resume: training time (wall, CPU) of the earlier calls, added to this one's")
    ap.add_argument("--init-weights", help="parallel: start from these weights (e.g. a run's checkpoint/best.safetensors) "
                    "with a fresh optimiser; with --set parallel.min_lr_ratio=0 parallel.epochs=N it anneals them")
    ap.add_argument("--eval-only", action="store_true",
                    help="evaluate the best weights so far of --run-dir (e.g. a run that was cut off)")
    ap.add_argument("--pilot", type=int, default=0, metavar="N",
                    help="tuning run: validation metrics on N users instead of the test table")
    ap.add_argument("--beams", default="20", help="beam widths for --pilot (comma-separated)")
    ap.add_argument("--tag", default="", help="suffix of the result file")
    ap.add_argument("--sids", type=Path, help="use the SIDs of a `genads tokenize` folder (sids.parquet) "
                    "instead of computing them; --tokenizer then only names the row")
    ap.add_argument("--sid-cache", type=Path, default=Path(__file__).resolve().parents[1] / "runs" / "beauty-gen-cache",
                    help="folder caching the SIDs (and parallel codes) between runs, keyed by a hash of their inputs")
    ap.add_argument("--family", choices=["sid", "parallel"], default="sid",
                    help="sid: the SID slate model (this script's original run); parallel: the parallel-code "
                    "generator beside SASRec with sampled softmax, trained in the same run")
    ap.add_argument("--models", default="parallel,sasrec", help="--family parallel: which models to train")
    ap.add_argument("--sasrec-preset", default="ss", choices=["ss", "esasrec", "esasrec-64"],
                    help="--family parallel: the SASRec preset trained beside the generator (esasrec: the eSASRec "
                    "benchmark's recipe, early-stopped on validation R@10 with the history ruled out)")
    ap.add_argument("--parallel-preset", default="beauty",
                    choices=["beauty", "esasrec", "hybrid", "hybrid-id-input", "hybrid-od", "hybrid-aug", "hybrid-full"],
                    help="--family parallel: the parallel generator's preset (esasrec: the eSASRec recipe's training, "
                    "early-stopped on validation R@10 with the history ruled out; hybrid: codes + an ID term in the "
                    "item score, stopped on the same protocol; hybrid-id-input: the same, items read by their ID alone; "
                    "hybrid-od: + dropout on the scored ID rows; hybrid-aug: + codes out of the score, crop/reorder)")
    ap.add_argument("--cpu-budget-min", type=float, default=0.0,
                    help="--family parallel: each model's CPU budget in minutes (0 = none; a paused worker does not "
                    "spend it)")
    ap.add_argument("--workers", type=int, default=2,
                    help="--family parallel: models trained at once (1: one after the other)")
    args = ap.parse_args()
    if args.family == "parallel" and args.eval_only:
        # --eval-only is the SID family's; the parallel family ignored it, trained afresh in --run-dir and overwrote
        # the checkpoint of the run it was asked to evaluate (a cut-off Sports run's best weights were lost so)
        raise SystemExit("--eval-only works for the SID family only; for --family parallel resume the run with "
                         "--resume --run-dir DIR (its budget ends it and the best weights are evaluated)")
    if args.init_weights and (args.family != "parallel" or args.resume or not Path(args.init_weights).is_file()):
        raise SystemExit(f"--init-weights {args.init_weights}: needs --family parallel, no --resume, and an existing "
                         "weights file (a run's checkpoint/best.safetensors)")
    if args.family == "parallel":
        from _parallel_bench import run

        run(args, PUBLISHED_BY_DATASET.get(args.name, {}) | PUBLISHED_STRONG.get(args.name, {}), print_table, save,
            RESULTS)
        return
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        import_dataset(S3RecSource(args.data / f"{args.name}.txt"), Path(tmp) / "ds", progress=False)
        dataset = load_dataset(Path(tmp) / "ds")
        split = leave_one_out(dataset, SplitConfig(max_history=50))
    if args.sids:
        from genads.commands.slate import aligned_sids

        sids, sid_seconds = aligned_sids(args.sids, split), 0.0
        codes = sids[1:, :-1]
        sid_stats = {"method": args.tokenizer, "from": str(args.sids),
                     "collision_rate": 1 - len(np.unique(codes, axis=0)) / len(codes),
                     "disambiguation_vocab": int(sids[:, -1].max() + 1)}
        meta = args.sids / "sids.json"
        if meta.is_file():
            sid_stats["tokenize"] = json.loads(meta.read_text())
    else:
        mode = f"_{args.residual}" if args.tokenizer == "rq-kmeans" else ""
        from _parallel_bench import file_sha  # the cache key: a hash of what the SIDs are made from

        inputs = {"data_sha256": file_sha(args.data / f"{args.name}.txt"), "tokenizer": args.tokenizer,
                  "residual": args.residual, "seed": args.seed, "levels": 3, "codebook": 256,
                  "vectors": "attributes+collab(train)"}
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
        cache = args.sid_cache / f"{args.name.lower()}_{args.tokenizer}{mode}_seed{args.seed}_{digest}.npy"
        sids, sid_stats, sid_seconds = cached_sids(cache, dataset, split, args.tokenizer, args.seed, args.residual)
    print(f"SIDs ({sid_seconds:.0f}s): {sid_stats}")

    train = replace(TRAIN_PRESETS[args.preset], time_budget_s=args.budget_min * 60)
    if args.epochs:
        train = replace(train, epochs=args.epochs)
    model_cfg, train = overrides(args.set, PRESETS[args.preset], train)
    rec = SlateRecommender(sids, model_cfg, train, run_dir=args.run_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.eval_only:  # a run cut off: its best weights so far, its metrics.jsonl as the log
        if args.run_dir is None:
            raise SystemExit("--eval-only needs --run-dir")
        rec.model = SlateModel(rec.config)
        load_weights(rec.model, args.run_dir / "checkpoint" / "best.safetensors")
        rec.model.eval()
        log = read_metrics(args.run_dir)
        train_seconds = sum(r["seconds"] for r in log)
        train_cpu = float("nan")
    else:
        log = rec.fit(split, seed=args.seed, progress=True, resume=args.resume)
        train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if args.resume:  # the whole run: every epoch's row, and the earlier calls' time
            log = read_metrics(args.run_dir)
            train_seconds += args.prior_seconds[0]
            train_cpu += args.prior_seconds[1]
    if args.pilot:
        beams = [int(b) for b in args.beams.split(",")]
        valid = pilot_metrics(rec, subset(split.valid, args.pilot), beams)
        for name, m in valid.items():
            print(f"valid ({args.pilot} users) {name}: " + "  ".join(f"{k} {m[k]:.4f}" for k in KEYS))
        figures = {"dataset": args.name, "valid_users": args.pilot, "valid": valid, "sets": args.set,
                   "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
                   "threads": args.threads, "epochs": len(log), "sids": sid_stats,
                   "config": asdict(rec.config), "train": asdict(rec.train), "log": log}
        print(f"wrote {save(f'{args.name.lower()}_generative_pilot_{args.tag or args.tokenizer}', figures)}")
        return
    start = time.perf_counter()
    if rec.config.user_buckets:  # the harness's rank_all + ranking_metrics, with the user token's ids
        ranked = np.concatenate([rec.recommend(split.test.history[i:i + 1024], 20, users=split.test.users[i:i + 1024])
                                 for i in range(0, len(split.test), 1024)])
        ours = ranking_metrics(ranked, split.test.target, (5, 10, 20))
    else:
        ours = evaluate(rec, split.test, ks=(5, 10, 20))
    # the second protocol: the beam's list with the history removed (a beam of width B yields at most B ads)
    ours_excl = evaluate(rec, split.test, ks=(5, 10, 20), exclude_history=True)
    eval_seconds = time.perf_counter() - start
    pop = Popularity()
    pop.fit(split)
    name = f"generative slate ({args.tokenizer} SIDs, {args.preset})"
    rows = [{"model": name, "protocol": "nothing ruled out", **{k: ours[k] for k in KEYS},
             "train_min": round(train_seconds / 60, 1)},
            {"model": name, "protocol": "history ruled out", **{k: ours_excl[k] for k in KEYS}}]
    for protocol, excl in (("nothing ruled out", False), ("history ruled out", True)):
        pop_test = evaluate(pop, split.test, exclude_history=excl)
        rows.append({"model": "popularity", "protocol": protocol, **{k: pop_test[k] for k in KEYS}})
    files = ("beauty_baselines.json", "beauty_baselines_ce.json", "beauty_baselines_esasrec.json")
    for file in files if args.name == "Beauty" else ():
        path = RESULTS / file
        if not path.is_file():
            continue
        baseline_figures = json.loads(path.read_text())["figures"]
        stopped_on = baseline_figures.get("early_stopping_protocol", "excl")  # files before the flag stopped on excl
        for name, rec_b in baseline_figures["models"].items():
            if not name.startswith("sasrec"):
                continue
            for key, protocol in (("all", "nothing ruled out"), ("excl", "history ruled out")):
                test_b = rec_b[key]["test"] if key in rec_b else (rec_b["test"] if key == "all" else None)
                if test_b is not None:
                    rows.append({"model": f"{name} ({file}, early-stopped on {stopped_on})", "protocol": protocol,
                                 **{k: test_b[k] for k in KEYS},
                                 "train_min": round(rec_b.get("train_seconds", 0) / 60, 1)})
    published = PUBLISHED_BY_DATASET.get(args.name, {})
    rows += [{"model": name, "protocol": "as published", **fig} for name, fig in published.items()]
    print_table(rows, f"{args.name}: full ranking, leave-one-out (test)")
    figures = {"dataset": args.name, "users": len(split.users), "items": split.n_items, "sids": sid_stats,
               "sid_seconds": round(sid_seconds, 1), "train_seconds": round(train_seconds, 1),
               "train_cpu_seconds": round(train_cpu, 1),
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "eval_seconds": round(eval_seconds, 1), "threads": args.threads, "epochs": len(log),
               "stopped_by_time_budget": any(r.get("stopped_by_time_budget") for r in log),
               "test": ours, "test_history_ruled_out": ours_excl, "table": rows, "config": asdict(rec.config), "train": asdict(train), "log": log,
               "beats_tiger": ("TIGER (published)" in published
                               and ours["recall@10"] >= published["TIGER (published)"]["recall@10"]
                               and ours["ndcg@10"] >= published["TIGER (published)"]["ndcg@10"])}
    suffix = ("" if args.tokenizer == "rq-kmeans" else f"_{args.tokenizer}") + (f"_{args.tag}" if args.tag else "")
    print(f"\nwrote {save(f'{args.name.lower()}_generative{suffix}', figures)}")


if __name__ == "__main__":
    main()
