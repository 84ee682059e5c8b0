"""``genads tokenize``: fit a Semantic-ID tokenizer on a dataset, write it and sids.parquet."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from genads.data.dataset import content_sha256, load_dataset
from genads.encode.cache import DEFAULT_CACHE  # shared with genads train --family parallel
from genads.io import atomic_write, atomic_write_text

METHODS = ("rq-kmeans", "rq-vae", "e2e")
SOURCES = ("text", "attributes", "collab", "embedding")
"""genads.tokenize.features.SOURCES (not imported here: torch and faiss load only when the command runs)."""
FEATURES_FROM = "training events (leave-one-out, SplitConfig defaults: validation and test events held out)"
"""What the collaborative vectors and co-occurring pairs are built from; part of the inputs key."""
KEYED = ("method", "levels", "codebook", "features", "epochs", "balanced", "residual", "w_split", "w_sharp", "seed")
"""The options that change the SIDs (not --out, the cache or the progress bar)."""


def inputs_key(dataset: Path, args: argparse.Namespace) -> str:
    """sha256 of everything a tokenize run's SIDs depend on: the dataset's bytes, the keyed options and
    what the event features are built from. A folder whose metrics.json has another key is stale."""
    settings = {name: getattr(args, name) for name in KEYED}
    settings |= {name: value for name, value in (("conditioning", getattr(args, "conditioning", "parallel")),
                                                 ("collision_aware", getattr(args, "collision_aware", False)))
                 if value not in ("parallel", False)}  # keyed only when set: older folders keep their key
    text = json.dumps({"data": content_sha256(dataset), "settings": settings, "features_from": FEATURES_FROM},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def make_tokenizer(args: argparse.Namespace):
    from genads.tokenize import (
        RQKMeansConfig,
        RQKMeansTokenizer,
        RQVAEConfig,
        RQVAETokenizer,
        UniSIDConfig,
        UniSIDTokenizer,
    )

    common = {"levels": args.levels, "codebook_size": args.codebook}
    epochs = {"epochs": args.epochs} if args.epochs else {}
    if args.method == "rq-kmeans":
        return RQKMeansTokenizer(RQKMeansConfig(**common, balanced=args.balanced, residual=args.residual))
    if args.method == "rq-vae":
        return RQVAETokenizer(RQVAEConfig(**common, **epochs))
    weights = {k: v for k, v in (("w_split", args.w_split), ("w_sharp", args.w_sharp)) if v is not None}
    return UniSIDTokenizer(UniSIDConfig(**common, **epochs, **weights, conditioning=args.conditioning,
                                        collision_aware=args.collision_aware))


def write_sids(path: Path, ad_ids: np.ndarray, codes: np.ndarray, sids: np.ndarray) -> None:
    """sids.parquet: ad_id, sid (unique, L+1 tokens), codes (the tokenizer's L tokens); atomic."""
    table = pa.Table.from_pandas(pd.DataFrame({"ad_id": ad_ids.astype(np.int64), "sid": list(sids.astype(np.int64)),
                                               "codes": list(codes.astype(np.int64))}), preserve_index=False)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def cmd_tokenize(args: argparse.Namespace) -> int:
    from genads.tokenize import disambiguate, save_tokenizer
    from genads.tokenize.features import item_features, item_vectors
    from genads.tokenize.metrics import level_stats, sid_summary

    ds = load_dataset(args.dataset)
    sources = [s.strip() for s in args.features.split(",") if s.strip()] if args.features != "auto" else None
    start = time.perf_counter()
    vectors, dims = item_vectors(ds, sources, cache_dir=None if args.no_cache else args.cache_dir,
                                 seed=args.seed, progress=not args.quiet)
    t_vectors = time.perf_counter() - start
    tok = make_tokenizer(args)
    start, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    if args.method == "e2e":
        codes = tok.fit(vectors, seed=args.seed, features=item_features(ds))  # training events only
    else:
        codes = tok.fit(vectors, seed=args.seed)
    t_fit, cpu_fit = time.perf_counter() - start, time.process_time() - cpu0
    load = (load0 + os.getloadavg()[0]) / 2
    sids = disambiguate(codes)
    args.out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, args.out)
    write_sids(args.out / "sids.parquet", ds.catalogue["ad_id"].to_numpy(), codes, sids)
    summary = sid_summary(codes, args.codebook, vectors, tok.reconstruct(codes))
    report = {"dataset": str(args.dataset), "method": args.method, "sources": dims, "seed": args.seed,
              "features_from": FEATURES_FROM, "inputs_sha256": inputs_key(args.dataset, args),
              "command": " ".join(["genads", *sys.argv[1:]]) if sys.argv[0].endswith("genads") else None,
              "seconds": {"vectors": round(t_vectors, 2), "fit": round(t_fit, 2), "fit_cpu": round(cpu_fit, 2)},
              "loadavg": round(load, 1), "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "summary": summary, "levels": level_stats(codes, args.codebook),
              "disambiguation_vocab": int(sids[:, -1].max() + 1)}
    atomic_write_text(args.out / "metrics.json", json.dumps(report, indent=2, default=float) + "\n")
    print(f"{args.out}: {len(codes)} ads, {args.method} L={args.levels} K={args.codebook} on {dims}; "
          f"collision rate {summary['collision_rate']:.4f} (resolved by an extra level of {report['disambiguation_vocab']}), "
          f"utilisation {summary['utilisation']:.3f}, fit {t_fit:.1f}s wall / {cpu_fit:.1f}s CPU")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="fit a Semantic-ID tokenizer; write it and sids.parquet",
                       description="Item vectors from the dataset (MiniLM text, multi-hot attributes, "
                       "collaborative PPMI-SVD, precomputed embeddings; fused; collaborative vectors and co-occurring "
                       "pairs from the training events only, validation and test held out), then RQ-KMeans, RQ-VAE or the "
                       "end-to-end (UniSID-style) tokenizer. Writes tokenizer.json + tokenizer.safetensors, "
                       "sids.parquet (ad_id, unique sid incl. the disambiguation level, raw codes) and metrics.json.")
    p.add_argument("dataset", type=Path, help="dataset folder (genads data import)")
    p.add_argument("--out", required=True, type=Path, help="folder for the tokenizer and sids.parquet")
    p.add_argument("--method", choices=METHODS, default="rq-kmeans", help="tokenizer")
    p.add_argument("--levels", type=int, default=3, help="code levels L (before disambiguation)")
    p.add_argument("--codebook", type=int, default=256, help="codebook size K per level")
    p.add_argument("--sources", "--features", dest="features", default="auto",
                   help=f"comma-separated item-vector sources from {','.join(SOURCES)}, or auto (all available); "
                        "--features is the old name (the same flag as `genads train --sources`)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (rq-vae, e2e)")
    p.add_argument("--balanced", action="store_true", help="rq-kmeans: balanced (capacity-capped) clusters")
    p.add_argument("--residual", choices=("spherical", "l2"), default="spherical",
                   help="rq-kmeans: cluster residual directions (default; no hub-centroid collapse) or raw residuals")
    p.add_argument("--w-split", type=float, default=None,
                   help="e2e: weight of the split term (items sharing a prefix differ at the next level; default 0 = off; 5 with --w-sharp 0.5 cuts collisions)")
    p.add_argument("--w-sharp", type=float, default=None,
                   help="e2e: weight of the per-item code entropy (confident level heads; default 0 = off)")
    p.add_argument("--conditioning", choices=["parallel", "residual"], default="parallel",
                   help="e2e: parallel level heads (UniSID) or residual-conditioned ones (level l reads the earlier codes)")
    p.add_argument("--collision-aware", action="store_true",
                   help="e2e: move colliding items to their best free last-level code after fitting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="MiniLM vector cache folder")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the text-vector cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tokenize)
