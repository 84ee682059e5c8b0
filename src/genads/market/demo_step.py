"""Demo step "market": the market verdict at tiny scale, then the SID pipeline's comparison (< 90 s).

The market is the simulator's own (it does not read the demo data set): configs/market_tiny.yaml. First the
verdict of :mod:`genads.market.verdict` with small models (tuning seed, one evaluation seed, two without
``ctx.fast``), with the committed full-size verdict (benchmarks/results/market.json) quoted beside it; then
the SID end-to-end pipeline against the cascade (three seeds, one with ``ctx.fast``): its comparison table,
EGA's figures beside ours and the plots.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from genads.bundled import CONFIGS
from genads.market.compare import run_comparison
from genads.market.report import add_section
from genads.market.verdict import default_verdict, tiny_verdict
from genads.market.verdict_report import add_section as add_verdict_section
from genads.market.verdict_report import full_size_sentence
from genads.market.verdict_study import run_verdict

ROOT = Path(__file__).resolve().parents[3]
TINY = CONFIGS / "market_tiny.yaml"  # the packaged config: works from a wheel too
VERDICT_TITLE = "Market verdict: the strongest cascade vs the best end-to-end variant (tiny market)"


def verdict(ctx, cfg) -> None:
    """The verdict's machinery on the tiny market, and the committed full-size verdict in one sentence."""
    seeds = (ctx.seed + 1,) if ctx.fast else (ctx.seed + 1, ctx.seed + 2)
    vc = replace(tiny_verdict(default_verdict(cfg, seeds, ctx.seed)), schedule_check=False)
    start = time.perf_counter()
    result = run_verdict(vc, log=lambda msg: None)
    ctx.metrics["market-verdict"] = {"summary": result["summary"], "choice": result["choice"],
                                     "seconds": round(time.perf_counter() - start, 2)}
    add_verdict_section(ctx.report, result, VERDICT_TITLE)
    full = full_size_sentence(ROOT / "benchmarks" / "results" / "market.json")
    ctx.report.section(VERDICT_TITLE).paragraphs.append(
        "A tiny market with small models: the numbers show the machinery, not the verdict. "
        + (full or "No full-size verdict is committed yet: run benchmarks/market.py."))


def run(ctx) -> None:  # ctx: DemoContext
    from genads.market.config import load_config

    cfg = load_config(TINY)
    cfg = replace(cfg, seeds=(ctx.seed,) if ctx.fast else (ctx.seed, ctx.seed + 1, ctx.seed + 2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        verdict(ctx, cfg)
        result = run_comparison(cfg, log=lambda msg: None)
    finally:
        torch.set_num_threads(threads)
    ctx.metrics["market"] = {"summary": result["summary"], "seeds": list(cfg.seeds),
                             "seconds": round(time.perf_counter() - start, 2), "cpu_seconds": result["cpu_seconds"]}
    add_section(ctx.report, result, title="Market simulator: cascade vs end-to-end (tiny market)")
    ctx.report.section("Market simulator: cascade vs end-to-end (tiny market)").paragraphs.append(
        "This is the demo's tiny market (200 users, 120 ads, models trained for an epoch or two): its numbers show "
        "the machinery, not the comparison; benchmarks/market.py gives the project's market verdict at full size.")
