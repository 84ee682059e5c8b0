"""`beauty_generative.py --family parallel`: the parallel-code generator and SASRec (sampled softmax) in one run.

Both models train in the same script run, on the same leave-one-out split, each in its own worker
process with one torch thread (the two run side by side on a 2-core machine), each early-stopped on
validation NDCG@10 under the protocol of the table (nothing ruled out). The table has popularity,
SASRec-SS, the parallel generator, and the SID generator's committed row (its 90-minute run is not
repeated here; the row names its file).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def load_split(data: Path, name: str):
    from genads.data.dataset import load_dataset
    from genads.data.ingest import import_dataset
    from genads.data.loaders import S3RecSource
    from genads.data.split import SplitConfig, leave_one_out

    with tempfile.TemporaryDirectory() as tmp:
        import_dataset(S3RecSource(data / f"{name}.txt"), Path(tmp) / "ds", progress=False)
        dataset = load_dataset(Path(tmp) / "ds")
        dataset.catalogue  # noqa: B018 - read while the folder exists
        split = leave_one_out(dataset, SplitConfig(max_history=50))
    return dataset, split


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parallel_codes(dataset, split, cache: Path, key: dict, seed: int) -> tuple[np.ndarray, dict, float]:
    """(codes by item index, stats, seconds) over attribute + training-only collaborative vectors; cached by a
    content hash of the inputs (data file bytes, PQ settings, seed, code version)."""
    from genads.encode.attributes import multi_hot
    from genads.encode.collaborative import collaborative_vectors
    from genads.encode.fusion import fuse
    from genads.parallel import PQCodebook, PQConfig
    from genads.parallel.catalogue import codes_by_index

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"parallel_codes_{digest}.npy"
    if path.is_file() and path.with_suffix(".json").is_file():
        return np.load(path, allow_pickle=False), json.loads(path.with_suffix(".json").read_text()), 0.0
    start = time.perf_counter()
    attrs = multi_hot(dataset.catalogue["attributes"].tolist())[0]
    collab = collaborative_vectors([s - 1 for s in split.train], split.n_items, seed=seed)  # training sequences only
    vectors = fuse({"attributes": attrs, "collab": collab})
    codebook = PQCodebook.fit(vectors, PQConfig(seed=seed))
    codes = codebook.encode(vectors)
    by_index = codes_by_index(codes, dataset.catalogue["ad_id"].to_numpy(), split)
    seconds = time.perf_counter() - start
    stats = {"key": key, "pq": asdict(codebook.config), "unique_code_rate": len(np.unique(codes, axis=0)) / len(codes),
             "vector_dims": {"attributes": attrs.shape[1], "collab": collab.shape[1]}, "seconds": round(seconds, 1)}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{path.name}.{os.getpid()}.npy"
    np.save(tmp, by_index, allow_pickle=False)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(stats, indent=2))
    return by_index, stats, seconds


def job(kind: str, data: str, name: str, seed: int, sets: list[str], cache: str, run_dir: str | None,
        budget_min: float, sasrec_preset: str = "ss") -> dict:
    """One model, trained and evaluated in this (worker) process with one thread."""
    import torch

    torch.set_num_threads(1)
    from genads.eval.harness import evaluate

    dataset, split = load_split(Path(data), name)
    wall, cpu = time.perf_counter(), time.process_time()
    extra: dict = {}
    if kind == "sasrec":
        from genads.baselines import SASRec
        from genads.baselines.sasrec import PRESETS, SASRecConfig

        cfg = _override(replace(PRESETS[sasrec_preset], time_budget_s=budget_min * 60), SASRecConfig, sets, "sasrec.")
        model = SASRec(cfg)
        log = model.fit(split, seed=seed, progress=False)
        described = asdict(cfg)
    else:
        from genads.parallel import PRESETS, ParallelConfig, ParallelRecommender, ParallelTrainConfig

        key = {"data_sha256": file_sha(Path(data) / f"{name}.txt"), "seed": seed, "vectors": "attributes+collab(train)",
               "pq": "PQConfig()", "version": 1}
        codes, stats, code_seconds = parallel_codes(dataset, split, Path(cache), key, seed)
        arch, train = PRESETS["beauty"]
        arch_sets = [x for x in sets if x.partition("=")[0].removeprefix("parallel.") in ParallelConfig.__dataclass_fields__]
        arch = _override(replace(arch, n_items=1), ParallelConfig, arch_sets, "parallel.")
        train = _override(replace(train, time_budget_s=budget_min * 60), ParallelTrainConfig,
                          [x for x in sets if x not in arch_sets], "parallel.")
        model = ParallelRecommender(codes, arch, train, run_dir=run_dir)
        log = model.fit(split, seed=seed, progress=False)
        described = {"model": asdict(model.config), "train": asdict(model.train)}
        extra = {"codes": stats, "code_seconds": round(code_seconds, 1)}
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"kind": kind, "config": described, "epochs": len(log), "log": log, "train_seconds": round(train_wall, 1),
           "train_cpu_seconds": round(train_cpu, 1), **extra,
           "valid": evaluate(model, split.valid, ks=(5, 10, 20)), "test": evaluate(model, split.test, ks=(5, 10, 20))}
    # every model under both protocols: the published SASRec rows rule the history out
    out["valid_history_ruled_out"] = evaluate(model, split.valid, ks=(5, 10, 20), exclude_history=True)
    out["test_history_ruled_out"] = evaluate(model, split.test, ks=(5, 10, 20), exclude_history=True)
    return out


def _override(cfg, cls, sets: list[str], prefix: str):
    fields = set(cls.__dataclass_fields__)
    for pair in sets:
        key, _, raw = pair.partition("=")
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if key not in fields:
            raise SystemExit(f"--set {pair}: {cls.__name__} has no field {key!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        cfg = replace(cfg, **{key: value})
    return cfg


def run(args, published: dict, print_table, save, results_dir: Path) -> None:
    from genads.baselines import Popularity
    from genads.eval.harness import evaluate

    kinds = [k for k in args.models.split(",") if k]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(len(kinds), 2), mp_context=get_context("spawn")) as pool:
        futures = {k: pool.submit(job, k, str(args.data), args.name, args.seed, args.set, str(args.sid_cache),
                                  str(args.run_dir / k) if args.run_dir else None, args.budget_min, args.sasrec_preset)
                   for k in kinds}
        out = {k: f.result() for k, f in futures.items()}
    wall = time.perf_counter() - start
    _, split = load_split(args.data, args.name)
    pop = Popularity()
    pop.fit(split)
    rows = []
    names = {"parallel": "parallel generator (PQ codes, exact scoring)",
             "sasrec": f"SASRec, sampled softmax (256 neg.; preset {args.sasrec_preset})"}
    for k in kinds:
        r = out[k]
        rows.append({"model": names[k], "protocol": "nothing ruled out", **{m: r["test"][m] for m in KEYS[:4]},
                     "valid_ndcg@10": r["valid"]["ndcg@10"], "epochs": r["epochs"],
                     "train_cpu_min": round(r["train_cpu_seconds"] / 60, 1)})
        if "test_history_ruled_out" in r:
            t = r["test_history_ruled_out"]
            rows.append({"model": names[k], "protocol": "history ruled out", **{m: t[m] for m in KEYS[:4]}})
    for protocol, excl in (("nothing ruled out", False), ("history ruled out", True)):
        p = evaluate(pop, split.test, exclude_history=excl)
        rows.append({"model": "popularity", "protocol": protocol, **{m: p[m] for m in KEYS[:4]}})
    sid_file = results_dir / f"{args.name.lower()}_generative{'_d128' if args.name == 'Beauty' else ''}.json"
    if sid_file.is_file():
        fig = json.loads(sid_file.read_text())["figures"]
        rows.append({"model": f"SID generator (committed {sid_file.name}, not rerun)", "protocol": "nothing ruled out",
                     **{m: fig["test"][m] for m in KEYS[:4]},
                     "train_cpu_min": round(fig.get("train_cpu_seconds", fig.get("train_seconds", 0)) / 60, 1)})
    rows += [{"model": n, "protocol": "as published", **f} for n, f in published.items()]
    print_table(rows, f"{args.name}: full ranking, leave-one-out (test); each model early-stopped on validation")
    figures = {"dataset": args.name, "users": len(split.users), "items": split.n_items, "table": rows,
               "wall_seconds": round(wall, 1), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "sets": args.set, "models": out}
    if "parallel" in out and "sasrec" in out:
        a, b = out["parallel"]["test"], out["sasrec"]["test"]
        figures["parallel_vs_sasrec"] = {m: round(a[m] / b[m] - 1, 4) for m in ("recall@10", "ndcg@10")}
    print(f"\nwrote {save(f'{args.name.lower()}_generative_parallel' + (f'_{args.tag}' if args.tag else ''), figures)}")
