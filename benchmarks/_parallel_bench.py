"""`beauty_generative.py --family parallel`: the parallel-code generator and SASRec (sampled softmax) in one run.

Both models train in the same script run, on the same leave-one-out split, each in its own worker
process with one torch thread (the two run side by side on a 2-core machine; ``--workers 1``: one after the
other), each early-stopped on validation under the protocol of its preset: with ``--sasrec-preset esasrec*`` and
``--parallel-preset esasrec`` both stop on validation R@10 with the history ruled out, the headline column. Every
model is reported under both protocols (nothing ruled out; the history ruled out), validation and test.

With an ``esasrec*`` SASRec preset the split follows the eSASRec benchmark's protocol (as
``beauty_baselines.py --preset``): histories uncapped, so the *whole* history is ruled out (the models read its
last 50), and test users whose test item never occurs in training (train + validation) are dropped (counted).
``--cpu-budget-min`` gives each model a CPU budget (a paused or starved worker does not spend it); the JSON says
for each whether patience was reached or the budget stopped it. The table has popularity, SASRec, the parallel
generator, and the SID generator's committed row (its 90-minute run is not repeated here; the row names its file
and is marked stale: another protocol and an older recipe).
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

from _common import read_metrics

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def load_split(data: Path, name: str):
    """(dataset, split): leave-one-out, histories of 50 (what _tokenizer_downstream.py reads too)."""
    dataset, split, _ = load_protocol_split(data, name, False)
    return dataset, split


def load_protocol_split(data: Path, name: str, esasrec_protocol: bool = False):
    """(dataset, split, test users dropped). ``esasrec_protocol``: histories uncapped (the whole history is ruled
    out) and test users whose test item never occurs in training dropped; else histories of 50, nothing dropped."""
    from genads.data.dataset import load_dataset
    from genads.data.ingest import import_dataset
    from genads.data.loaders import S3RecSource
    from genads.data.split import SplitConfig, leave_one_out, user_sequences
    from genads.eval.harness import drop_unseen_targets, seen_items

    with tempfile.TemporaryDirectory() as tmp:
        import_dataset(S3RecSource(data / f"{name}.txt"), Path(tmp) / "ds", progress=False)
        dataset = load_dataset(Path(tmp) / "ds")
        dataset.catalogue  # noqa: B018 - read while the folder exists
        longest = max(len(s) for s in user_sequences(dataset, SplitConfig())[2]) if esasrec_protocol else 50
        split = leave_one_out(dataset, SplitConfig(max_history=longest))
    dropped = 0
    if esasrec_protocol:
        split.test, dropped = drop_unseen_targets(split.test, seen_items(split))
    return dataset, split, dropped


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


def build_parallel(dataset, split, data: Path, name: str, seed: int, sets: list[str], cache: Path, preset: str,
                   run_dir: str | None = None, budget_min: float = 0.0, cpu_budget_min: float = 0.0):
    """(an untrained ParallelRecommender, code stats, code seconds): the codes of ``data/name.txt`` (cached), the
    ``preset`` with ``--set parallel.FIELD=VALUE`` overrides (architecture fields to the model config, the rest to
    the training config) and an ID table when the preset asks for one. Every benchmark that trains or reloads a
    parallel generator builds it here, so a checkpoint always meets the model that trained it."""
    from genads.parallel import PRESETS, ParallelConfig, ParallelRecommender, ParallelTrainConfig

    key = {"data_sha256": file_sha(data / f"{name}.txt"), "seed": seed, "vectors": "attributes+collab(train)",
           "pq": "PQConfig()", "version": 1}
    codes, stats, code_seconds = parallel_codes(dataset, split, cache, key, seed)
    arch, train = PRESETS[preset]
    arch_sets = [x for x in sets if x.partition("=")[0].removeprefix("parallel.") in ParallelConfig.__dataclass_fields__]
    arch = _override(replace(arch, n_items=1), ParallelConfig, arch_sets, "parallel.")
    train = _override(replace(train, time_budget_s=budget_min * 60, cpu_budget_s=cpu_budget_min * 60),
                      ParallelTrainConfig, [x for x in sets if x not in arch_sets], "parallel.")
    return ParallelRecommender(codes, arch, train, run_dir=run_dir), stats, code_seconds


def job(kind: str, data: str, name: str, seed: int, sets: list[str], cache: str, run_dir: str | None,
        budget_min: float, sasrec_preset: str = "ss", parallel_preset: str = "beauty", cpu_budget_min: float = 0.0,
        esasrec_protocol: bool = False, resume: bool = False, prior_seconds: tuple[float, float] = (0.0, 0.0),
        init_weights: str | None = None) -> dict:
    """One model, trained and evaluated in this (worker) process with one thread. ``resume`` (parallel only):
    continue ``run_dir``'s checkpoint exactly; the log is then the whole run's and ``prior_seconds`` (wall, CPU) of
    the earlier calls are added to the training time. ``init_weights`` (parallel only): start from these weights
    (a checkpoint's ``best.safetensors``; same preset and codes) with a fresh optimiser, e.g. to anneal the learning
    rate from a converged run's best epoch."""
    import torch

    torch.set_num_threads(1)
    from genads.eval.harness import evaluate

    dataset, split, _ = load_protocol_split(Path(data), name, esasrec_protocol)
    wall, cpu = time.perf_counter(), time.process_time()
    extra: dict = {}
    if kind == "sasrec":
        from genads.baselines import SASRec
        from genads.baselines.sasrec import PRESETS, SASRecConfig

        cfg = _override(replace(PRESETS[sasrec_preset], time_budget_s=budget_min * 60, cpu_budget_s=cpu_budget_min * 60),
                        SASRecConfig, sets, "sasrec.")
        model = SASRec(cfg)
        log = model.fit(split, seed=seed, progress=False, on_epoch=lambda row: print("sasrec", row, flush=True))
        described = asdict(cfg)
        checked = [r for r in log if "valid_ndcg@10" in r]
        last_best = max((i for i, r in enumerate(checked) if r.get("best")), default=-1)
        extra = {"stopped_on": ("history ruled out" if cfg.exclude_history else "nothing ruled out") + f", valid {cfg.stop_metric}",
                 "best_epoch": checked[last_best]["epoch"] if last_best >= 0 else None,
                 "patience_reached": len(checked) - 1 - last_best >= cfg.patience,
                 "stopped_by_budget": any(r.get("stopped_by_time_budget") for r in log)}
    else:
        model, stats, code_seconds = build_parallel(dataset, split, Path(data), name, seed, sets, Path(cache),
                                                    parallel_preset, run_dir, budget_min, cpu_budget_min)
        train = model.train
        model.init_weights = init_weights
        log = model.fit(split, seed=seed, progress=False, resume=resume)
        for row in log:
            print("parallel", row, flush=True)
        if resume:  # the whole run's rows, the earlier calls' included
            log = read_metrics(run_dir)
        described = {"model": asdict(model.config), "train": asdict(model.train)}
        checked = [r for r in log if "valid_ndcg@10" in r]
        last_best = max((i for i, r in enumerate(checked) if r.get("improved")), default=-1)
        extra = {"codes": stats, "code_seconds": round(code_seconds, 1),
                 "stopped_on": ("history ruled out" if train.exclude_history else "nothing ruled out")
                 + f", valid {train.stop_metric}",
                 "best_epoch": checked[last_best]["epoch"] if last_best >= 0 else None,
                 "patience_reached": len(checked) - 1 - last_best >= train.patience,
                 "stopped_by_budget": any(r.get("stopped_by_time_budget") or r.get("stopped_by_cpu_budget")
                                          for r in log)}
        if init_weights:
            extra["init_weights"] = {"path": init_weights, "sha256": file_sha(Path(init_weights))}
    train_wall = time.perf_counter() - wall + prior_seconds[0]
    train_cpu = time.process_time() - cpu + prior_seconds[1]
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
    if args.resume and (kinds != ["parallel"] or args.run_dir is None):
        raise SystemExit("--resume continues the parallel generator's checkpoint: give --models parallel and --run-dir")
    esasrec_protocol = args.sasrec_preset.startswith("esasrec")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(len(kinds), args.workers)), mp_context=get_context("spawn")) as pool:
        futures = {k: pool.submit(job, k, str(args.data), args.name, args.seed, args.set, str(args.sid_cache),
                                  str(args.run_dir / k) if args.run_dir else None, args.budget_min, args.sasrec_preset,
                                  args.parallel_preset, args.cpu_budget_min, esasrec_protocol, args.resume,
                                  tuple(args.prior_seconds), args.init_weights)
                   for k in kinds}
        out = {k: f.result() for k, f in futures.items()}
    wall = time.perf_counter() - start
    _, split, dropped = load_protocol_split(args.data, args.name, esasrec_protocol)
    pop = Popularity()
    pop.fit(split)
    rows = []
    names = {"parallel": f"parallel generator (PQ codes, exact scoring; preset {args.parallel_preset})",
             "sasrec": f"SASRec, sampled softmax (256 neg.; preset {args.sasrec_preset})"}
    for k in kinds:
        r = out[k]
        rows.append({"model": names[k], "protocol": "history ruled out",
                     **{m: r["test_history_ruled_out"][m] for m in KEYS[:4]},
                     "valid_recall@10": r["valid_history_ruled_out"]["recall@10"], "epochs": r["epochs"],
                     "best_epoch": r.get("best_epoch"), "patience_reached": r.get("patience_reached"),
                     "train_cpu_min": round(r["train_cpu_seconds"] / 60, 1)})
        rows.append({"model": names[k], "protocol": "nothing ruled out", **{m: r["test"][m] for m in KEYS[:4]},
                     "valid_recall@10": r["valid"]["recall@10"]})
    for protocol, excl in (("nothing ruled out", False), ("history ruled out", True)):
        p = evaluate(pop, split.test, exclude_history=excl)
        rows.append({"model": "popularity", "protocol": protocol, **{m: p[m] for m in KEYS[:4]}})
    sid_file = results_dir / f"{args.name.lower()}_generative{'_d128' if args.name == 'Beauty' else ''}.json"
    if sid_file.is_file():
        fig = json.loads(sid_file.read_text())["figures"]
        rows.append({"model": f"SID generator (committed {sid_file.name}, not rerun: stale, older protocol)",
                     "protocol": "nothing ruled out",
                     **{m: fig["test"][m] for m in KEYS[:4]},
                     "train_cpu_min": round(fig.get("train_cpu_seconds", fig.get("train_seconds", 0)) / 60, 1)})
    rows += [{"model": n, "protocol": "as published", **f} for n, f in published.items()]
    print_table(rows, f"{args.name}: full ranking, leave-one-out (test); each model early-stopped on validation")
    figures = {"dataset": args.name, "users": len(split.users), "items": split.n_items, "table": rows,
               "protocol": ("eSASRec: leave-one-out, full ranking, whole history ruled out in the headline column; test "
                            "users whose test item never occurs in training dropped" if esasrec_protocol else
                            "leave-one-out, full ranking, histories of 50"),
               "test_users": len(split.test), "test_users_dropped_unseen_target": dropped,
               "parallel_preset": args.parallel_preset, "sasrec_preset": args.sasrec_preset,
               "cpu_budget_min": args.cpu_budget_min, "workers": args.workers,
               "wall_seconds": round(wall, 1), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
               "sets": args.set, "models": out}
    if "parallel" in out and "sasrec" in out:
        figures["parallel_vs_sasrec"] = {
            protocol: {m: round(out["parallel"][key][m] / out["sasrec"][key][m] - 1, 4) for m in ("recall@10", "ndcg@10")}
            for protocol, key in (("nothing ruled out", "test"), ("history ruled out", "test_history_ruled_out"))}
    print(f"\nwrote {save(f'{args.name.lower()}_generative_parallel' + (f'_{args.tag}' if args.tag else ''), figures)}")
