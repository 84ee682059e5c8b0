"""The cascade against genads end to end on the ad-market simulator (issue 6).

Runs ``genads simulate``'s comparison (default: configs/market.yaml, 3 seeds), prints the
comparison table with 95% intervals and EGA's published changes beside ours, and writes
benchmarks/results/NAME.json plus runs/NAME/report.html. Run it through /work/cpu-slot (one thread):

    /work/cpu-slot .venv/bin/python benchmarks/market_compare.py [--config configs/market.yaml] [--name market_compare]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch

from _common import print_table, save
from genads.commands.simulate import load_config, write_run
from genads.market.compare import run_comparison
from genads.market.config import to_dict
from genads.market.report import comparison_rows, ega_rows, verdict

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "market.yaml")
    parser.add_argument("--name", default="market_compare", help="result name (JSON and runs/NAME)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds overriding the config's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.seeds)
    start = time.perf_counter()
    result = run_comparison(cfg)
    wall = time.perf_counter() - start
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
    summary = result["summary"]
    print_table(comparison_rows(summary), "Pipelines on identical traffic (mean [95% CI] over seeds)")
    print_table(ega_rows(summary), "Beside EGA's published offline figures")
    print(verdict(summary))
    report = write_run(ROOT / "runs" / args.name, cfg, result)
    figures = {"summary": summary, "per_seed": result["per_seed"], "config": to_dict(cfg),
               "config_file": str(args.config.relative_to(ROOT) if args.config.is_absolute() else args.config),
               "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "torch_threads": 1,
               "note": "machine shared by several sessions (2 cores): wall time is inflated, CPU time is the cost",
               "report": str(report.relative_to(ROOT))}
    print(f"wall {wall:.0f}s, CPU {cpu:.0f}s; wrote {save(args.name, figures)} and {report}")


if __name__ == "__main__":
    main()
