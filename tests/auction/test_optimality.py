"""The benchmark's settings: exact optima and per-setting budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genads.auction.optimality import MANELLI_VINCENT_1X2, QUICK, SETTINGS, TUNED, bench_config


def test_manelli_vincent_optimum_is_the_revenue_of_their_menu() -> None:
    """Items at 2/3 each or the bundle at (4 - sqrt 2)/3, integrated on a fine grid of (v1, v2)."""
    p, bundle = 2 / 3, (4 - math.sqrt(2)) / 3
    g = (np.arange(2000) + 0.5) / 2000
    v1, v2 = np.meshgrid(g, g)
    surplus = np.stack([0 * v1, v1 - p, v2 - p, v1 + v2 - bundle])
    revenue = np.array([0.0, p, p, bundle])[surplus.argmax(0)].mean()
    assert revenue == pytest.approx(MANELLI_VINCENT_1X2, abs=1e-4)
    assert SETTINGS["2items"].quoted == 0.550


def test_bench_config_per_setting_and_overrides() -> None:
    assert set(TUNED) == set(SETTINGS)
    assert bench_config("1x5").hidden == 128 and bench_config("1x2").train.misreport_restarts == 8
    assert bench_config("1x3", quick=True) == QUICK
    longer = bench_config("1x4", iterations=10_000)
    assert longer.train.iterations == 10_000 and longer.train.decay_after == 8000
    with pytest.raises(ValueError, match="1x9"):
        bench_config("1x9")
