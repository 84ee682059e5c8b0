"""Demo step "market-rl": value-aware end to end before and after list-wise RL against the cascade (tiny market).

The study of :mod:`genads.market.value_study` on configs/market_tiny.yaml's world with small models: one
tuning seed, one evaluation seed (two without ``ctx.fast``), a short RL run. The section shows both markets'
tables, the RL before/after table and the learning curves; benchmarks/market.py gives the project's verdict.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from genads.bundled import CONFIGS
from genads.market.e2e_parallel import ParallelE2EConfig
from genads.market.rl import RLConfig
from genads.market.value import ValueConfig
from genads.market.value_report import add_section
from genads.market.value_study import StudyConfig, run_study
from genads.parallel.model import ParallelConfig
from genads.parallel.train import ParallelTrainConfig
from genads.tokenize.pq import PQConfig

TINY = CONFIGS / "market_tiny.yaml"
TITLE = "Market: value-aware end to end and list-wise RL vs the cascade (tiny market)"


def tiny_study(sim, seed: int, n_seeds: int, rl_steps: int = 40) -> StudyConfig:
    """A study small enough for the demo and the tests (a minute or less on one thread)."""
    n = sim.cascade.candidates
    parallel = ParallelE2EConfig(
        candidates=n, codes=PQConfig(n_codes=4, nbits=2, dim=8),
        model=ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=sim.logs.max_history, n_items=1),
        train=ParallelTrainConfig(batch_size=64, epochs=4, warmup_steps=2, n_negatives=32, patience=2),
        value=ValueConfig(d_value=8, epochs=8, lr=5e-3))
    return StudyConfig(sim=sim, parallel=parallel, rl=RLConfig(steps=rl_steps, requests=64, group=8, lr=3e-3, kl=0.02),
                       seeds=tuple(range(seed + 1, seed + 1 + n_seeds)), tuning_seeds=(seed,),
                       cascade_grid=(("ce", sim.cascade.retrieve),), rl_revenue_weights=(1.0,))


def run(ctx) -> None:  # ctx: DemoContext
    from genads.market.config import load_config

    sim = load_config(TINY)
    sim = replace(sim, e2e=replace(sim.e2e, payment_iterations=100))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        result = run_study(tiny_study(sim, ctx.seed + 100, 1 if ctx.fast else 2), log=lambda msg: None)
    finally:
        torch.set_num_threads(threads)
    ctx.metrics["market-rl"] = {"summary": result["summary"], "choice": result["choice"],
                                "rl": [s["training"]["rl"] | {"curve": s["training"]["rl"]["curve"][-1:]}
                                       for s in result["per_seed"]],
                                "seconds": round(time.perf_counter() - start, 2)}
    add_section(ctx.report, result, TITLE)
    ctx.report.section(TITLE).paragraphs.append(
        "A tiny market with small models: the numbers show the machinery, not the verdict; "
        "benchmarks/market.py gives the project's market verdict at full size.")
