"""``genads demo``: the main job on the bundled data, end to end, into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from genads.demo import DEMO_DATA, DemoContext, run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    ctx = run_demo(DemoContext(out=args.out, data_dir=args.data, seed=args.seed, fast=args.fast))
    print(f"\nmetrics: {ctx.out / 'metrics.json'}\nreport:  {ctx.out / 'report.html'}")
    for hint in ctx.artifacts.get("hints", []):
        print(hint)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the bundled demo data; writes metrics.json and report.html")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    p.add_argument("--data", type=Path, default=DEMO_DATA, help="folder with events.csv.gz and catalogue.csv.gz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="tiny models and few epochs (for tests)")
    p.set_defaults(func=cmd_demo)
