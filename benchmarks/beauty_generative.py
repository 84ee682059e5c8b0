"""The generative slate model on Amazon Beauty (S3-Rec split), beside popularity, SASRec and TIGER.

Protocol: leave-one-out, full ranking over all 12,101 items (constrained beam search over the trie
of every item, beam 20), Recall/NDCG@5/10. SIDs: RQ-KMeans (or, with --tokenizer e2e, the end-to-end
UniSID-style tokenizer; 3 levels x 256, + a disambiguation level) over fused item vectors; Beauty has no text, so the vectors are the anonymised attribute
multi-hot (category/brand ids) and collaborative PPMI-SVD vectors computed from the *training*
sequences only (validation and test items never shape the SIDs). ~43% of Beauty users have equal
timestamps on their validation and test items (see ../shared/data/README.md): numbers carry that noise.
SASRec rows come from benchmarks/results/beauty_baselines.json when that benchmark has been run.

    python benchmarks/beauty_generative.py [--budget-min 100] [--preset beauty] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, print_table, save
from genads.baselines import Popularity
from genads.data.dataset import load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import S3RecSource
from genads.data.split import SplitConfig, leave_one_out
from genads.encode.attributes import multi_hot
from genads.encode.collaborative import collaborative_vectors, cooccurring_pairs
from genads.encode.fusion import fuse
from genads.encode.tokens import item_tokens
from genads.eval.harness import evaluate
from genads.slate.model import PRESETS
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS
from genads.tokenize import (
    ItemFeatures,
    RQKMeansConfig,
    RQKMeansTokenizer,
    UniSIDConfig,
    UniSIDTokenizer,
    disambiguate,
)

PUBLISHED = {  # TIGER (NeurIPS 2023), Table 2, Beauty
    "SASRec (published)": {"recall@5": 0.0387, "ndcg@5": 0.0249, "recall@10": 0.0605, "ndcg@10": 0.0318},
    "TIGER (published)": {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384},
}
KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


def beauty_sids(dataset, split, method: str, levels: int, codebook: int, seed: int) -> tuple[np.ndarray, dict]:
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
        codes = RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=codebook)).fit(vectors, seed=seed)
    sids = np.zeros((split.n_items + 1, levels + 1), dtype=np.int64)
    sids[1:] = disambiguate(codes)
    n_unique = len(np.unique(codes, axis=0))
    return sids, {"method": method, "collision_rate": 1 - n_unique / len(codes),
                  "disambiguation_vocab": int(sids[:, -1].max() + 1),
                  "vector_dims": {"attributes": attrs.shape[1], "collab": collab.shape[1]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon")
    ap.add_argument("--name", default="Beauty")
    ap.add_argument("--preset", default="beauty", choices=sorted(PRESETS))
    ap.add_argument("--budget-min", type=float, default=100.0, help="training time budget (minutes)")
    ap.add_argument("--epochs", type=int, help="override the preset's maximum epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--tokenizer", choices=["rq-kmeans", "e2e"], default="rq-kmeans", help="how SIDs are made")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        import_dataset(S3RecSource(args.data / f"{args.name}.txt"), Path(tmp) / "ds", progress=False)
        dataset = load_dataset(Path(tmp) / "ds")
        split = leave_one_out(dataset, SplitConfig(max_history=50))
    start = time.perf_counter()
    sids, sid_stats = beauty_sids(dataset, split, args.tokenizer, levels=3, codebook=256, seed=args.seed)
    sid_seconds = time.perf_counter() - start
    print(f"SIDs in {sid_seconds:.0f}s: {sid_stats}")

    train = replace(TRAIN_PRESETS[args.preset], time_budget_s=args.budget_min * 60)
    if args.epochs:
        train = replace(train, epochs=args.epochs)
    rec = SlateRecommender(sids, PRESETS[args.preset], train)
    start = time.perf_counter()
    log = rec.fit(split, seed=args.seed, progress=True)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = evaluate(rec, split.test, ks=(5, 10, 20))
    eval_seconds = time.perf_counter() - start
    pop = Popularity()
    pop.fit(split)
    rows = [{"model": f"generative slate ({args.tokenizer} SIDs, {args.preset})", **{k: ours[k] for k in KEYS},
             "train_min": round(train_seconds / 60, 1)},
            {"model": "popularity", **{k: v for k, v in evaluate(pop, split.test).items() if k in KEYS}}]
    baselines = RESULTS / "beauty_baselines.json"
    if baselines.is_file():
        for name, rec_b in json.loads(baselines.read_text())["figures"]["models"].items():
            if name.startswith("sasrec"):
                rows.append({"model": f"{name} (beauty_baselines.json)", **{k: rec_b["test"][k] for k in KEYS}})
    rows += [{"model": name, **fig} for name, fig in PUBLISHED.items()]
    print_table(rows, f"{args.name}: full ranking, leave-one-out (test)")
    figures = {"dataset": args.name, "users": len(split.users), "items": split.n_items, "sids": sid_stats,
               "sid_seconds": round(sid_seconds, 1), "train_seconds": round(train_seconds, 1),
               "eval_seconds": round(eval_seconds, 1), "threads": args.threads, "epochs": len(log),
               "stopped_by_time_budget": any(r.get("stopped_by_time_budget") for r in log),
               "test": ours, "table": rows, "config": asdict(rec.config), "train": asdict(train), "log": log,
               "beats_tiger": ours["recall@10"] >= 0.065 and ours["ndcg@10"] >= 0.039}
    suffix = "" if args.tokenizer == "rq-kmeans" else f"_{args.tokenizer}"
    print(f"\nwrote {save(f'{args.name.lower()}_generative{suffix}', figures)}")


if __name__ == "__main__":
    main()
