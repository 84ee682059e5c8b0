"""The demo pipeline behind ``make demo``: every capability adds one step and one report section.

Steps run in order over a shared :class:`DemoContext`; each reads what earlier steps left in the
context, adds its figures to ``ctx.metrics[step]`` and its section to ``ctx.report``. The run
folder gets ``metrics.json`` and ``report.html``.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genads.bundled import DEMO_DATA
from genads.data.dataset import Dataset, atomic_write_text
from genads.data.split import SequenceSplit
from genads.eval.report import Report

STEPS: tuple[tuple[str, str], ...] = (
    ("data", "genads.data.demo_step:run"),
    ("tokenize", "genads.tokenize.demo_step:run"),
    ("baselines", "genads.baselines.demo_step:run"),
    ("slate", "genads.slate.demo_step:run"),
    ("parallel", "genads.parallel.demo_step:run"),
    ("auction", "genads.auction.demo_step:run"),
    ("rerank", "genads.reward.demo_step:run"),
    ("creatives", "genads.creative.demo_step:run"),
    ("market", "genads.market.demo_step:run"),
    ("market-rl", "genads.market.value_demo_step:run"),
    ("serve", "genads.serve.demo_step:run"),
)
"""(step name, "module:function"); each function takes a DemoContext. Order is the pipeline order:
data -> tokenize -> train -> auction -> creatives -> serve."""


@dataclass
class DemoContext:
    """What the steps share."""

    out: Path
    """The run folder (runs/demo)."""
    data_dir: Path = DEMO_DATA
    seed: int = 0
    fast: bool = False
    """Smaller models and fewer epochs (used by the tests)."""
    report: Report = field(default_factory=lambda: Report("genads demo report"))
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None
    split: SequenceSplit | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Objects later steps need (tokenizer, SIDs, trained models, ...), keyed by name."""


def load_step(spec: str) -> Callable[[DemoContext], None]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def run_demo(ctx: DemoContext, steps: tuple[tuple[str, str], ...] = STEPS, log: Callable[[str], None] = print) -> DemoContext:
    """Run the pipeline; write metrics.json and report.html into ``ctx.out`` after every step."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    timings = ctx.metrics.setdefault("seconds", {})
    for name, spec in steps:
        log(f"== {name}")
        start = time.perf_counter()
        load_step(spec)(ctx)
        timings[name] = round(time.perf_counter() - start, 2)
        write_outputs(ctx)
    return ctx


def write_outputs(ctx: DemoContext) -> None:
    atomic_write_text(ctx.out / "metrics.json", json.dumps(ctx.metrics, indent=2, sort_keys=True, default=float) + "\n")
    ctx.report.write(ctx.out / "report.html")
