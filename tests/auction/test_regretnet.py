"""RegretNet: feasibility and IR by construction, and a training run that lowers regret."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.auction.mechanisms import myerson_revenue_uniform
from genads.auction.optimality import BenchConfig, run_setting
from genads.auction.regret import AscentConfig, _own_utility, misreport_regret
from genads.auction.regretnet import (
    RegretNet,
    RegretNetConfig,
    TrainConfig,
    _improve_misreports,
    sample_values,
    train_regretnet,
)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 1000))
def test_allocation_is_feasible_and_payments_individually_rational(n: int, m: int, seed: int) -> None:
    torch.manual_seed(seed)
    net = RegretNet(RegretNetConfig(n_bidders=n, n_items=m, hidden=8))
    bids = sample_values(net.config, 64, torch.Generator().manual_seed(seed))
    alloc, pay = net(bids)
    assert alloc.shape == (64, n, m) and pay.shape == (64, n)
    assert (alloc >= 0).all() and (alloc.sum(1) <= 1 + 1e-6).all()
    assert (pay >= 0).all() and (pay <= (alloc * bids).sum(-1) + 1e-7).all()


def test_training_lowers_regret_and_keeps_revenue() -> None:
    cfg = RegretNetConfig(n_bidders=2, hidden=32)
    torch.manual_seed(0)
    net = RegretNet(cfg)
    values = sample_values(cfg, 256, torch.Generator().manual_seed(7))
    audit = AscentConfig(restarts=8, steps=40, seed=1)
    before = misreport_regret(net, values, cfg=audit)
    log = train_regretnet(net, TrainConfig(iterations=400, batch_size=128, train_size=4096, rho_every=100, lr=3e-3),
                          log_every=100)
    after = misreport_regret(net, values, cfg=audit)
    assert log.iteration == [100, 200, 300, 400] and log.rho[-1] == 16.0
    assert after.mean_regret < 0.5 * before.mean_regret
    assert after.revenue > 0.3  # far above what a mechanism that gives the item away would earn


@pytest.mark.slow
def test_three_bidders_reach_myerson_with_small_regret() -> None:
    """The benchmark's schedule (benchmarks/auction_optimality.py) on one item, three bidders."""
    row = run_setting("1x3", BenchConfig(audit_profiles=64, full_profiles=0))
    assert row["optimum"] == pytest.approx(myerson_revenue_uniform(3))
    assert row["ratio"] > 0.98
    assert row["ascent_regret"] < 2e-3


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="n_bidders"):
        RegretNetConfig(n_bidders=0)
    with pytest.raises(ValueError, match="activation"):
        RegretNetConfig(n_bidders=2, activation="gelu")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=10, train_size=5)


def test_random_restarts_only_replace_a_misreport_by_a_better_one() -> None:
    torch.manual_seed(3)
    net = RegretNet(RegretNetConfig(n_bidders=3, n_items=2, hidden=16))
    gen = torch.Generator().manual_seed(5)
    values, persisted = sample_values(net.config, 32, gen), sample_values(net.config, 32, gen)
    cfg = TrainConfig(misreport_steps=0, misreport_restarts=6)
    improved = _improve_misreports(net, values, persisted, cfg, gen)
    with torch.no_grad():
        before = _own_utility(net, values, persisted[None], None)[0]
        after = _own_utility(net, values, improved[None], None)[0]
    assert improved.shape == persisted.shape
    assert (after >= before - 1e-7).all() and (after > before + 1e-6).any()
    with pytest.raises(ValueError, match="misreport_restarts"):
        TrainConfig(misreport_restarts=-1)
