from __future__ import annotations

from pathlib import Path

from genads.demo import STEPS, DemoContext
from genads.market import demo_step


def test_market_step_is_listed_after_creatives() -> None:
    names = [name for name, _ in STEPS]
    assert names.index("market") == names.index("creatives") + 1


def test_demo_step_adds_section_and_metrics(tmp_path: Path) -> None:
    ctx = DemoContext(out=tmp_path, fast=True)
    demo_step.run(ctx)
    summary = ctx.metrics["market"]["summary"]
    assert {"cascade", "e2e"} <= set(summary) and summary["e2e"]["ir_violations"]["mean"] == 0
    html = ctx.report.to_html()
    assert "cascade vs end-to-end" in html and "EGA" in html
    verdict = ctx.metrics["market-verdict"]["summary"]
    assert {"cascade_blind", "cascade_bid", "e2e_best", "oracle"} <= set(verdict["markets"]["budget_bound"]["variants"])
    assert "Market verdict: the strongest cascade" in html and "Done-when" in html
