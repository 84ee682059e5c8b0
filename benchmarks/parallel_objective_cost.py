"""CPU cost of one training step of the parallel generator, per item-softmax variant, on real Beauty / Sports batches.

The full softmax (``negatives='all'``) scores every catalogue item at every position: its (M, n_items) product is
most of a step. This measures, on the first batches of a real epoch (the 'hybrid-aug' preset's model, batches and
augmentation; one torch thread), the CPU seconds of a step — forward, backward and the Adam update — for shared
negatives, the full softmax, and the full softmax with its product in bfloat16 (``item_bf16``), and the CPU
seconds an epoch of such steps costs. Each variant starts from the same initial weights and optimiser state.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/parallel_objective_cost.py --sid-cache /work/cache/gen
"""

# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from benchmarks._common import print_table, save
from benchmarks._parallel_bench import build_parallel, load_split

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon"
VARIANTS = {"shared 2048": [], "all (full softmax)": ["parallel.negatives=all"],
            "all, bf16 product": ["parallel.negatives=all", "parallel.item_bf16=true"]}


def step_seconds(name: str, sets: list[str], args: argparse.Namespace, dataset, split) -> dict:
    from genads.parallel.model import ParallelModel
    from genads.parallel.objective import Objective
    from genads.parallel.train import _batches, batch_windows, next_item_windows

    rec, _, _ = build_parallel(dataset, split, DATA, name, args.seed, sets, args.sid_cache, args.preset)
    cfg = rec.train
    torch.manual_seed(args.seed)
    model = ParallelModel(rec.config)  # as fit builds it
    objective = Objective(model, torch.from_numpy(rec.item_codes), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    windows = torch.from_numpy(next_item_windows(split, model.config.max_items))
    batches = _batches((windows > 0).sum(1).numpy(), cfg, args.seed, 0, 1)
    seconds, positions = [], []
    for i, batch in enumerate(batches[:args.steps + 1]):
        inputs, targets, gen = batch_windows(windows, batch, cfg, args.seed, i)  # as step i of fit
        norm = (targets > 0).sum().float().clamp(min=1.0)
        start = time.process_time()
        model.train()
        loss, _ = objective(inputs, targets, gen, norm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step warms the allocator up
            seconds.append(time.process_time() - start)
            positions.append(int(norm))
    per_step = float(np.median(seconds))
    return {"cpu_s_per_step": per_step, "cpu_s_per_epoch": per_step * len(batches), "steps_per_epoch": len(batches),
            "positions_per_step": float(np.mean(positions)), "steps_timed": len(seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--names", nargs="+", default=["Beauty", "Sports_and_Outdoors"])
    ap.add_argument("--preset", default="hybrid-aug")
    ap.add_argument("--steps", type=int, default=12, help="steps timed per variant (after one warm-up step)")
    ap.add_argument("--sid-cache", type=Path, default=Path("runs/cache/gen"), help="the parallel codes' cache")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--tag", default="", help="suffix of the result file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows, figures = [], {}
    for name in args.names:
        dataset, split = load_split(DATA, name)
        for variant in args.variants:
            sets = VARIANTS[variant]
            r = step_seconds(name, sets, args, dataset, split)
            figures[f"{name} / {variant}"] = {"sets": sets, **r}
            rows.append({"data": name, "item softmax": variant, "positions / step": round(r["positions_per_step"]),
                         "CPU s / step": r["cpu_s_per_step"], "CPU s / epoch": round(r["cpu_s_per_epoch"])})
            print(rows[-1], flush=True)
    print_table(rows)
    path = save("parallel_objective_cost" + (f"_{args.tag}" if args.tag else ""),
                {"preset": args.preset, "steps": args.steps, "rows": figures, "threads": torch.get_num_threads()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
