"""The learned payment network: IR by construction, monotone allocation, regret minimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.auction.mechanisms import gsp, vcg
from genads.auction.payment_net import (
    LearnedPayments,
    PaymentNet,
    PaymentNetConfig,
    PaymentTrainConfig,
    config_from_json,
    position_allocation,
    train_payment_net,
)
from genads.auction.regret import grid_regret


def _auctions(n: int, size: int, seed: int, features: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    bids = torch.rand((size, n, 1), generator=gen) * 3
    quality = 0.01 + 0.1 * torch.rand((size, n, 1), generator=gen)
    return bids, torch.cat([quality, torch.randn((size, n, features), generator=gen)], dim=-1)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 2), st.sampled_from([0.0, 0.3]), st.integers(0, 99))
def test_payment_never_exceeds_bid(n: int, k: int, features: int, temperature: float, seed: int) -> None:
    torch.manual_seed(seed)
    ctr = tuple(float(c) for c in np.linspace(1.0, 0.4, k))
    net = PaymentNet(PaymentNetConfig(n_bidders=n, slot_ctr=ctr, hidden=8, n_features=features,
                                      temperature=temperature))
    bids, context = _auctions(n, 32, seed, features)
    click, pay = net(bids, context)
    prices = net.prices(bids, context)
    assert (prices <= bids[..., 0] + 1e-6).all() and (prices >= 0).all()
    torch.testing.assert_close(pay, click[..., 0] * prices)
    assert (click[..., 0] <= context[..., 0] * ctr[0] + 1e-7).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.sampled_from([0.0, 0.1, 1.0]), st.integers(0, 5), st.floats(0.0, 2.0), st.integers(0, 99))
def test_allocation_is_monotone_in_own_bid(n: int, temperature: float, who: int, raise_by: float, seed: int) -> None:
    bids, context = _auctions(n, 16, seed)
    who %= n
    higher = bids[..., 0].clone()
    higher[:, who] += raise_by
    ctr = torch.tensor([1.0, 0.5])
    before = position_allocation(bids[..., 0], context[..., 0], ctr, temperature)[:, who]
    after = position_allocation(higher, context[..., 0], ctr, temperature)[:, who]
    assert (after >= before - 1e-6).all()


def test_hard_allocation_matches_gsp_ranking() -> None:
    bids, context = _auctions(5, 64, 3)
    ctr = np.array([1.0, 0.6, 0.3])
    x = position_allocation(bids[..., 0].double(), context[..., 0].double(), torch.tensor(ctr)).numpy()
    b, q = bids[..., 0].double().numpy(), context[..., 0].double().numpy()
    expected = gsp(b, q, 3, slot_ctr=ctr).click_rates(np.ones_like(q), ctr)
    np.testing.assert_allclose(x, expected)


def test_learned_payments_is_a_mechanism() -> None:
    net = PaymentNet(PaymentNetConfig(n_bidders=4, slot_ctr=(1.0, 0.5)))
    bids, context = _auctions(4, 32, 5)
    b, q = bids[..., 0].double().numpy(), context[..., 0].double().numpy()
    alloc = LearnedPayments(net)(b, q, 2, slot_ctr=np.array([1.0, 0.5]), reserve=0.2)
    ref = gsp(b, q, 2, slot_ctr=np.array([1.0, 0.5]), reserve=0.2)
    np.testing.assert_array_equal(alloc.winners, ref.winners)
    won = alloc.winners >= 0
    assert (alloc.prices[won] <= np.take_along_axis(b, np.maximum(alloc.winners, 0), 1)[won] + 1e-6).all()
    with pytest.raises(ValueError, match="n_bidders"):
        LearnedPayments(net)(b[:, :3], q[:, :3], 2)


def test_training_drives_first_price_charges_towards_truthful_ones() -> None:
    """One slot, three bidders U[0,1], pCTR 1: the regret-free revenue-optimal payment for the
    efficient allocation is the second price; training must cut the grid regret of the start."""
    n, size = 3, 4096
    values = torch.rand((size, n, 1), generator=torch.Generator().manual_seed(0))
    context = torch.ones((size, n, 1))
    torch.manual_seed(0)
    net = PaymentNet(PaymentNetConfig(n_bidders=n, hidden=16))
    with torch.no_grad():
        net.head.bias.fill_(4.0)  # start near first price: pay ~98% of the bid
    held = torch.rand((512, n, 1), generator=torch.Generator().manual_seed(1))
    before = grid_regret(net, held, torch.ones_like(held))
    train_payment_net(net, values, context, PaymentTrainConfig(
        iterations=200, batch_size=128, lr=3e-3, rho_every=50, lambda_init=3.0, gammas=(0.3, 0.6, 0.8, 0.9, 1.0, 1.2, 1.5)))
    after = grid_regret(net, held, torch.ones_like(held))
    second = vcg(held[..., 0].numpy(), 1.0, 1).revenue(np.ones((512, n)), np.ones(1)).mean()
    assert before.mean_regret > 0.05
    assert after.mean_regret < 0.5 * before.mean_regret
    assert abs(after.revenue - second) < abs(before.revenue - second)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="slot_ctr"):
        PaymentNetConfig(n_bidders=3, slot_ctr=(0.5, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        PaymentNetConfig(n_bidders=3, temperature=-1.0)
    with pytest.raises(ValueError, match="gammas"):
        PaymentTrainConfig(gammas=())
    with pytest.raises(ValueError, match="bid_norm"):
        PaymentNetConfig(n_bidders=3, bid_norm="median")


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.floats(0.05, 20.0), st.integers(0, 10_000))
def test_auction_normalised_prices_scale_with_the_bids(n: int, c: float, seed: int) -> None:
    # p(c * b) = c * p(b): the ratio of regret to utility does not depend on the bid level (pacing)
    torch.manual_seed(seed)
    net = PaymentNet(PaymentNetConfig(n_bidders=n, slot_ctr=(1.0, 0.5), hidden=8)).eval()
    gen = torch.Generator().manual_seed(seed)
    bids = torch.rand(16, n, 1, generator=gen) + 0.01
    ctx = torch.rand(16, n, 1, generator=gen) * 0.1 + 0.01
    with torch.no_grad():
        assert torch.allclose(net.prices(bids * c, ctx), net.prices(bids, ctx) * c, rtol=1e-4, atol=1e-6)


def test_a_saturated_network_never_charges_above_the_float64_bid() -> None:
    # sigmoid -> 1.0 in float32 makes the price float32(bid), which rounds above the bid for most float64 bids
    net = PaymentNet(PaymentNetConfig(n_bidders=4, slot_ctr=(1.0, 0.5), hidden=8)).eval()
    with torch.no_grad():
        net.head.bias.fill_(100.0)
    rng = np.random.default_rng(0)
    bids, quality = rng.uniform(0.1, 3.0, (500, 4)), rng.uniform(0.01, 0.1, (500, 4))
    alloc = LearnedPayments(net)(bids, quality, 2)
    won = np.take_along_axis(bids, np.maximum(alloc.winners, 0), 1)
    assert (alloc.winners >= 0).all() and (alloc.prices <= won).all()
    # a first-price network is held to the critical bid: the lowest bid that keeps the slot, GSP's price
    assert np.allclose(alloc.prices, gsp(bids, quality, 2).prices) and (alloc.prices < won).any()


def test_configs_saved_before_bid_norm_load_as_fixed() -> None:
    old = {"n_bidders": 3, "slot_ctr": [1.0, 0.5], "hidden": 8, "layers": 2, "n_features": 0, "temperature": 0.0,
           "bid_scale": 2.0, "quality_scale": 0.05}
    assert config_from_json(old).bid_norm == "fixed" and config_from_json(old).slot_ctr == (1.0, 0.5)
    assert config_from_json({**old, "bid_norm": "auction"}).bid_norm == "auction"


@pytest.mark.slow
def test_learned_payments_approach_second_price() -> None:
    n, size = 3, 8192
    values = torch.rand((size, n, 1), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = PaymentNet(PaymentNetConfig(n_bidders=n, hidden=32))
    train_payment_net(net, values, torch.ones_like(values), PaymentTrainConfig(iterations=1500, lr=2e-3, rho_every=300))
    held = torch.rand((1024, n, 1), generator=torch.Generator().manual_seed(1))
    stats = grid_regret(net, held, torch.ones_like(held))
    assert stats.mean_regret < 5e-3
    assert stats.revenue == pytest.approx(0.5, abs=0.03)  # E[second highest of 3 U[0,1]] = 1/2


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 6), st.floats(-6.0, 6.0), st.integers(0, 10_000), st.booleans())
def test_learned_price_never_exceeds_the_critical_bid(n: int, log_bid: float, seed: int, saturated: bool) -> None:
    """Bids from 1e-6 to 1e6 against bids near 1: a winner pays at most the lowest bid that keeps its slot
    (GSP's price), and its price does not move when it raises its own bid (1e6 pays what a just-winning bid pays)."""
    torch.manual_seed(seed)
    net = PaymentNet(PaymentNetConfig(n_bidders=n, slot_ctr=(1.0, 0.5), hidden=8)).eval()
    if saturated:  # a first-price network: the worst case for a high bid
        with torch.no_grad():
            net.head.bias.fill_(50.0)
    rng = np.random.default_rng(seed)
    bids, quality = rng.uniform(0.5, 1.5, (1, n)), rng.uniform(0.01, 0.1, (1, n))
    mech = LearnedPayments(net)
    bids[0, 0] = 10.0**log_bid
    alloc = mech(bids, quality, 2)
    critical = gsp(bids, quality, 2).prices
    won = alloc.winners >= 0
    assert (alloc.prices[won] <= critical[won] + 1e-12).all()
    assert (alloc.prices[won] <= np.take_along_axis(bids, np.maximum(alloc.winners, 0), 1)[won]).all()
    if alloc.winners[0, 0] == 0:  # bidder 0 holds the top slot: bidding 1000x more keeps it at the same price
        higher = bids.copy()
        higher[0, 0] *= 1e3
        again = mech(higher, quality, 2)
        assert again.winners[0, 0] == 0
        np.testing.assert_allclose(again.prices[0, 0], alloc.prices[0, 0], rtol=1e-5, atol=1e-12)
