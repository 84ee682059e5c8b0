"""Demo step "market": the cascade against end to end on a tiny simulated market (3 seeds, < 60 s).

The market is the simulator's own (it does not read the demo data set): configs/market_tiny.yaml with
three seeds (one with ``ctx.fast``). The section carries the comparison table, EGA's figures beside
ours and the plots; ``genads simulate --config configs/market.yaml`` is the full-size run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from genads.market.compare import run_comparison
from genads.market.report import add_section

TINY = Path(__file__).resolve().parents[3] / "configs" / "market_tiny.yaml"


def run(ctx) -> None:  # ctx: DemoContext
    from genads.commands.simulate import load_config

    cfg = load_config(TINY)
    cfg = replace(cfg, seeds=(ctx.seed,) if ctx.fast else (ctx.seed, ctx.seed + 1, ctx.seed + 2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        result = run_comparison(cfg, log=lambda msg: None)
    finally:
        torch.set_num_threads(threads)
    ctx.metrics["market"] = {"summary": result["summary"], "seeds": list(cfg.seeds),
                             "seconds": round(time.perf_counter() - start, 2), "cpu_seconds": result["cpu_seconds"]}
    add_section(ctx.report, result, title="Market simulator: cascade vs end-to-end (tiny market)")
    ctx.report.section("Market simulator: cascade vs end-to-end (tiny market)").paragraphs.append(
        "This is the demo's tiny market (200 users, 120 ads, models trained for an epoch or two): its numbers show "
        "the machinery, not the comparison; benchmarks/market.py (issue 25) gives the project's market verdict at full size.")
