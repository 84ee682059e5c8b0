"""The whole comparison on the tiny market: determinism, invariants, the report.

Golden numbers live in test_engine.py (the simulator with an oracle pipeline): the pipelines here
train models owned by other packages, whose improvements would move any pinned figure.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from genads.commands.simulate import load_config, write_run
from genads.market.compare import METRICS, aggregate, interval, run_comparison, run_seed

TINY = Path(__file__).resolve().parents[2] / "configs" / "market_tiny.yaml"

@pytest.fixture(scope="module")
def tiny() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_comparison(load_config(TINY), log=lambda m: None)
    finally:
        torch.set_num_threads(threads)


def test_every_variant_is_rational_and_within_budget(tiny: dict) -> None:
    for name, res in tiny["per_seed"][0]["variants"].items():
        assert res["ir_violations"] == 0, name
        assert res["budget_overspend"] == 0.0, name
        assert res["psi"] >= 0.0 and res["rpm"] >= 0.0


def test_same_seed_same_numbers() -> None:
    cfg = replace(load_config(TINY), variants=("cascade", "e2e"), episode=replace(load_config(TINY).episode, requests=200))
    a, b = run_seed(cfg, 5, log=lambda m: None), run_seed(cfg, 5, log=lambda m: None)
    assert a["variants"] == b["variants"]
    c = run_seed(cfg, 6, log=lambda m: None)
    assert c["variants"]["cascade"]["rpm"] != a["variants"]["cascade"]["rpm"]


def test_report_is_written(tiny: dict, tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", load_config(TINY), tiny)
    html = path.read_text()
    for needle in ("RPM", "CTR", "Ψ", "EGA", "192.45", "IR viol.", "overspend", "mean token bid", "GSP prices"):
        assert needle in html, needle
    assert (tmp_path / "run" / "results.json").is_file()


def test_intervals_and_paired_lift() -> None:
    assert interval(np.array([1.0])) == (1.0, 1.0, 1.0)
    m, lo, hi = interval(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and lo < 2.0 < hi
    seeds = [{"variants": {"cascade": dict.fromkeys(METRICS, c), "e2e": dict.fromkeys(METRICS, 1.1 * c)}}
             for c in (1.0, 2.0, 3.0)]
    lift = aggregate(seeds)["e2e"]["rpm"]["lift_vs_cascade"]
    assert lift["mean"] == pytest.approx(0.1) and lift["ci95"][0] == pytest.approx(0.1)


def test_payment_audit_users_are_disjoint_from_training_users() -> None:
    from genads.market.compare import profile_users

    train, audit = profile_users(500, 0.2, seed=3)
    assert len(np.intersect1d(train, audit)) == 0 and len(train) + len(audit) == 500 and len(audit) == 100
    assert not np.array_equal(profile_users(500, 0.2, seed=4)[1], audit)


def test_result_has_markets_ladder_criteria_and_heldout_pctr(tiny: dict) -> None:
    seed = tiny["per_seed"][0]
    assert set(seed["markets"]) == set(tiny["markets"])
    for model in ("din", "reward_model", "true_ctr"):
        fig = seed["training"]["pctr_heldout"][model]
        assert 0.0 <= fig["within_request_auc"] <= 1.0 or np.isnan(fig["within_request_auc"])
        assert fig["log_loss"] > 0
    pi = seed["training"]["e2e"]["payment_training"]["psi_identical_allocations"]
    assert set(pi) == {"learned", "gsp"} and pi["gsp"]["psi_heldout"] >= 0
    steps = [r["step"] for r in next(iter(tiny["ladder"].values()))]
    assert steps[0].startswith("cascade ->") and steps[-1].endswith("-> e2e")
    assert all(0 <= c["p_holm"] <= 1 for c in tiny["criteria"])


def test_generation_audit_is_in_the_result(tiny: dict) -> None:
    gen = tiny["per_seed"][0]["generation_audit"]
    assert set(gen) == {"cascade", "e2e_gsp", "e2e"}
    assert all(g["psi_generation"] >= 0 and g["generation_advertisers"] == 2 for g in gen.values())
