"""Does a trained hybrid parallel generator gain from another weight on its code term, chosen on validation?

Rescores a checkpoint of ``beauty_generative.py --family parallel`` (its run folder's ``parallel/checkpoint``)
with ``a · code term + ID term`` for a grid of ``a``, on validation with the history ruled out (the headline
protocol), then tests the chosen ``a`` beside ``a`` = 1 (the model as trained) under both protocols. Give the
same ``--name``, ``--parallel-preset`` and ``--set`` as the run that trained the checkpoint.

    python benchmarks/parallel_code_weight.py --checkpoint RUN_DIR/parallel/checkpoint/best.safetensors \\
        --parallel-preset hybrid-od --set parallel.item_temperature=5.0 --set parallel.id_weight=2285.714285714286 \\
        --tag beauty_od_idonly
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import print_table, save
from _parallel_bench import build_parallel, load_protocol_split

GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="the trained weights (safetensors)")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon")
    ap.add_argument("--name", default="Beauty")
    ap.add_argument("--parallel-preset", default="hybrid-od")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sid-cache", type=Path, default=Path(__file__).resolve().parents[1] / "runs" / "beauty-gen-cache")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from genads.eval.harness import evaluate
    from genads.parallel.model import ParallelModel
    from genads.slate.checkpoint import load_weights

    dataset, split, _ = load_protocol_split(args.data, args.name, True)
    rec, _, _ = build_parallel(dataset, split, args.data, args.name, args.seed, args.set, args.sid_cache,
                               args.parallel_preset)
    rec.model = ParallelModel(rec.config)
    load_weights(rec.model, args.checkpoint)
    rec.model.eval()
    model = rec.model
    if not model.scores_ids:
        raise SystemExit(f"{args.checkpoint}: the model has no ID term (id_weight 0): nothing to weigh against")
    as_trained = model.item_queries
    width = model.config.n_codes * model.config.d_code  # the code part of a query; the ID part follows

    def weighted(a: float):
        def queries(h):
            q = as_trained(h).clone()
            q[:, :width] *= a
            return q
        return queries

    grid = {}
    for a in GRID:
        model.item_queries = weighted(a)
        grid[a] = evaluate(rec, split.valid, ks=(10,), exclude_history=True)
        print(f"a={a:g}: valid R@10 {grid[a]['recall@10']:.4f} N@10 {grid[a]['ndcg@10']:.4f}", flush=True)
    best = max(GRID, key=lambda a: (grid[a]["recall@10"], -abs(a - 1.0)))
    rows = []
    for a in sorted({1.0, best}):
        model.item_queries = weighted(a)
        for protocol, excl in (("history ruled out", True), ("nothing ruled out", False)):
            t = evaluate(rec, split.test, ks=(10,), exclude_history=excl)
            rows.append({"a": a, "chosen": a == best, "protocol": protocol, "recall@10": t["recall@10"],
                         "ndcg@10": t["ndcg@10"], "valid_recall@10 (excl)": grid[a]["recall@10"]})
    print_table(rows, f"{args.name}: code-term weight a, chosen on validation R@10 (history ruled out)")
    name = f"{args.name.lower()}_parallel_code_weight" + (f"_{args.tag}" if args.tag else "")
    out = save(name, {"dataset": args.name, "checkpoint": str(args.checkpoint), "preset": args.parallel_preset,
                      "sets": args.set, "valid_grid": {str(a): grid[a] for a in GRID}, "chosen_a": best,
                      "table": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
