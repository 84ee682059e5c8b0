"""The auction demo step on the bundled demo data (fast mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genads.demo import STEPS, DemoContext, load_step


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DemoContext:
    context = DemoContext(out=tmp_path_factory.mktemp("demo"), fast=True)
    load_step("genads.data.demo_step:run")(context)
    load_step("genads.auction.demo_step:run")(context)
    return context


def test_step_is_registered() -> None:
    assert ("auction", "genads.auction.demo_step:run") in STEPS


def test_step_reports_mechanisms(ctx: DemoContext) -> None:
    rows = {r["mechanism"]: r for r in ctx.metrics["auction"]["mechanisms"]}
    assert set(rows) == {"gsp", "vcg", "learned"}
    assert rows["gsp"]["revenue_per_1000"] >= rows["vcg"]["revenue_per_1000"]
    assert rows["vcg"]["ascent_regret"] <= 1e-6 and rows["vcg"]["grid_regret"] <= 1e-6
    assert all(r["ir_violations"] == 0 for r in rows.values())
    assert rows["gsp"]["clicks_per_1000"] == pytest.approx(rows["learned"]["clicks_per_1000"])
    section = ctx.report.section("Auction")
    assert section.tables and section.images
    assert "payment_net" in ctx.artifacts


def test_report_renders(ctx: DemoContext, tmp_path: Path) -> None:
    html = ctx.report.write(tmp_path / "r.html").read_text()
    assert "Auction" in html and "learned" in html
