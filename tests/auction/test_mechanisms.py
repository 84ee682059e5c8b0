"""Properties of the pure mechanisms: IR prices, monotonicity, GSP >= VCG, truthfulness, exact values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genads.auction.mechanisms import (
    MECHANISMS,
    Myerson,
    ValueDistribution,
    first_price,
    gsp,
    myerson_revenue_uniform,
    second_price,
    uniform,
    vcg,
)

BID = st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)
QUAL = st.floats(0.01, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def auctions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = draw(st.integers(1, 6))
    b = draw(st.integers(1, 4))
    bids = draw(arrays(float, (b, n), elements=BID))
    quality = draw(arrays(float, (b, n), elements=QUAL))
    k = draw(st.integers(1, 4))
    ctr = np.sort(draw(arrays(float, (k,), elements=st.floats(0.05, 1.0))))[::-1].copy()
    reserve = draw(st.sampled_from([0.0, 0.5, 2.0]))
    return bids, quality, ctr, reserve


@given(auctions(), st.sampled_from(sorted(MECHANISMS)))
def test_price_never_exceeds_bid(case: tuple, name: str) -> None:
    bids, quality, ctr, reserve = case
    alloc = MECHANISMS[name](bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve)
    won = alloc.slots(bids.shape[1]) >= 0
    prices = alloc.bidder_prices(bids.shape[1])
    assert (prices[won] <= bids[won] + 1e-9).all()
    assert (prices[won] >= reserve - 1e-9).all()
    assert (prices[~won] == 0).all()


@given(auctions(), st.sampled_from(sorted(MECHANISMS)), st.integers(0, 5), st.floats(0.0, 5.0))
def test_allocation_is_monotone(case: tuple, name: str, who: int, raise_by: float) -> None:
    bids, quality, ctr, reserve = case
    who = who % bids.shape[1]
    higher = bids.copy()
    higher[:, who] += raise_by
    mech = MECHANISMS[name]
    before = mech(bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve).click_rates(quality, ctr)[:, who]
    after = mech(higher, quality, len(ctr), slot_ctr=ctr, reserve=reserve).click_rates(quality, ctr)[:, who]
    assert (after >= before - 1e-12).all()


@given(auctions())
def test_gsp_revenue_at_least_vcg_and_equal_for_one_slot(case: tuple) -> None:
    bids, quality, ctr, reserve = case
    r_gsp = gsp(bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve).revenue(quality, ctr)
    r_vcg = vcg(bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve).revenue(quality, ctr)
    assert (r_gsp >= r_vcg - 1e-9).all()
    one = ctr[:1]
    # atol: hypothesis found a subnormal price (5e-324 against 0.0) where the relative tolerance alone cannot hold
    np.testing.assert_allclose(gsp(bids, quality, 1, slot_ctr=one, reserve=reserve).revenue(quality, one),
                               vcg(bids, quality, 1, slot_ctr=one, reserve=reserve).revenue(quality, one), atol=1e-12)


def _best_deviation_gain(mech, values: np.ndarray, quality: np.ndarray, ctr: np.ndarray, reserve: float,
                         grid: np.ndarray) -> float:
    """max over bidders and grid misreports of utility(misreport) - utility(truth)."""
    n = values.shape[1]
    truth = mech(values, quality, len(ctr), slot_ctr=ctr, reserve=reserve).utilities(values, quality, ctr)
    gain = -np.inf
    for i in range(n):
        for g in grid:
            bids = values.copy()
            bids[:, i] = g
            u = mech(bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve).utilities(values, quality, ctr)
            gain = max(gain, float((u[:, i] - truth[:, i]).max()))
    return gain


GRID = np.linspace(0.0, 12.0, 49)


@settings(max_examples=40, deadline=None)
@given(auctions())
def test_vcg_is_truthful(case: tuple) -> None:
    values, quality, ctr, reserve = case
    assert _best_deviation_gain(vcg, values, quality, ctr, reserve, GRID) <= 1e-9


@settings(max_examples=40, deadline=None)
@given(auctions())
def test_second_price_is_truthful_with_alike_slots(case: tuple) -> None:
    values, quality, ctr, reserve = case
    flat = np.ones(len(ctr))
    assert _best_deviation_gain(second_price, values, quality, flat, reserve, GRID) <= 1e-9


@settings(max_examples=30, deadline=None)
@given(auctions())
def test_myerson_is_truthful(case: tuple) -> None:
    values, quality, ctr, reserve = case
    mech = Myerson(uniform(0.0, 10.0))
    assert _best_deviation_gain(mech, values, quality, ctr, reserve, GRID) <= 1e-9


def test_gsp_and_first_price_are_not_truthful() -> None:
    values = np.array([[3.0, 2.0, 1.0]])
    quality = np.ones((1, 3))
    ctr = np.array([1.0, 0.7])  # bidder 0 gains by shading to slot 2: 0.7*(3-1) > 1*(3-2)
    assert _best_deviation_gain(gsp, values, quality, ctr, 0.0, GRID) > 0.1
    assert _best_deviation_gain(first_price, values, quality, ctr, 0.0, GRID) > 0.1


# --- reference vs fast: a scalar, loop-based auction --------------------------------------------------------

def _scalar_gsp(bids: list[float], quality: list[float], k: int, reserve: float) -> dict[int, float]:
    live = [i for i in range(len(bids)) if bids[i] >= reserve and bids[i] * quality[i] > 0]
    live.sort(key=lambda i: (-bids[i] * quality[i], i))
    out = {}
    for j, i in enumerate(live[:k]):
        nxt = bids[live[j + 1]] * quality[live[j + 1]] if j + 1 < len(live) else 0.0
        out[i] = max(nxt / quality[i], reserve)
    return out


def _welfare(bids: list[float], quality: list[float], ctr: list[float], exclude: int | None) -> tuple:
    live = [i for i in range(len(bids)) if i != exclude and bids[i] * quality[i] > 0]
    live.sort(key=lambda i: (-bids[i] * quality[i], i))
    return {i: ctr[j] * quality[i] * bids[i] for j, i in enumerate(live[: len(ctr)])}


def _scalar_vcg(bids: list[float], quality: list[float], ctr: list[float]) -> dict[int, float]:
    """VCG by its definition: the others' welfare without i minus their welfare with i, per click."""
    with_all = _welfare(bids, quality, ctr, None)
    out = {}
    for j, i in enumerate(sorted(with_all, key=lambda i: (-bids[i] * quality[i], i))):
        others_with = sum(w for a, w in with_all.items() if a != i)
        others_without = sum(_welfare(bids, quality, ctr, i).values())
        out[i] = (others_without - others_with) / (ctr[j] * quality[i])
    return out


@given(auctions())
def test_vectorised_equals_scalar(case: tuple) -> None:
    bids, quality, ctr, reserve = case
    n = bids.shape[1]
    fast_gsp = gsp(bids, quality, len(ctr), slot_ctr=ctr, reserve=reserve)
    fast_vcg = vcg(bids, quality, len(ctr), slot_ctr=ctr)
    for b in range(bids.shape[0]):
        for fast, ref in ((fast_gsp, _scalar_gsp(list(bids[b]), list(quality[b]), len(ctr), reserve)),
                          (fast_vcg, _scalar_vcg(list(bids[b]), list(quality[b]), list(ctr)))):
            slots, prices = fast.slots(n)[b], fast.bidder_prices(n)[b]
            assert {i for i in range(n) if slots[i] >= 0} == set(ref)
            for i, p in ref.items():
                assert prices[i] == pytest.approx(p, rel=1e-9, abs=1e-9)


# --- exact values ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "exact"), [(2, 5 / 12), (3, 17 / 32), (4, 49 / 80), (5, 43 / 64)])
def test_myerson_revenue_matches_closed_form(n: int, exact: float) -> None:
    assert myerson_revenue_uniform(n) == pytest.approx(exact)
    values = np.random.default_rng(n).random((200_000, n))
    revenue = Myerson(uniform())(values, 1.0, 1).revenue(np.ones_like(values), np.ones(1)).mean()
    assert revenue == pytest.approx(exact, abs=4e-3)
    vickrey = second_price(values, 1.0, 1).revenue(np.ones_like(values), np.ones(1)).mean()
    assert vickrey == pytest.approx((n - 1) / (n + 1), abs=4e-3)
    assert revenue > vickrey


def test_general_distribution_matches_closed_form_uniform() -> None:
    general = ValueDistribution(cdf=lambda v: v, pdf=lambda v: np.ones_like(v))
    assert general.check_regular()
    values = np.random.default_rng(1).random((1000, 3))
    a, b = Myerson(general)(values, 1.0, 2, slot_ctr=np.array([1.0, 0.5])), Myerson(uniform())(
        values, 1.0, 2, slot_ctr=np.array([1.0, 0.5]))
    np.testing.assert_array_equal(a.winners, b.winners)
    np.testing.assert_allclose(a.prices, b.prices, atol=1e-9)


def test_exponential_reserve_is_the_mean() -> None:
    """Exp(1): phi(v) = v - 1, so the monopoly reserve is 1 and a lone bidder pays exactly 1."""
    dist = ValueDistribution(cdf=lambda v: 1 - np.exp(-v), pdf=lambda v: np.exp(-v), low=0.0, high=50.0)
    alloc = Myerson(dist)(np.array([[0.9], [1.7]]), 1.0, 1)
    np.testing.assert_array_equal(alloc.winners[:, 0], [-1, 0])
    assert alloc.prices[1, 0] == pytest.approx(1.0, abs=1e-9)


def test_invalid_inputs_name_the_field() -> None:
    with pytest.raises(ValueError, match="num_slots"):
        gsp(np.ones((1, 2)), 1.0, 0)
    with pytest.raises(ValueError, match="quality"):
        vcg(np.ones((1, 2)), 0.0, 1)
    with pytest.raises(ValueError, match="slot_ctr"):
        vcg(np.ones((1, 2)), 1.0, 2, slot_ctr=np.array([0.5, 1.0]))
