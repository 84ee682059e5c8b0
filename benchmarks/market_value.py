"""Issue 15: a tuned cascade against value-aware end to end (parallel generator), before and after list-wise RL.

Tunes both sides on the tuning seeds (the cascade's retriever loss and candidate count; the RL reward mix),
then, per evaluation seed, trains everything on that seed's logs, fine-tunes the end-to-end generation with
RL on its own simulated traffic, and serves one episode per variant in the budget-bound market of
configs/market.yaml and in the same market with budgets x100. Prints the lifts over the cascade with paired
95% intervals and Holm-adjusted criteria, plots the RL curves, writes benchmarks/results/NAME.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/market_value.py [--seeds 1,2,3,4,5] [--name market_value]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch

from _common import print_table, save
from genads.commands.simulate import load_config
from genads.market.config import to_dict
from genads.market.value_report import EGA, criteria_rows, curves_figure, rl_rows, variant_rows
from genads.market.value_study import MARKETS, default_study, run_study

ROOT = Path(__file__).resolve().parents[1]
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "market.yaml")
    parser.add_argument("--name", default="market_value")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--tuning-seeds", default="0")
    parser.add_argument("--rl-steps", type=int, default=None, help="override RL steps (quick checks)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim = load_config(args.config)
    study = default_study(sim, tuple(int(s) for s in args.seeds.split(",")))
    study = replace(study, tuning_seeds=tuple(int(s) for s in args.tuning_seeds.split(",")))
    if args.rl_steps:
        study = replace(study, rl=replace(study.rl, steps=args.rl_steps))
    start = time.perf_counter()
    result = run_study(study)
    wall = time.perf_counter() - start
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for market in MARKETS:
        summary = result["summary"][market]
        print_table(variant_rows(summary), f"{market} market: mean (paired lift over the cascade [95% CI]) over "
                                           f"seeds {args.seeds}")
        print_table(criteria_rows(summary), f"{market} market: criteria for e2e_rl (Holm-adjusted)")
    print_table(rl_rows(result["per_seed"]), "RL: the greedy pipeline's expected reward at truthful bids (GSP)")
    out_dir = ROOT / "runs" / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    curves_figure(result["per_seed"]).savefig(out_dir / "rl_curves.png", dpi=110)
    figures = {**result, "config": {"sim": to_dict(study.sim), "parallel": to_dict(study.parallel),
                                    "rl": to_dict(study.rl), "cascade_grid": [list(c) for c in study.cascade_grid],
                                    "rl_revenue_weights": list(study.rl_revenue_weights)},
               "config_file": (str(args.config.resolve().relative_to(ROOT)) if args.config.resolve().is_relative_to(ROOT)
                               else str(args.config)),
               "ega_published_lift": EGA, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
               "torch_threads": 1, "rl_curves_png": str((out_dir / "rl_curves.png").relative_to(ROOT)),
               "given": "both sides: the seed's click histories and exploration impression log; e2e additionally "
                        "rl.steps x rl.requests x rl.group lists of simulated feedback during RL (interactions)"}
    print(f"wall {wall:.0f}s, CPU {cpu:.0f}s; wrote {save(args.name, figures)}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
