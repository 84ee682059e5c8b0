"""Semantic-ID tokenizers: fit time, items/s, peak RSS, collisions and codebook use.

Synthetic items at 10k / 100k / 1M (clustered vectors), Amazon Beauty (multi-hot attributes +
collaborative PPMI-SVD vectors, fused) and MovieLens-100k (MiniLM text of title + genres + year,
fused with attributes). Every (data, method) run happens in a fresh forked process so that its
peak RSS (ru_maxrss, which includes the data) is its own. With ``--probe``, a downstream comparison
on Beauty: SASRec-on-SIDs (genads.tokenize.probe) with RQ-KMeans vs end-to-end SIDs, test R@10/N@10.

    .venv/bin/python benchmarks/tokenizers.py [--sizes 10000 100000 1000000] [--probe]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NOTE = ("fit_s is wall time, fit_cpu_s CPU time of the fitting process (user + system, all threads); the 2-core "
        "machine was shared with other jobs (loadavg = 1-minute load average around the fit), so wall times "
        "overstate what an idle machine needs by up to loadavg / 2.")


def synthetic(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Hierarchically clustered vectors: 64 topics x 32 sub-topics + noise, (n, dim) float32."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(64, dim)).astype(np.float32) * 3
    subs = rng.normal(size=(64, 32, dim)).astype(np.float32)
    t, s = rng.integers(0, 64, n), rng.integers(0, 32, n)
    return topics[t] + subs[t, s] + rng.normal(size=(n, dim)).astype(np.float32) * 0.5


def import_real(name: str, folder: Path) -> Path:
    from genads.data.ingest import import_dataset
    from genads.data.loaders import RecBoleSource, S3RecSource

    if name == "beauty":
        source = S3RecSource(SHARED / "amazon" / "Beauty.txt")
    else:
        source = RecBoleSource(SHARED / "ml-100k" / "ml-100k.inter")
    return import_dataset(source, folder / name, on_error="skip", progress=False).path


def real_inputs(name: str, folder: Path, cache: Path):
    from genads.data.dataset import load_dataset
    from genads.tokenize.features import item_features, item_vectors

    ds = load_dataset(import_real(name, folder))
    sources = ("attributes", "collab") if name == "beauty" else ("text", "attributes")
    vectors, dims = item_vectors(ds, sources, cache_dir=cache, progress=False)
    return vectors, item_features(ds), dims, ds


def make(method: str, levels: int, k: int, n: int):
    from genads.tokenize import (
        RQKMeansConfig,
        RQKMeansTokenizer,
        RQVAEConfig,
        RQVAETokenizer,
        UniSIDConfig,
        UniSIDTokenizer,
    )

    if method.startswith("rq-kmeans"):
        return RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=k, balanced=method.endswith("balanced")))
    epochs = max(1, min(30, 300_000 // max(n, 1)))  # ~300k item-visits: 30 epochs at 10k, 1 at >= 300k
    if method == "rq-vae":
        return RQVAETokenizer(RQVAEConfig(levels=levels, codebook_size=k, epochs=epochs, batch_size=1024))
    return UniSIDTokenizer(UniSIDConfig(levels=levels, codebook_size=k, epochs=epochs, n_layers=1))


def _child(spec: dict, queue: mp.Queue) -> None:
    from genads.tokenize.metrics import sid_summary

    try:
        features, t_inputs = None, 0.0
        start = time.perf_counter()
        if spec["data"].startswith("synthetic"):
            vectors = synthetic(spec["n"])
        else:
            vectors, features, _, _ = real_inputs(spec["data"], Path(spec["tmp"]), Path(spec["cache"]))
        t_inputs = time.perf_counter() - start
        tok = make(spec["method"], spec["levels"], spec["k"], len(vectors))
        start, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        codes = tok.fit(vectors, seed=0, features=features) if spec["method"] == "e2e" else tok.fit(vectors, seed=0)
        fit, cpu = time.perf_counter() - start, time.process_time() - cpu0
        recon = tok.reconstruct(codes)
        row = {"data": spec["data"], "method": spec["method"], "items": len(vectors), "dim": vectors.shape[1],
               "L": spec["levels"], "K": spec["k"], "inputs_s": round(t_inputs, 1), "fit_s": round(fit, 1), "fit_cpu_s": round(cpu, 1),
               "loadavg": round((load0 + os.getloadavg()[0]) / 2, 1),
               "items_per_s": round(len(vectors) / fit), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               **{k: v for k, v in sid_summary(codes, spec["k"], vectors, recon).items() if k != "items"}}
        if spec.get("save_codes"):
            np.save(spec["save_codes"], codes)
        queue.put(row)
    except Exception as e:  # report, keep benchmarking the rest
        queue.put({"data": spec["data"], "method": spec["method"], "error": f"{type(e).__name__}: {e}"})


def run_isolated(spec: dict) -> dict:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(spec, queue))
    proc.start()
    row = queue.get()
    proc.join()
    return row


def probe(tmp: Path, cache: Path, codes: dict[str, Path], levels: int, k: int) -> list[dict]:
    """SASRec-on-SIDs on Beauty: test R@10/N@10 per tokenizer (same seed, same model)."""
    from genads.data.dataset import load_dataset
    from genads.data.split import leave_one_out
    from genads.eval.harness import evaluate
    from genads.tokenize import disambiguate
    from genads.tokenize.probe import ProbeConfig, SIDProbe

    ds = load_dataset(tmp / "beauty")
    split = leave_one_out(ds)
    index = split.index_of(ds.catalogue["ad_id"].to_numpy())
    rows = []
    for name, path in codes.items():
        sids = disambiguate(np.load(path))
        aligned = np.zeros((split.n_items + 1, sids.shape[1]), dtype=np.int64)
        aligned[index] = sids
        vocab = [k] * levels + [int(sids[:, -1].max()) + 1]
        model = SIDProbe(aligned, vocab, ProbeConfig(max_len=20, epochs=10, eval_every=2, patience=2))
        start = time.perf_counter()
        log = model.fit(split, seed=0)
        test = evaluate(model, split.test)
        rows.append({"tokenizer": name, "epochs": len(log), "train_s": round(time.perf_counter() - start),
                     **{m: test[m] for m in ("recall@5", "ndcg@5", "recall@10", "ndcg@10")}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook", type=int, default=256)
    parser.add_argument("--learned-max", type=int, default=100_000, help="largest synthetic size for rq-vae / e2e")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--probe", action="store_true", help="downstream SASRec-on-SIDs on Beauty")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="genads-bench-"))
    cache = Path.home() / ".cache" / "genads" / "text"
    specs = []
    for n in args.sizes:
        for method in ("rq-kmeans", "rq-kmeans-balanced", "rq-vae", "e2e"):
            if method != "rq-kmeans" and n > args.learned_max:
                continue
            specs.append({"data": f"synthetic-{n // 1000}k", "n": n, "method": method})
    if not args.skip_real:
        for data, k in (("beauty", args.codebook), ("ml-100k", 64)):
            for method in ("rq-kmeans", "rq-kmeans-balanced", "rq-vae", "e2e"):
                spec = {"data": data, "method": method, "k": k}
                if data == "beauty" and method in ("rq-kmeans", "e2e"):
                    spec["save_codes"] = str(tmp / f"codes-{method}.npy")
                specs.append(spec)
    rows = []
    for spec in specs:
        spec = {"levels": args.levels, "k": args.codebook, "tmp": str(tmp), "cache": str(cache), **spec}
        row = run_isolated(spec)
        print({k: row.get(k) for k in ("data", "method", "fit_s", "collision_rate", "error")}, flush=True)
        rows.append(row)
        save("tokenizers", {"rows": rows, "note": NOTE})
    print_table(rows, "Semantic-ID tokenizers")
    figures = {"rows": rows, "note": NOTE}
    if args.probe and not args.skip_real:
        codes = {m: tmp / f"codes-{m}.npy" for m in ("rq-kmeans", "e2e") if (tmp / f"codes-{m}.npy").is_file()}
        figures["probe_beauty"] = probe(tmp, cache, codes, args.levels, args.codebook)
        print_table(figures["probe_beauty"], "Downstream on Beauty: SASRec-on-SIDs (full softmax CE), test")
    save("tokenizers", figures)


if __name__ == "__main__":
    main()
