"""``genads train`` / ``genads eval`` / ``genads recommend``: the generative models from the command line.

Two families (``--family``): ``sid`` (default), the SID slate model with trie-constrained beam search over
a ``genads tokenize`` folder; ``parallel``, the parallel-code generator with exact scoring, which makes its
own PQ codes from the dataset's item vectors (training events only) and keeps the codebook in the run.
A run folder holds config.json (family, dataset, codes, architecture, training settings, seed),
metrics.jsonl (a row per epoch), checkpoint/ (exact resume) and model.safetensors (the best weights);
a parallel run also holds parallel.json, codes.npy and codebook.{json,safetensors}.
``torchrun --nproc_per_node=N -m genads.cli train ...`` trains with DDP (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from genads import families
from genads.data.dataset import atomic_write_text, load_dataset
from genads.data.paths import relative_to_run
from genads.data.split import SplitConfig, leave_one_out
from genads.encode.cache import DEFAULT_CACHE
from genads.eval.harness import evaluate_split_both
from genads.eval.metrics import taac_columns
from genads.parallel import PRESETS as PARALLEL_PRESETS
from genads.parallel import ParallelRecommender
from genads.parallel.catalogue import fit_codes
from genads.runs import (
    CONFIG,
    WEIGHTS,
    aligned_sids,
    load_recommender,
    load_run,
    parse_positive_actions,
    read_config,
    split_config,
)
from genads.slate.checkpoint import save_weights
from genads.slate.model import PRESETS, SlateConfig
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS, TrainConfig, init_distributed


def train_parallel(args: argparse.Namespace, rank: int, world: int) -> int:
    """``genads train --family parallel``: PQ codes from the dataset, then the parallel-code generator."""
    if args.resume:
        cfg = read_config(args.out)
        split = leave_one_out(load_dataset(cfg["dataset"]), split_config(cfg))
        rec = ParallelRecommender.load(args.out, weights=args.out / "checkpoint" / WEIGHTS)
    else:
        if args.preset not in PARALLEL_PRESETS:
            raise ValueError(f"--preset {args.preset!r}: the parallel family has {sorted(PARALLEL_PRESETS)}")
        dataset = load_dataset(args.dataset)
        split = leave_one_out(dataset, _split_config(args))
        model_cfg, train_cfg = PARALLEL_PRESETS[args.preset]
        model_cfg = replace(model_cfg, max_items=min(model_cfg.max_items, args.max_history), n_items=1)
        if args.epochs:
            train_cfg = replace(train_cfg, epochs=args.epochs)
        if args.batch_size:
            train_cfg = replace(train_cfg, batch_size=args.batch_size)
        if args.init is not None:  # the init run's codes and architecture: its weights must fit them
            families.require(args.init, "parallel", "--init")
            base = ParallelRecommender.load(args.init, weights=_init_weights(args.init))
            if len(base.item_codes) != split.n_items + 1:
                raise ValueError(f"--init {args.init}: its codes cover {len(base.item_codes) - 1} ads, this dataset "
                                 f"has {split.n_items}: continue only on a dataset with the same catalogue")
            model_cfg, codebook, codes = base.config, base.codebook, base.item_codes
            stats = {**json.loads((args.init / CONFIG).read_text()).get("codes", {}), "from": "init run"}
        else:
            sources = args.sources.split(",") if args.sources else None
            codebook, codes, stats, _ = fit_codes(dataset, split, sources=sources,
                                                  cache_dir=None if args.no_cache else args.cache_dir,
                                               seed=args.seed, progress=not args.quiet)
        rec = ParallelRecommender(codes, model_cfg, train_cfg, codebook=codebook)
        rec.init_weights = _init_weights(args.init) if args.init is not None else None
        cfg = {"family": "parallel", "dataset": relative_to_run(args.dataset, args.out), "max_history": args.max_history,
               "positive_actions": list(split.config.positive_actions), "seed": args.seed, "preset": args.preset, "codes": stats, "world_size": world,
               **({"init": relative_to_run(args.init, args.out)} if args.init is not None else {})}
        if rank == 0:  # everything but the weights first, so that a run cut off can --resume
            rec.save(args.out, weights=False)
            atomic_write_text(args.out / CONFIG, json.dumps(cfg, indent=2) + "\n")
    rec.run_dir = args.out
    log = rec.fit(split, seed=cfg["seed"], progress=not args.quiet, resume=args.resume)
    if rank == 0:
        rec.save(args.out)
        best = max((r["valid_ndcg@10"] for r in log if "valid_ndcg@10" in r), default=float("nan"))
        print(f"{args.out}: {len(log)} epochs this run on {world} process(es), best valid NDCG@10 {best:.4f}")
    return 0


def _split_config(args: argparse.Namespace) -> SplitConfig:
    return SplitConfig(max_history=args.max_history, positive_actions=parse_positive_actions(args.positive_actions))


def _init_weights(run: Path) -> Path:
    """The best weights of a finished run (``--init``)."""
    for path in (run / WEIGHTS, run / "checkpoint" / "best.safetensors", run / "checkpoint" / WEIGHTS):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{run / WEIGHTS} not found: --init takes a run folder from `genads train`")


def cmd_train(args: argparse.Namespace) -> int:
    rank, world = init_distributed()
    fam = families.run_family(args.out) if args.resume else families.family(args.family, "--family")
    return TRAINERS[fam.name](args, rank, world)


def train_sid(args: argparse.Namespace, rank: int, world: int) -> int:
    """``genads train --family sid``: the SID slate model on the Semantic IDs of ``--sids``."""
    if args.resume:
        cfg, split, sids = load_run(args.out)
        model_cfg, train_cfg = SlateConfig(**cfg["model"]), TrainConfig(**cfg["train"])
    else:
        split = leave_one_out(load_dataset(args.dataset), _split_config(args))
        sids = aligned_sids(args.sids, split)
        model_cfg = PRESETS[args.preset]
        train_cfg = TRAIN_PRESETS[args.preset]
        if args.init is not None:  # continue from a trained model: its architecture and training settings
            families.require(args.init, "sid", "--init")
            init_cfg = read_config(args.init)
            model_cfg, train_cfg = SlateConfig(**init_cfg["model"]), TrainConfig(**init_cfg["train"])
        if args.epochs:
            train_cfg = replace(train_cfg, epochs=args.epochs)
        if args.batch_size:
            train_cfg = replace(train_cfg, batch_size=args.batch_size)
        if args.user_buckets:
            model_cfg = replace(model_cfg, user_buckets=args.user_buckets)
        cfg = {"dataset": relative_to_run(args.dataset, args.out), "sids": relative_to_run(args.sids, args.out),
               "max_history": args.max_history, "positive_actions": list(split.config.positive_actions),
               "seed": args.seed, "preset": args.preset, "model": asdict(model_cfg), "train": asdict(train_cfg), "world_size": world,
               **({"init": relative_to_run(args.init, args.out)} if args.init is not None else {})}
    rec = SlateRecommender(sids, model_cfg, train_cfg, run_dir=args.out)
    if args.init is not None and not args.resume:
        rec.init_weights = _init_weights(args.init)
    if rank == 0 and not args.resume:
        cfg["model"] = asdict(rec.config)
        atomic_write_text(args.out / CONFIG, json.dumps(cfg, indent=2) + "\n")
    try:
        log = rec.fit(split, seed=cfg["seed"], progress=not args.quiet, resume=args.resume)
    except RuntimeError as e:
        if rec.init_weights is None or "size mismatch" not in str(e):
            raise
        raise ValueError(f"--init {args.init}: its weights do not fit this run's SIDs and catalogue (tokenize the "
                         f"new dataset with the same SIDs: --sids of the init run): {str(e).splitlines()[0]}") from None
    if rank == 0:
        save_weights(rec.model, args.out / WEIGHTS)
        best = max((r["valid_ndcg@10"] for r in log if "valid_ndcg@10" in r), default=float("nan"))
        print(f"{args.out}: {len(log)} epochs this run on {world} process(es), best valid NDCG@10 {best:.4f}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from genads.baselines import BASELINES

    cfg, split, rec = load_recommender(args.run)
    rows, results = [], {}
    models = [rec] + [BASELINES[name]() for name in args.baselines.split(",") if name]
    for model in models:
        if model is not rec:
            model.fit(split, seed=cfg["seed"], progress=not args.quiet)
        results[model.name] = evaluate_split_both(model, split)
        for protocol, test in (("all", results[model.name]["test"]),
                               ("excl", results[model.name]["history_ruled_out"]["test"])):
            rows.append(f"{model.name:18s} [{protocol:4s}] R@5 {test['recall@5']:.4f}  N@5 {test['ndcg@5']:.4f}  "
                        f"R@10 {test['recall@10']:.4f}  N@10 {test['ndcg@10']:.4f}"
                        + taac_columns(test, split.test.target_action))
    rows.append("[all] = nothing ruled out; [excl] = the user's history ruled out")
    print("\n".join(rows))
    atomic_write_text(args.run / "eval.json", json.dumps(results, indent=2) + "\n")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from genads.runs import load

    run = load(args.run)  # the library call a notebook makes: genads.load(run).recommend(user=..., k=...)
    try:
        slate = run.recommend(user=args.user, k=args.k)
        n_past = len(run.history(args.user))
    except KeyError as exc:
        raise ValueError(f"--user {args.user}: {exc.args[0]}") from None
    codes = run.codes
    print(f"user {args.user}: {n_past} past ads; slate of {args.k}:")
    for row in slate.itertuples():
        item = run.split.index_of(np.array([run.dataset.vocab.index_of("ad", row.ad)], dtype=np.int64))[0]
        sid = "-".join(map(str, codes[item][:8])) + ("-..." if codes.shape[1] > 8 else "")
        print(f"{row.rank:3d}. ad {row.ad}  [{sid}]  logp {row.score:7.3f}  {row.title or '(no title)'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a generative model: SID slate model or parallel codes (DDP under torchrun)")
    p.add_argument("dataset", type=Path, nargs="?", help="dataset folder (genads data import); not with --resume")
    p.add_argument("--family", choices=sorted(families.FAMILIES), default=families.DEFAULT,
                   help="sid: Semantic IDs + beam search (needs --sids); parallel: PQ codes + exact scoring")
    p.add_argument("--sids", type=Path, help="folder with sids.parquet (genads tokenize); --family sid")
    p.add_argument("--sources", help="--family parallel: item-vector sources (text,attributes,collab,embedding; "
                   "default: all the dataset has)")
    p.add_argument("--preset", choices=sorted(set(PRESETS) | set(PARALLEL_PRESETS)), default="small",
                   help="architecture + training preset (the family's own presets)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--init", type=Path, help="start from this run's trained model (same family, codes and catalogue) "
                   "instead of a fresh one, e.g. to retrain on data with the served log added")
    p.add_argument("--epochs", type=int, help="override the preset's maximum epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's global batch size")
    p.add_argument("--max-history", type=int, default=50, help="items of history a model reads (default: %(default)s)")
    p.add_argument("--positive-actions", default="click,conversion",
                   help="actions that are training positives and evaluation targets, from impression,click,conversion "
                        "(an imported 'view' is an impression) (default: %(default)s)")
    p.add_argument("--user-buckets", type=int, default=0,
                   help="add a user token: user ids hashed into this many buckets (0 = none)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                   help="--family parallel: the MiniLM text-vector cache, shared with `genads tokenize` "
                        "(default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the text-vector cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_checked_train)

    p = sub.add_parser("eval", help="evaluate a trained slate model (full ranking) beside the baselines")
    p.add_argument("run", type=Path, help="run folder from `genads train`")
    p.add_argument("--baselines", default="popularity", help="comma-separated from popularity,sasrec ('' for none)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("recommend", help="print a user's slate (ads with titles) from a trained slate model")
    p.add_argument("run", type=Path, help="run folder from `genads train`")
    p.add_argument("--user", required=True, help="user id as in the input data (u17, or an integer)")
    p.add_argument("-k", type=int, default=10, help="slate size")
    p.set_defaults(func=cmd_recommend)


def _checked_train(args: argparse.Namespace) -> int:
    if not args.resume and args.dataset is None:
        raise ValueError("train needs DATASET (or --resume with an existing --out)")
    if not args.resume and families.family(args.family, "--family").codes_from_tokenizer and args.sids is None:
        raise ValueError(f"train --family {args.family} needs --sids (a genads tokenize folder); "
                         "--family parallel makes its codes")
    return cmd_train(args)


TRAINERS = {"sid": train_sid, "parallel": train_parallel}
"""How each family trains (``genads.families`` names them)."""
