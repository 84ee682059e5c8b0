"""Simulated auctions and the pure-mechanism wrapper used by the regret estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.auction.mechanisms import gsp, vcg
from genads.auction.regret import AscentConfig
from genads.auction.simulate import compare, differentiable, popularity_pctr, sample_auctions


def test_candidates_are_distinct_and_follow_popularity() -> None:
    rng = np.random.default_rng(0)
    bids, weights = np.arange(1.0, 51.0), np.r_[np.full(10, 100.0), np.ones(40)]
    sample = sample_auctions(bids, np.full(50, 0.05), 4, 2000, rng, weights=weights)
    assert sample.ads.shape == (2000, 4)
    assert all(len(set(row)) == 4 for row in sample.ads)
    np.testing.assert_array_equal(sample.bids, bids[sample.ads])
    assert (sample.ads < 10).mean() > 0.8  # the ten popular ads dominate
    with pytest.raises(ValueError, match="n_candidates"):
        sample_auctions(bids, np.full(50, 0.05), 51, 1, rng)


def test_pctr_is_monotone_in_popularity_and_bounded() -> None:
    counts = np.array([0, 1, 5, 50, 500])
    pctr = popularity_pctr(counts, 0.01, 0.1)
    assert pctr[0] == pytest.approx(0.01) and pctr[-1] == pytest.approx(0.1)
    assert (np.diff(pctr) > 0).all()


def test_wrapper_matches_the_mechanism() -> None:
    rng = np.random.default_rng(1)
    bids, quality = rng.random((16, 4)), rng.uniform(0.01, 0.1, (16, 4))
    ctr = np.array([1.0, 0.5])
    click, pay = differentiable(gsp, ctr)(torch.tensor(bids)[..., None], torch.tensor(quality)[..., None])
    alloc = gsp(bids, quality, 2, slot_ctr=ctr)
    np.testing.assert_allclose(click[..., 0].numpy(), alloc.click_rates(quality, ctr))
    np.testing.assert_allclose(pay.sum(-1).numpy(), alloc.revenue(quality, ctr))


def test_compare_finds_gsp_regret_and_none_for_vcg() -> None:
    rng = np.random.default_rng(2)
    sample = sample_auctions(rng.lognormal(0, 0.5, 30), rng.uniform(0.02, 0.1, 30), 4, 200, rng)
    ctr = np.array([1.0, 0.6, 0.3])
    rows = {r["mechanism"]: r for r in compare({"gsp": differentiable(gsp, ctr), "vcg": differentiable(vcg, ctr)},
                                               sample, AscentConfig(restarts=64, steps=0, high=10.0), audit_size=50)}
    assert rows["vcg"]["ascent_regret"] <= 1e-9 and rows["vcg"]["grid_regret"] <= 1e-9
    assert rows["gsp"]["grid_regret"] > 0 and rows["gsp"]["ascent_regret"] > 0
    assert rows["gsp"]["revenue_per_1000"] >= rows["vcg"]["revenue_per_1000"]
