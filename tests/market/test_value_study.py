from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from genads.commands.simulate import load_config
from genads.eval.report import Report
from genads.market.value_demo_step import TINY, tiny_study
from genads.market.value_report import add_section
from genads.market.value_study import MARKETS, VARIANTS, StudyConfig, aggregate, run_study


@pytest.fixture(scope="module")
def result() -> dict:
    torch.set_num_threads(1)
    sim = load_config(TINY)
    sim = replace(sim, e2e=replace(sim.e2e, payment_iterations=20))
    return run_study(tiny_study(sim, seed=10, n_seeds=2, rl_steps=5), log=lambda m: None)


def test_study_reports_every_variant_in_both_markets(result) -> None:
    for market in MARKETS:
        summary = result["summary"][market]
        assert set(summary["variants"]) == set(VARIANTS)
        for name in VARIANTS:
            stat = summary["variants"][name]["rpm"]
            assert len(stat["per_seed"]) == 2 and stat["ci95"][0] <= stat["mean"] <= stat["ci95"][1]
            assert ("lift_vs_cascade" in stat) == (name != "cascade")
            assert summary["variants"][name]["ir_violations"]["mean"] == 0
        holm = [t["p_holm"] for t in summary["criteria"]]
        assert all(t["p_holm"] >= t["p"] - 1e-12 for t in summary["criteria"]) and max(holm) <= 1.0
    rl = result["per_seed"][0]["training"]["rl"]
    assert len(rl["curve"]) == 5 and rl["interactions"] == 5 * 64 * 8
    report = Report("t")
    add_section(report, result, "study")
    assert "e2e_rl" in report.to_html()


def test_unconstrained_market_never_runs_out_of_budget(result) -> None:
    for s in result["per_seed"]:
        for v in s["markets"]["unconstrained"].values():
            assert v["budget_spent_share"] < 0.5


def test_tuning_and_evaluation_seeds_are_disjoint() -> None:
    with pytest.raises(ValueError, match="disjoint"):
        StudyConfig(seeds=(0, 1), tuning_seeds=(1,))


def test_holm_adjustment_on_a_hand_computed_case() -> None:
    runs = []
    rng = np.random.default_rng(0)
    for _ in range(4):
        base = {m: 1.0 for m in ("rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi")}
        up = {m: 1.0 + 0.5 + 0.01 * rng.standard_normal() for m in base} | {"psi": 0.5 + 0.01 * rng.standard_normal()}
        runs.append({"markets": {"x": {"cascade": {m: base.get(m, 1.0) for m in _metrics()},
                                       "e2e_rl": {m: up.get(m, 1.0) for m in _metrics()}}}})
    crit = {t["metric"]: t for t in aggregate(runs, "x")["criteria"]}
    ps = sorted(t["p"] for t in crit.values())
    assert min(t["p_holm"] for t in crit.values()) == pytest.approx(len(ps) * ps[0])
    assert crit["rpm"]["p_holm"] < 0.01 and crit["user_welfare"]["p_holm"] > 0.5  # higher welfare is no evidence of lower


def _metrics() -> tuple[str, ...]:
    from genads.market.value_study import METRICS
    return METRICS
