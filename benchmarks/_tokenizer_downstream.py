"""`tokenizers.py --downstream`: the same generator trained on each tokenizer's IDs (issue 17).

For every data set (S3-Rec Amazon files: Beauty, Sports_and_Outdoors) and seed:

* **SID family** - the generative slate model (``genads.slate``, one preset for all) on the SIDs of
  RQ-KMeans, RQ-VAE and the end-to-end tokenizer (parallel heads = UniSID; residual-conditioned heads
  with collision-aware assignment = issue 17), 3 levels x 256 + a disambiguation level;
* **parallel family** - the parallel-code generator (``genads.parallel``, codes only: no ID embedding, so
  the codes carry everything) on PQ, OPQ and learned (OPQ refined as a differentiable PQ) 32 x 256 codes.

Every tokenizer reads the same item vectors: attribute multi-hot + collaborative PPMI-SVD vectors from
the *training* sequences only; the e2e side inputs (attribute tokens, co-occurring pairs) come from the
training sequences too. Each generator is early-stopped on validation NDCG@10 (``eval_users`` evenly
spaced validation users) and evaluated by full ranking on all test users. "Best" per family = best
*validation* NDCG@10 (two-stage and e2e chosen separately); the gain is e2e-best over two-stage-best on test.
Each (data, seed, family, tokenizer) row is saved as soon as it finishes, so a cut-off run keeps its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

SID_TOKENIZERS = ("rq-kmeans", "rq-vae", "e2e", "e2e-residual")
PARALLEL_CODES = ("pq", "opq", "learned")
TWO_STAGE = {"rq-kmeans", "rq-vae", "pq", "opq"}
KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


def item_inputs(dataset, split, seed: int) -> tuple[np.ndarray, object, np.ndarray]:
    """(fused vectors in item-index order minus 1, e2e features, co-occurring pairs), training events only."""
    from genads.encode.attributes import multi_hot
    from genads.encode.collaborative import collaborative_vectors, cooccurring_pairs
    from genads.encode.fusion import fuse
    from genads.encode.tokens import item_tokens
    from genads.tokenize import ItemFeatures

    order = split.index_of(dataset.catalogue["ad_id"].to_numpy()) - 1  # catalogue row -> item index - 1
    if sorted(order.tolist()) != list(range(split.n_items)):
        raise ValueError("catalogue rows and split items do not match one to one")
    rows = np.argsort(order)  # item index - 1 -> catalogue row
    train_rows = [s - 1 for s in split.train]  # item positions of the training sequences only
    attrs = multi_hot(dataset.catalogue["attributes"].tolist())[0][rows]
    vectors = fuse({"attributes": attrs, "collab": collaborative_vectors(train_rows, split.n_items, seed=seed)})
    tokens, vocab = item_tokens(dataset.catalogue.iloc[rows].reset_index(drop=True))
    pairs = cooccurring_pairs(train_rows)
    return vectors, ItemFeatures(tokens=tokens, vocab_size=len(vocab), pairs=pairs), pairs


def sid_tokenizer(name: str, args: argparse.Namespace):
    from genads.tokenize import (
        RQKMeansConfig,
        RQKMeansTokenizer,
        RQVAEConfig,
        RQVAETokenizer,
        UniSIDConfig,
        UniSIDTokenizer,
    )

    if name == "rq-kmeans":
        return RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=256))
    if name == "rq-vae":
        return RQVAETokenizer(RQVAEConfig(levels=3, codebook_size=256, epochs=args.rqvae_epochs))
    cfg = UniSIDConfig(levels=3, codebook_size=256, epochs=args.e2e_epochs)
    if name == "e2e-residual":
        cfg = replace(cfg, conditioning="residual", collision_aware=True)
    return UniSIDTokenizer(cfg)


def sid_codes(name: str, vectors: np.ndarray, features, args, seed: int) -> tuple[np.ndarray, dict]:
    from genads.tokenize.metrics import level_stats

    tok = sid_tokenizer(name, args)
    start, cpu = time.perf_counter(), time.process_time()
    codes = tok.fit(vectors, seed=seed, **({"features": features} if name.startswith("e2e") else {}))
    stats = {"fit_s": round(time.perf_counter() - start, 1), "fit_cpu_s": round(time.process_time() - cpu, 1),
             "collision_rate": round(1 - len(np.unique(codes, axis=0)) / len(codes), 4),
             "codes_used_levels": [int(r["used"]) for r in level_stats(codes, 256)],
             "perplexity_levels": [round(r["perplexity"], 1) for r in level_stats(codes, 256)],
             "config": asdict(tok.config), "fit_history_last": (tok.history[-1] if getattr(tok, "history", None) else None)}
    return codes, stats


_BOOKS: dict = {}


def parallel_codes(name: str, vectors: np.ndarray, pairs: np.ndarray, args, seed: int) -> tuple[np.ndarray, dict]:
    from genads.parallel.learned_codes import LearnedCodesConfig, refine_codebook
    from genads.tokenize.pq import PQCodebook, PQConfig

    start, cpu = time.perf_counter(), time.process_time()
    key = (seed, name != "pq")  # _BOOKS is cleared whenever the vectors change
    fresh = key not in _BOOKS
    if fresh:  # "learned" starts from the very OPQ codebook of the "opq" row (fitted once)
        _BOOKS[key] = (PQCodebook.fit(vectors, PQConfig(seed=seed, opq=name != "pq")),
                       time.perf_counter() - start, time.process_time() - cpu)
    book, base_s, base_cpu = _BOOKS[key]
    if not fresh:  # the reported fit time includes the OPQ fit even when it was reused
        start, cpu = start - base_s, cpu - base_cpu
    extra: dict = {}
    if name == "learned":
        cfg = LearnedCodesConfig(epochs=args.learned_epochs)
        book, history = refine_codebook(book, vectors, pairs, cfg, seed=seed)
        extra = {"learned": asdict(cfg), "history_first": history[0], "history_last": history[-1]}
    codes = book.encode(vectors)
    used = [len(np.unique(codes[:, j])) for j in range(codes.shape[1])]
    return codes, {"fit_s": round(time.perf_counter() - start, 1), "fit_cpu_s": round(time.process_time() - cpu, 1),
                   "collision_rate": round(1 - len(np.unique(codes, axis=0)) / len(codes), 4),
                   "codes_used_mean": round(float(np.mean(used)), 1), "codes_used_min": min(used),
                   "pq": asdict(book.config), **extra}


def train_eval(family: str, codes: np.ndarray, split, args, seed: int) -> dict:
    """Train the family's generator on ``codes`` (item index - 1 order) and evaluate on all test users."""
    from genads.eval.harness import evaluate

    start, cpu = time.perf_counter(), time.process_time()
    if family == "sid":
        from genads.slate.model import PRESETS
        from genads.slate.recommender import SlateRecommender
        from genads.slate.train import TRAIN_PRESETS
        from genads.tokenize import disambiguate

        sids = np.zeros((split.n_items + 1, 4), dtype=np.int64)
        sids[1:] = disambiguate(codes)
        train = replace(TRAIN_PRESETS[args.preset], time_budget_s=args.budget_min * 60,
                        **({"epochs": args.gen_epochs} if args.gen_epochs else {}),
                        **({"eval_users": args.eval_users} if args.eval_users else {}),
                        **({"eval_every": args.eval_every} if args.eval_every else {}),
                        **({"warmup_steps": args.warmup} if args.warmup is not None else {}))
        model = SlateRecommender(sids, PRESETS[args.preset], train)
        extra = {"disambiguation_vocab": int(sids[:, -1].max() + 1)}
    else:
        from genads.parallel import PRESETS, ParallelRecommender

        arch, train = PRESETS["beauty"]
        train = replace(train, time_budget_s=args.budget_min * 60, **({"epochs": args.gen_epochs} if args.gen_epochs else {}),
                        **({"eval_users": args.eval_users} if args.eval_users else {}),
                        **({"eval_every": args.eval_every} if args.eval_every else {}),
                        **({"warmup_steps": args.warmup} if args.warmup is not None else {}))
        by_index = np.zeros((split.n_items + 1, codes.shape[1]), dtype=np.int64)
        by_index[1:] = codes
        model = ParallelRecommender(by_index, replace(arch, n_items=0), train)
        extra = {}
    log = model.fit(split, seed=seed, progress=False)
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    test = evaluate(model, split.test, ks=(10, 20))
    valid = [r["valid_ndcg@10"] for r in log if r.get("valid_ndcg@10") is not None]
    return {"epochs": len(log), "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1),
            "stopped_by_time_budget": any(r.get("stopped_by_time_budget") for r in log),
            "best_valid_ndcg@10": max(valid) if valid else None, **{k: test[k] for k in KEYS},
            "log": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in log], **extra}


def summarise(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(mean/sd per data x family x tokenizer, e2e-best vs two-stage-best per data x family)."""
    import pandas as pd

    done = [r for r in rows if "recall@10" in r]
    if not done:
        return [], []
    frame = pd.DataFrame(done)
    summary = []
    for (data, family, tok), g in frame.groupby(["data", "family", "tokenizer"], sort=False):
        summary.append({"data": data, "family": family, "tokenizer": tok, "kind": "two-stage" if tok in TWO_STAGE else "e2e",
                        "seeds": len(g), "valid_ndcg@10": round(g["best_valid_ndcg@10"].mean(), 5),
                        **{f"{m}": round(g[m].mean(), 5) for m in ("recall@10", "ndcg@10")},
                        **{f"{m}_sd": round(g[m].std(ddof=0), 5) for m in ("recall@10", "ndcg@10")},
                        "collision_rate": round(g["collision_rate"].mean(), 4),
                        "fit_cpu_s": round(g["fit_cpu_s"].mean(), 1), "train_cpu_s": round(g["train_cpu_s"].mean(), 1)})
    gains = []
    for (data, family), _ in frame.groupby(["data", "family"], sort=False):
        mine = [r for r in summary if r["data"] == data and r["family"] == family]
        two = [r for r in mine if r["kind"] == "two-stage"]
        e2e = [r for r in mine if r["kind"] == "e2e"]
        if not two or not e2e:
            continue
        b2 = max(two, key=lambda r: r["valid_ndcg@10"])
        be = max(e2e, key=lambda r: r["valid_ndcg@10"])
        gains.append({"data": data, "family": family, "best_two_stage (by valid)": b2["tokenizer"],
                      "best_e2e (by valid)": be["tokenizer"], "seeds": min(b2["seeds"], be["seeds"]),
                      "gain_recall@10": round(be["recall@10"] / b2["recall@10"] - 1, 4),
                      "gain_ndcg@10": round(be["ndcg@10"] / b2["ndcg@10"] - 1, 4),
                      "e2e_collision_rate": be["collision_rate"],
                      "target_met": bool(be["recall@10"] / b2["recall@10"] - 1 >= 0.046 and be["collision_rate"] <= 0.05)})
    return summary, gains


def run(args: argparse.Namespace, print_table, save) -> None:
    from _parallel_bench import file_sha, load_split

    name = "tokenizers_downstream" + (f"_{args.tag}" if args.tag else "")
    out_path = Path(__file__).parent / "results" / f"{name}.json"
    rows: list[dict] = []
    if args.resume and out_path.is_file():
        rows = json.loads(out_path.read_text())["figures"]["rows"]
    done = {(r["data"], r["seed"], r["family"], r["tokenizer"]) for r in rows}
    protocol = {k: getattr(args, k) for k in ("preset", "budget_min", "gen_epochs", "eval_users", "eval_every", "warmup",
                                                "e2e_epochs", "rqvae_epochs", "learned_epochs")}
    for data in args.data_sets:
        dataset, split = load_split(args.data, data)
        for seed in args.seeds:
            vectors, features, pairs = item_inputs(dataset, split, seed)
            _BOOKS.clear()
            for family, names in (("sid", args.sid_tokenizers), ("parallel", args.parallel_codes)):
                for tok in names:
                    if (data, seed, family, tok) in done:
                        continue
                    print(f"[{time.strftime('%H:%M:%S')}] {data} seed {seed} {family} {tok}: codes", flush=True)
                    codes, stats = (sid_codes(tok, vectors, features, args, seed) if family == "sid"
                                    else parallel_codes(tok, vectors, pairs, args, seed))
                    print(f"  {({k: stats[k] for k in ('fit_cpu_s', 'collision_rate')})}; training", flush=True)
                    result = train_eval(family, codes, split, args, seed)
                    row = {"data": data, "seed": seed, "family": family, "tokenizer": tok,
                           "data_sha256": file_sha(args.data / f"{data}.txt")[:16], **stats, **result,
                           "loadavg": round(os.getloadavg()[0], 2)}
                    print({k: row[k] for k in ("tokenizer", "epochs", "train_cpu_s", "best_valid_ndcg@10",
                                               "recall@10", "ndcg@10")}, flush=True)
                    rows.append(row)
                    summary, gains = summarise(rows)
                    save(name, {"protocol": protocol, "rows": rows, "summary": summary, "gains": gains, "note": NOTE})
    summary, gains = summarise(rows)
    print_table(summary, f"Downstream ({args.preset} preset, {args.budget_min} min budget per generator): test, mean over seeds")
    print_table(gains, "e2e (best by validation) vs two-stage (best by validation), relative gain on test")
    print(f"\nwrote {save(name, {'protocol': protocol, 'rows': rows, 'summary': summary, 'gains': gains, 'note': NOTE})}")


NOTE = ("Per (data, seed): one set of item vectors (attributes + training-only PPMI-SVD) shared by every tokenizer; "
        "each generator (same preset, same seed, same time budget) early-stopped on validation NDCG@10 over "
        "eval_users evenly spaced validation users, then full ranking over all items for all test users, "
        "nothing ruled out. collision_rate = share of items sharing their full code before any disambiguation "
        "level. The SID slate model gets a disambiguation level in every case; the parallel generator reads codes "
        "only (no ID embedding). Target of issue 17: gain_recall@10 >= +4.6% with e2e collisions <= 5%.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("--downstream (issue 17)")
    g.add_argument("--downstream", action="store_true", help="train the same generator on each tokenizer's IDs")
    g.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon",
                   help="folder of the S3-Rec files NAME.txt + NAME_item2attributes.json")
    g.add_argument("--data-sets", nargs="*", default=["Beauty", "Sports_and_Outdoors"])
    g.add_argument("--sid-tokenizers", nargs="*", default=list(SID_TOKENIZERS), choices=SID_TOKENIZERS)
    g.add_argument("--parallel-codes", nargs="*", default=list(PARALLEL_CODES), choices=PARALLEL_CODES)
    g.add_argument("--preset", default="beauty", help="slate preset (model + train) of the SID family")
    g.add_argument("--budget-min", type=float, default=100.0, help="training time budget per generator (minutes)")
    g.add_argument("--gen-epochs", type=int, default=0, help="epoch cap per generator (0: the preset's)")
    g.add_argument("--eval-users", type=int, default=0, help="validation users for early stopping (0: the preset's)")
    g.add_argument("--eval-every", type=int, default=0, help="validate every N epochs (0: the preset's)")
    g.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: the preset's)")
    g.add_argument("--e2e-epochs", type=int, default=30, help="e2e tokenizer epochs")
    g.add_argument("--rqvae-epochs", type=int, default=30, help="RQ-VAE epochs")
    g.add_argument("--learned-epochs", type=int, default=20, help="learned long codes: refinement epochs")
    g.add_argument("--resume", action="store_true", help="keep the rows of an earlier run with the same tag")
    g.add_argument("--stability", action="store_true", help="only the code-stability-after-retrain table (synthetic)")
    g.add_argument("--stability-items", type=int, default=2000, help="--stability: catalogue size")
    g.add_argument("--level-entropy", action="store_true",
                   help="only: collisions and conditional level entropies of e2e-residual before/after the "
                        "collision-aware re-assignment, beside RQ-KMeans (first data set and seed)")



def stability_rows(args: argparse.Namespace, print_table, save) -> None:
    """Share of unchanged codes after a retrain on the catalogue + 5% new items (same seed), per tokenizer.

    Synthetic clustered items (tokenizers.synthetic), L = 3, K = 16: a small catalogue where a retrain is cheap.
    """
    from genads.tokenize import (
        RQKMeansConfig,
        RQKMeansTokenizer,
        RQVAEConfig,
        RQVAETokenizer,
        UniSIDConfig,
        UniSIDTokenizer,
    )
    from genads.tokenize.stability import retrain_stability
    from tokenizers import synthetic

    n, k = args.stability_items, 16
    x = synthetic(n + n // 20, dim=32, seed=0)
    e2e = UniSIDConfig(levels=3, codebook_size=k, epochs=args.e2e_epochs)
    makers = {"rq-kmeans": lambda: RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=k)),
              "rq-vae": lambda: RQVAETokenizer(RQVAEConfig(levels=3, codebook_size=k, epochs=args.rqvae_epochs)),
              "e2e": lambda: UniSIDTokenizer(e2e),
              "e2e-residual": lambda: UniSIDTokenizer(replace(e2e, conditioning="residual"))}
    rows = []
    for seed in args.seeds:
        for name, make in makers.items():
            start = time.process_time()
            s = retrain_stability(make, x[:n], x[n:], seed=seed)
            rows.append({"tokenizer": name, "seed": seed, "items": s["items"], "new_items": s["new_items"],
                         "unchanged": round(s["unchanged"], 4), "unchanged_levels": [round(v, 4) for v in s["unchanged_levels"]],
                         "cpu_s": round(time.process_time() - start, 1)})
            print(rows[-1], flush=True)
    print_table(rows, f"Code stability: {n} synthetic items, retrained with {n // 20} new ones (same seed)")
    save("tokenizers_stability" + (f"_{args.tag}" if args.tag else ""),
         {"rows": rows, "note": "share of the old items whose full code (and each level) is unchanged after a "
          "retrain from scratch on the catalogue + 5% new items, same seed; e2e epochs = --e2e-epochs"})


def conditional_entropies(codes: np.ndarray) -> list[float]:
    """[H(l1), H(l2 | l1), ...] in bits, from the empirical code table (n, L)."""
    def h(prefix: np.ndarray) -> float:
        _, counts = np.unique(prefix, axis=0, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())
    joint = [h(codes[:, : level + 1]) for level in range(codes.shape[1])]
    return [round(joint[0], 3)] + [round(joint[i] - joint[i - 1], 3) for i in range(1, len(joint))]


def level_entropy_rows(args: argparse.Namespace, print_table, save) -> None:
    """How much of e2e-residual's collision-free result is the heads and how much the re-assignment.

    Fits e2e-residual with collision-aware assignment (the --downstream row's settings, same inputs and seed),
    then reads the heads' own greedy codes (``encode``: the codes before the re-assignment) beside the fit's
    re-assigned ones, and RQ-KMeans on the same vectors.
    """
    from _parallel_bench import load_split

    data, seed = args.data_sets[0], args.seeds[0]
    dataset, split = load_split(args.data, data)
    vectors, features, _ = item_inputs(dataset, split, seed)
    rows = []
    codes, stats = sid_codes("rq-kmeans", vectors, features, args, seed)
    tables = {"rq-kmeans": (codes, stats)}
    tok = sid_tokenizer("e2e-residual", args)
    start = time.process_time()
    resolved = tok.fit(vectors, seed=seed, features=features)
    fit_cpu = round(time.process_time() - start, 1)
    tables["e2e-residual, heads' greedy codes"] = (tok.encode(vectors, features), {"fit_cpu_s": fit_cpu})
    tables["e2e-residual, after collision-aware re-assignment"] = (resolved, {"fit_cpu_s": fit_cpu})
    for name, (c, s) in tables.items():
        rows.append({"data": data, "seed": seed, "codes": name, "fit_cpu_s": s["fit_cpu_s"],
                     "collision_rate": round(1 - len(np.unique(c, axis=0)) / len(c), 4),
                     "cond_entropy_bits": conditional_entropies(c), "log2_items": round(float(np.log2(len(c))), 3)})
        print(rows[-1], flush=True)
    moved = float((tables["e2e-residual, heads' greedy codes"][0] != resolved).any(1).mean())
    print_table(rows, f"{data} seed {seed}: collisions and conditional level entropies (bits)")
    save("tokenizers_level_entropy" + (f"_{args.tag}" if args.tag else ""),
         {"rows": rows, "reassigned_share": round(moved, 4), "e2e_epochs": args.e2e_epochs,
          "note": "H(l1), H(l2|l1), H(l3|l1,l2) of the code table; reassigned_share = items whose code the "
                  "collision-aware step changed"})
