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
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from _common import print_table, save
from genads.commands.simulate import load_config
from genads.market.config import to_dict
from genads.market.value_study import MARKETS, default_study, run_study

ROOT = Path(__file__).resolve().parents[1]
EGA = {"rpm": 0.197, "ctr": 0.097}
"""EGA's published changes over its cascade (RPM +19.7%, CTR +9.7%; Ψ 3.6% -> 2.7%)."""


def rows(summary: dict) -> list[dict]:
    out = []
    for name, metrics in summary["variants"].items():
        row = {"variant": name}
        for m in ("rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi"):
            stat = metrics[m]
            lift = stat.get("lift_vs_cascade")
            row[m] = f"{stat['mean']:.4g}" + (f" ({lift['mean']:+.1%} [{lift['ci95'][0]:+.1%}, {lift['ci95'][1]:+.1%}])"
                                              if lift else "")
        out.append(row)
    return out


def curves_figure(per_seed: list[dict]) -> plt.Figure:
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for s in per_seed:
        curve = s["training"]["rl"]["curve"]
        steps = [r["step"] for r in curve]
        for ax, key in zip(axes, ("reward", "revenue", "clicks", "kl"), strict=True):
            ax.plot(steps, [r[key] for r in curve], label=f"seed {s['seed']}", lw=1)
            ax.set_title(f"RL {key} per list (sampled policy)")
            ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


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
        print_table(rows(summary), f"{market} market: mean (paired lift over the cascade [95% CI]) over seeds "
                                   f"{args.seeds}")
        print_table([{k: (f"{v:+.3f}" if isinstance(v, float) else v) for k, v in t.items()}
                     for t in summary["criteria"]], f"{market} market: criteria for e2e_rl (Holm-adjusted)")
    rl = [s["training"]["rl"] for s in result["per_seed"]]
    print("RL, expected reward of the greedy pipeline at truthful bids (GSP), before -> after: "
          + ", ".join(f"{r['expected_before']['reward']:.3f}->{r['expected_after']['reward']:.3f}" for r in rl))
    out_dir = ROOT / "runs" / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = curves_figure(result["per_seed"])
    fig.savefig(out_dir / "rl_curves.png", dpi=110)
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
