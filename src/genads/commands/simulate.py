"""``genads simulate``: the ad-market simulator — cascade against end to end on identical traffic."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from genads.data.dataset import atomic_write_text
from genads.eval.report import Report


def load_config(path: Path, seeds: str | None = None):  # -> genads.market.config.SimConfig
    """:func:`genads.market.config.load_config`, imported when a command runs: the market's configs pull in torch
    and the models, which `genads --help` and every other command must not pay for at start-up."""
    from genads.market.config import load_config as load

    return load(path, seeds)


def write_run(out: Path, cfg, result: dict) -> Path:
    """``out/results.json``, ``out/config.yaml`` and ``out/report.html`` (atomic writes)."""
    from genads.market.config import to_dict
    from genads.market.report import add_section

    atomic_write_text(out / "results.json", json.dumps(result, indent=2, default=float) + "\n")
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    report = Report("genads market simulator")
    add_section(report, result)
    return report.write(out / "report.html")


def cmd_simulate(args: argparse.Namespace) -> int:
    import torch

    from genads.market.compare import run_comparison

    cfg = load_config(args.config, args.seeds)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = run_comparison(cfg, log=print)
    path = write_run(args.out, cfg, result)
    print(f"wrote {path} ({time.perf_counter() - start:.0f}s wall, {result['cpu_seconds']:.0f}s CPU)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("simulate", help="ad-market simulator: cascade vs end-to-end on the same traffic",
                              description="Draw a seeded market, train the cascade (SASRec -> DIN -> GSP) and the "
                                          "end-to-end pipeline (slate model + token bidding + learned payments) on its "
                                          "logs, serve identical traffic and write OUT/report.html.")
    p.add_argument("--config", type=Path, default=Path("configs/market.yaml"), help="YAML SimConfig; configs/NAME.yaml falls back to the packaged config of that name (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="run folder (report.html, results.json, config.yaml)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds overriding the config's")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=cmd_simulate)
