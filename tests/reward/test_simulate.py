import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.reward.simulate import (
    ClickModel,
    impression_slates,
    popularity_pools,
    simulate_clicks,
    simulate_log,
)


def test_examination_decays_and_no_bias_control():
    assert np.allclose(ClickModel(position_decay=1.0).examination(4), [1, 1 / 2, 1 / 3, 1 / 4])
    assert np.allclose(ClickModel(position_decay=0.0).examination(4), 1.0)


def test_click_probability_relevant_and_popularity(market):
    _, _, pop = market
    cm = ClickModel(relevant_ctr=0.5, base_ctr=0.05, position_decay=1.0)
    slates = np.array([[7, 3, -1]])
    p = cm.click_probability(slates, np.array([3]), pop)
    assert p[0, 1] == pytest.approx(0.5 / 2) and p[0, 2] == 0.0
    expected = min(0.05 * np.sqrt(pop[7] / pop[1:].mean()), 0.5)
    assert p[0, 0] == pytest.approx(expected)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.floats(0.0, 1.0))
def test_impression_slates_are_distinct_pool_ads(seed, S, include):
    rng = np.random.default_rng(seed)
    pools = np.stack([rng.permutation(np.arange(1, 21))[:8] for _ in range(30)])
    relevant = rng.integers(0, 30, 30)
    slates = impression_slates(pools, relevant, S, include, rng)
    assert slates.shape == (30, S)
    for row, pool, rel in zip(slates, pools, relevant, strict=True):
        assert len(set(row.tolist())) == S
        assert set(row.tolist()) <= set(pool.tolist()) | {int(rel)}


def test_include_prob_puts_the_relevant_ad_in_uniformly_placed_slots():
    rng = np.random.default_rng(0)
    pools = np.tile(np.arange(1, 11), (4000, 1))
    slates = impression_slates(pools, np.full(4000, 99), 5, 1.0, rng)
    slot = (slates == 99).argmax(1)
    assert (slates == 99).any(1).all()
    assert np.abs(np.bincount(slot, minlength=5) / 4000 - 0.2).max() < 0.03


def test_simulated_ctr_matches_the_model_and_is_seeded(market):
    _, _, pop = market
    pools = popularity_pools(pop, 5000, 10, np.random.default_rng(0))
    cm = ClickModel(position_decay=1.0, base_ctr=0.2)
    a = simulate_log(pools, np.zeros(5000, dtype=int), pop, cm, slate_size=4, include_prob=0.0, repeats=1, seed=3)
    b = simulate_log(pools, np.zeros(5000, dtype=int), pop, cm, slate_size=4, include_prob=0.0, repeats=1, seed=3)
    assert (a.slates == b.slates).all() and (a.clicks == b.clicks).all()
    expected = cm.click_probability(a.slates, np.zeros(5000, dtype=int), pop).mean(0)
    assert np.allclose(a.clicks.mean(0), expected, atol=0.02)
    assert a.clicks[:, 0].mean() > 2 * a.clicks[:, 3].mean()


def test_pools_and_errors(market):
    _, _, pop = market
    pools = popularity_pools(pop, 50, 10, np.random.default_rng(0))
    assert pools.shape == (50, 10) and (pools >= 1).all() and (pools <= 40).all()
    assert all(len(set(r.tolist())) == 10 for r in pools)
    with pytest.raises(ValueError, match="position_decay"):
        ClickModel(position_decay=-1)
    with pytest.raises(ValueError, match="fewer than slate_size"):
        impression_slates(np.array([[1, 2, -1]]), np.array([0]), 3, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="repeats"):
        simulate_log(pools, np.zeros(50, dtype=int), pop, ClickModel(), slate_size=3, include_prob=0, repeats=0, seed=0)
    log = simulate_clicks(pools[:, :3], np.zeros(50, dtype=int), pop, ClickModel(), np.random.default_rng(0))
    assert log.conversions is None and len(log) == 50
