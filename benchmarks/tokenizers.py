"""Semantic-ID tokenizers: fit time, items/s, peak RSS, collisions and codebook use; downstream probe.

Synthetic items at 10k / 100k / 1M (clustered vectors), and the real data sets through the CLI:
``genads tokenize`` on Amazon Beauty (multi-hot attributes + collaborative PPMI-SVD vectors, fused)
and MovieLens-100k (MiniLM text of title + genres + year, attributes, collaborative). Every synthetic
(size, method) fit runs in a fresh forked process so that its peak RSS (ru_maxrss, data included) is
its own; real rows read the ``metrics.json`` that the CLI run wrote (its command, fit wall/CPU time,
peak RSS, SID quality) and run the CLI when that folder is missing.

With ``--probe`` (a separate run, written to tokenizers_probe_DATASETS[_TAG].json): the downstream comparison,
the SASRec-on-SIDs probe (genads.tokenize.probe) trained on every tokenizer's SIDs of each data set with
identical settings and seeds, plus a control with random SIDs of the same shape; test R@10/N@10. Every row
names its protocol, and the best tokenizer is the one with the best mean *validation* NDCG@10.

A ``runs/sids/DATA-METHOD`` folder is reused only when its metrics.json has the inputs key this run would
write (dataset bytes, tokenize options, features from training events only: issue 20); otherwise it is
tokenized again. The probe refuses SID folders whose features saw validation or test events.

    .venv/bin/python benchmarks/tokenizers.py [--sizes 10000 100000 1000000] [--sids runs/sids]
    .venv/bin/python benchmarks/tokenizers.py --probe --seeds 0 1 [--datasets beauty ml-100k] [--tag noleak]

With ``--downstream`` (issue 17; benchmarks/_tokenizer_downstream.py): the same generator on each tokenizer's
IDs - the SID slate model on RQ-KMeans / RQ-VAE / e2e / e2e-residual SIDs, the parallel-code generator on
PQ / OPQ / learned codes - for Beauty and Sports, every seed; the defaults are the full protocol:

    .venv/bin/python benchmarks/tokenizers.py --downstream --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tokenizer_downstream import add_arguments as add_downstream_arguments
from _tokenizer_downstream import (
    level_entropy_rows,
    stability_rows,
)
from _tokenizer_downstream import run as run_downstream

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
METHODS = ("rq-kmeans", "rq-vae", "e2e")
CODEBOOK = {"beauty": 256, "ml-100k": 64}
"""Beauty: 12,101 items, K=256 as TIGER (47 items per first-level code, 65k level-2 prefixes);
ml-100k: 1,682 items, K=64 (26 per first-level code, 4,096 level-2 prefixes > items), since K=256
would leave ~6.6 items per first-level code and mostly empty deeper levels."""
IMPORT = {"beauty": ["--format", "s3rec", str(SHARED / "amazon" / "Beauty.txt"),
                     "--items", str(SHARED / "amazon" / "Beauty_item2attributes.json")],
          "ml-100k": ["--format", "recbole", str(SHARED / "ml-100k" / "ml-100k.inter"),
                      "--items", str(SHARED / "ml-100k" / "ml-100k.item")]}
NOTE = ("fit_s is wall time, fit_cpu_s CPU time of the fitting process (user + system); every run used one "
        "thread (OMP_NUM_THREADS=1 via /work/cpu-slot) on a 2-core machine shared with other jobs (loadavg = "
        "1-minute load average around the fit), so wall times overstate an idle machine's by up to loadavg / 2. "
        "peak_rss_mb is the process's maximum RSS, data included (real rows: the whole CLI process, MiniLM too).")


def synthetic(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Hierarchically clustered vectors: 64 topics x 32 sub-topics + noise, (n, dim) float32."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(64, dim)).astype(np.float32) * 3
    subs = rng.normal(size=(64, 32, dim)).astype(np.float32)
    t, s = rng.integers(0, 64, n), rng.integers(0, 32, n)
    return topics[t] + subs[t, s] + rng.normal(size=(n, dim)).astype(np.float32) * 0.5


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
    if method == "rq-vae":  # cheap per epoch: ~1M item-visits (30 epochs at 10k, 10 at 100k, 1 at 1M)
        epochs = max(1, min(30, 1_000_000 // max(n, 1)))
        return RQVAETokenizer(RQVAEConfig(levels=levels, codebook_size=k, epochs=epochs, batch_size=1024))
    epochs = max(1, min(30, 100_000 // max(n, 1)))  # e2e: ~100k item-visits, 10 epochs at 10k, 1 at >= 100k
    return UniSIDTokenizer(UniSIDConfig(levels=levels, codebook_size=k, epochs=epochs, n_layers=1))


def _child(spec: dict, queue: mp.Queue) -> None:
    from genads.tokenize.metrics import level_stats, sid_summary

    try:
        start = time.perf_counter()
        vectors = synthetic(spec["n"])
        t_inputs = time.perf_counter() - start
        tok = make(spec["method"], spec["levels"], spec["k"], len(vectors))
        start, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        codes = tok.fit(vectors, seed=0)
        fit, cpu = time.perf_counter() - start, time.process_time() - cpu0
        recon = tok.reconstruct(codes)
        row = {"data": spec["data"], "method": spec["method"], "items": len(vectors), "dim": vectors.shape[1],
               "L": spec["levels"], "K": spec["k"], "inputs_s": round(t_inputs, 1), "fit_s": round(fit, 1),
               "fit_cpu_s": round(cpu, 1), "loadavg": round((load0 + os.getloadavg()[0]) / 2, 1),
               "items_per_s": round(len(vectors) / fit), "items_per_cpu_s": round(len(vectors) / max(cpu, 1e-9)),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               **{k: v for k, v in sid_summary(codes, spec["k"], vectors, recon).items() if k != "items"},
               "perplexity_levels": [round(r["perplexity"], 1) for r in level_stats(codes, spec["k"])]}
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


def genads(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("genads")), *args], check=True)


def tokenized(data: str, method: str, sids: Path, datasets: Path, levels: int) -> Path:
    """``sids/DATA-METHOD`` from ``genads tokenize``: reused only when its inputs key is this run's."""
    from genads.cli import build_parser
    from genads.commands.tokenize import inputs_key

    out = sids / f"{data}-{method}"
    if not (datasets / data / "meta.json").is_file():
        genads("data", "import", *IMPORT[data], "--out", str(datasets / data), "--quiet")
    argv = ["tokenize", "--method", method, "--levels", str(levels), "--codebook", str(CODEBOOK[data]),
            str(datasets / data), "--out", str(out), "--quiet"]
    key = inputs_key(datasets / data, build_parser().parse_args(argv))
    metrics = out / "metrics.json"
    if not metrics.is_file() or json.loads(metrics.read_text()).get("inputs_sha256") != key:
        print(f"{out}: missing or stale (inputs changed), tokenizing", flush=True)
        genads(*argv)
    return out


def real_row(data: str, method: str, sids: Path, datasets: Path, levels: int) -> dict:
    """The row of a CLI run: read its metrics.json, import + tokenize first when missing or stale."""
    out = tokenized(data, method, sids, datasets, levels)
    m = json.loads((out / "metrics.json").read_text())
    sec, s = m["seconds"], m["summary"]
    return {"data": data, "method": method, "items": s["items"], "dim": sum(m["sources"].values()),
            "sources": "+".join(m["sources"]), "L": levels, "K": CODEBOOK[data], "inputs_s": sec["vectors"],
            "fit_s": sec["fit"], "fit_cpu_s": sec.get("fit_cpu"), "loadavg": m.get("loadavg"),
            "items_per_s": round(s["items"] / max(sec["fit"], 1e-9)), "peak_rss_mb": m.get("peak_rss_mb"),
            **{k: v for k, v in s.items() if k != "items"},
            "perplexity_levels": [round(r["perplexity"], 1) for r in m["levels"]], "cli": m.get("command"),
            "features_from": m.get("features_from", LEAKY),
            "folder": str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)}


def fit_rows(args: argparse.Namespace) -> None:
    rows, specs = [], []
    methods = args.methods or ["rq-kmeans", "rq-kmeans-balanced", "rq-vae", "e2e"]
    redo = {(f"synthetic-{n // 1000}k", m) for n in args.sizes for m in methods}
    if args.reuse_synthetic:  # merge: the last run's synthetic rows that this run does not redo
        last = json.loads((Path(__file__).parent / "results" / "tokenizers.json").read_text())["figures"]["rows"]
        rows = [r for r in last if r["data"].startswith("synthetic") and (r["data"], r["method"]) not in redo]
    for n in args.sizes:
        for method in methods:
            data = f"synthetic-{n // 1000}k"
            if method != "rq-kmeans" and n > (args.rqvae_max if method == "rq-vae" else args.learned_max):
                why = ("balanced assignment holds a dense (n, K) distance matrix (1 GB at 1M x 256) plus a copy"
                       if method.endswith("balanced") else
                       "e2e costs ~1.2 ms of CPU per item and epoch (Beauty: 421 s for 30 x 12,101): one epoch at 1M is "
                       "~20 min of one core, beyond this session's CPU-slot budget")
                rows.append({"data": data, "method": method, "items": n, "skipped": why})
                continue
            specs.append({"data": data, "n": n, "method": method, "levels": args.levels, "k": args.codebook})
    for spec in specs:
        row = run_isolated(spec)
        print({k: row.get(k) for k in ("data", "method", "fit_s", "fit_cpu_s", "collision_rate", "error")}, flush=True)
        rows.append(row)
        save("tokenizers", {"rows": rows, "note": NOTE})
    if not args.skip_real:
        for data in args.datasets:
            for method in METHODS:
                rows.append(real_row(data, method, args.sids, args.data_dir, args.levels))
    print_table([{k: r.get(k) for k in ("data", "method", "items", "fit_s", "fit_cpu_s", "items_per_s", "peak_rss_mb",
                                        "collision_rate", "perplexity", "quant_error", "skipped")} for r in rows],
                "Semantic-ID tokenizers")
    save("tokenizers", {"rows": rows, "note": NOTE})


LEAKY = "all events (before issue 20: validation and test events included)"
PROTOCOL = ("leave-one-out test, full ranking, history not ruled out; best epoch by validation NDCG@10; "
            "SID features from training events only")


def probe_sids(args: argparse.Namespace, data: str, ds) -> dict[str, tuple[np.ndarray, str | None]]:
    """Tokenizer name -> (SIDs in catalogue order, inputs key) for every leak-free DATA-* folder."""
    import pandas as pd

    for method in METHODS:  # the CLI defaults: made (or remade) here when missing or stale
        if method in args.methods or not args.methods:
            tokenized(data, method, args.sids, args.data_dir, args.levels)
    out = {}
    for path in sorted(args.sids.glob(f"{data}-*/sids.parquet")):  # the three methods and any variants
        method = path.parent.name[len(data) + 1:]
        if args.methods and method not in args.methods:
            continue
        metrics = path.with_name("metrics.json")
        m = json.loads(metrics.read_text()) if metrics.is_file() else {}
        if not m.get("features_from", LEAKY).startswith("training events"):
            raise SystemExit(f"{path.parent}: its SIDs were built from {LEAKY}; run its genads tokenize "
                             f"command again ({m.get('command') or 'see metrics.json'})")
        table = pd.read_parquet(path)
        order = pd.Series(np.arange(len(table)), index=table["ad_id"]).loc[ds.catalogue["ad_id"]].to_numpy()
        out[method] = (np.stack(table["sid"].to_numpy())[order], m.get("inputs_sha256"))
    return out


def probe_summary(rows: list[dict]) -> list[dict]:
    """Mean/sd per (data, tokenizer) over seeds; ``best`` marks each data set's best mean validation NDCG@10."""
    import pandas as pd

    summary = []
    for (data, tokenizer), group in pd.DataFrame(rows).groupby(["data", "tokenizer"], sort=False):
        summary.append({"data": data, "tokenizer": tokenizer, "seeds": len(group),
                        "valid_ndcg@10_mean": group["best_valid_ndcg@10"].mean(),
                        **{f"{m}_mean": group[m].mean() for m in ("recall@10", "ndcg@10")},
                        **{f"{m}_std": group[m].std(ddof=0) for m in ("recall@10", "ndcg@10")},
                        "protocol": group["protocol"].iloc[0]})
    for data in {r["data"] for r in summary}:
        mine = [r for r in summary if r["data"] == data]
        best = max(mine, key=lambda r: r["valid_ndcg@10_mean"])
        for r in mine:
            r["best"] = "by validation" if r is best else ""
    return summary


def probe_rows(args: argparse.Namespace) -> None:
    """SASRec-on-SIDs per data set x tokenizer x seed (same model, same settings), plus random SIDs."""
    from genads.data.dataset import load_dataset
    from genads.data.split import leave_one_out
    from genads.eval.harness import evaluate
    from genads.tokenize import disambiguate
    from genads.tokenize.probe import ProbeConfig, SIDProbe

    cfg = ProbeConfig(max_len=args.max_len, epochs=args.epochs, eval_every=2, patience=2)
    name = "tokenizers_probe_" + "_".join(args.datasets) + (f"_{args.tag}" if args.tag else "")
    rows = []
    for data in args.datasets:
        if not (args.data_dir / data / "meta.json").is_file():
            genads("data", "import", *IMPORT[data], "--out", str(args.data_dir / data), "--quiet")
        ds = load_dataset(args.data_dir / data)
        split = leave_one_out(ds)
        index = split.index_of(ds.catalogue["ad_id"].to_numpy())
        k = CODEBOOK[data]
        tokenizers = probe_sids(args, data, ds)
        if not args.no_random:
            rng = np.random.default_rng(0)
            tokenizers["random"] = (disambiguate(rng.integers(0, k, (len(ds.catalogue), args.levels))), None)
        for tokenizer, (sids, key) in tokenizers.items():
            aligned = np.zeros((split.n_items + 1, sids.shape[1]), dtype=np.int64)
            aligned[index] = sids
            vocab = [k] * args.levels + [int(sids[:, -1].max()) + 1]
            for seed in args.seeds:
                model = SIDProbe(aligned, vocab, cfg)
                start, cpu0 = time.perf_counter(), time.process_time()
                log = model.fit(split, seed=seed)
                test = evaluate(model, split.test)
                row = {"data": data, "tokenizer": tokenizer, "seed": seed, "epochs": len(log),
                       "train_s": round(time.perf_counter() - start), "train_cpu_s": round(time.process_time() - cpu0),
                       "best_valid_ndcg@10": max(r.get("valid_ndcg@10", -1) for r in log),
                       **{m: test[m] for m in ("recall@5", "ndcg@5", "recall@10", "ndcg@10")},
                       "protocol": PROTOCOL, "sids_inputs_sha256": key}
                print(row, flush=True)
                rows.append(row)
                save(name, {"rows": rows, "config": cfg.__dict__, "note": PROBE_NOTE})
    summary = probe_summary(rows)
    print_table([{k: v for k, v in r.items() if k != "protocol"} for r in summary],
                f"Downstream: SASRec-on-SIDs (full softmax CE), test, mean over seeds; protocol: {PROTOCOL}")
    save(name, {"rows": rows, "summary": summary, "config": cfg.__dict__, "note": PROBE_NOTE})


PROBE_NOTE = ("Leave-one-out, full ranking over all items, history items not ruled out; item embedding = sum of "
              "its SID tokens' embeddings (disambiguation level included); same ProbeConfig and seeds for every "
              "tokenizer; best epoch by validation NDCG@10; 'best' = best mean validation NDCG@10 (test figures "
              "never select). SIDs from genads tokenize runs whose collaborative features and co-occurring pairs "
              "saw training events only (issue 20). 'random' = uniformly random codes + disambiguation.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook", type=int, default=256, help="K for the synthetic rows")
    parser.add_argument("--learned-max", type=int, default=100_000, help="largest synthetic size for e2e and balanced rq-kmeans")
    parser.add_argument("--datasets", nargs="*", default=["beauty", "ml-100k"], choices=sorted(CODEBOOK))
    parser.add_argument("--sids", type=Path, default=ROOT / "runs" / "sids", help="CLI output folders DATA-METHOD")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "runs" / "data", help="imported data sets")
    parser.add_argument("--rqvae-max", type=int, default=1_000_000, help="largest synthetic size for rq-vae")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--reuse-synthetic", action="store_true",
                        help="keep the synthetic rows of benchmarks/results/tokenizers.json that this run does not redo")
    parser.add_argument("--probe", action="store_true", help="only the downstream SASRec-on-SIDs comparison")
    parser.add_argument("--methods", nargs="*", default=[], help="only these methods (fits: synthetic rows; probe: DATA-METHOD folders); default all")
    parser.add_argument("--no-random", action="store_true", help="probe: no random-SID control")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=20, help="probe epoch cap")
    parser.add_argument("--max-len", type=int, default=50, help="probe history length")
    parser.add_argument("--tag", default="", help="probe: results file tokenizers_probe_DATASETS_TAG.json")
    add_downstream_arguments(parser)
    args = parser.parse_args()
    if args.level_entropy:
        level_entropy_rows(args, print_table, save)
    elif args.stability:
        stability_rows(args, print_table, save)
    elif args.downstream:
        run_downstream(args, print_table, save)
    else:
        probe_rows(args) if args.probe else fit_rows(args)


if __name__ == "__main__":
    main()
