from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genads.auction.mechanisms import Allocation, first_price, gsp
from genads.market.bidders import BidderConfig
from genads.market.engine import EpisodeConfig, charge_clicks, make_traffic, run_episode, serve_batch
from genads.market.world import WorldConfig, make_world

WORLD = make_world(WorldConfig(n_users=30, n_ads=40, n_advertisers=6, n_organic=12, dim=4, topics=3,
                               budget_per_1000=3.0), np.random.default_rng(0))


class OraclePipeline:
    """Candidates = the ads of highest true CTR x bid among the live ones; pCTR = true CTR."""

    name = "oracle"

    def __init__(self, mechanism=gsp, n: int = 5) -> None:
        self.mechanism, self.n = mechanism, n

    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        users = history[:, -1]  # the tests pass user ids as the last history column
        ctr = WORLD.all_ad_ctr(users)
        score = np.where(live[None], ctr * bids[None], -np.inf)
        ads = np.argsort(-score, axis=1, kind="stable")[:, : self.n]
        ok = np.take_along_axis(score, ads, 1) > -np.inf
        return np.where(ok, ads, -1), np.where(ok, np.take_along_axis(ctr, ads, 1), 1e-9)

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation:
        return self.mechanism(bids, quality, len(WORLD.slot_ctr), slot_ctr=WORLD.slot_ctr)


def _episode(mechanism=gsp, seed: int = 0) -> dict:
    cfg = EpisodeConfig(requests=300, batch_size=50, audit_auctions=8)
    traffic = make_traffic(WORLD, cfg, np.random.default_rng(seed))
    histories = np.arange(30)[:, None]  # "history" = the user id (read by the oracle)
    return run_episode(WORLD, OraclePipeline(mechanism), histories, traffic, BidderConfig(), cfg, seed)


def test_episode_respects_budgets_and_individual_rationality() -> None:
    res = _episode()
    assert res["ir_violations"] == 0 and res["ir_value_violations_truthful"] == 0
    assert res["budget_overspend"] == 0.0 and res["budget_spent_share"] <= 1.0 + 1e-12
    assert res["rpm"] > 0 and 0 < res["ctr"] < 1 and res["user_welfare"] > 0
    assert res["audit"]["ads"].shape == (8, 5)


GOLDEN = {"rpm": 10.105468221462278, "ctr": 0.16346153846153846, "advertiser_welfare_per_mille": 16.05129688597062,
          "user_welfare": 0.6241850935135066, "value_efficiency": 0.29622850735515577, "strategic_gamma_mean": 0.8}
"""Re-pinned for issue 21: budgets are now gated per request (no click past the budget is free), which
withdraws many slots in this deliberately budget-starved world (lost RPM 36 vs RPM 10)."""


def test_golden_episode() -> None:
    """The simulator, bidders and engine with a fixed seed (oracle pipeline, GSP): pinned figures."""
    res = _episode(seed=2)
    for key, want in GOLDEN.items():
        assert res[key] == pytest.approx(want, rel=1e-6), key


def test_same_seed_same_episode() -> None:
    a, b = _episode(seed=1), _episode(seed=1)
    a.pop("audit"), b.pop("audit")
    assert a == b


def test_strategic_bidders_shade_under_first_price() -> None:
    assert _episode(first_price)["strategic_gamma_mean"] < 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), arrays(float, (8, 3), elements=st.floats(0, 5)), st.data())
def test_charges_never_exceed_price_or_budget(n_adv: int, prices: np.ndarray, data) -> None:
    owner = np.arange(10) % n_adv
    ads = data.draw(arrays(np.int64, (8, 3), elements=st.integers(-1, 9)))
    clicked = data.draw(arrays(bool, (8, 3))) & (ads >= 0)
    remaining = data.draw(arrays(float, (n_adv,), elements=st.floats(0, 10)))
    charged = charge_clicks(ads, prices, clicked, owner, remaining)
    assert (charged <= prices + 1e-12).all() and (charged[~clicked] == 0).all() and (charged >= 0).all()
    spent = np.zeros(n_adv)
    np.add.at(spent, owner[np.maximum(ads, 0)][clicked], charged[clicked])
    assert (spent <= remaining + 1e-9).all()


def test_budget_gating_reports_lost_revenue_and_never_absorbs() -> None:
    res = _episode(seed=2)
    assert res["absorbed_per_mille"] == 0.0 and res["lost_rpm"] > 0
    assert res["gross_rpm"] == pytest.approx(res["rpm"] + res["lost_rpm"])
    rich = EpisodeConfig(requests=300, batch_size=50, audit_auctions=8)
    traffic = make_traffic(WORLD, rich, np.random.default_rng(2))
    rich_world = replace(WORLD, budget_rate=WORLD.budget_rate * 1e4)  # the unconstrained market
    free = run_episode(rich_world, OraclePipeline(), np.arange(30)[:, None], traffic, BidderConfig(), rich, 2)
    assert free["lost_rpm"] == 0.0 and free["budget_spent_share"] < 0.01


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), arrays(float, (8, 3), elements=st.floats(0.01, 5)), st.data())
def test_a_click_past_the_budget_is_never_served_free(n_adv: int, prices: np.ndarray, data) -> None:
    """Every click is charged its full price, and no advertiser is charged more than it had left."""
    owner = np.arange(WORLD.config.n_ads) % n_adv
    world = make_world(WorldConfig(n_users=30, n_ads=40, n_advertisers=n_adv, n_organic=12, dim=4, topics=3,
                                   click_model=data.draw(st.sampled_from(["position", "cascade"])), base_logit=0.0),
                       np.random.default_rng(0))
    world = replace(world, owner=owner)
    won = data.draw(arrays(np.int64, (8, 3), elements=st.integers(-1, 39)))
    remaining = data.draw(arrays(float, (n_adv,), elements=st.floats(0, 10)))
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    users, organic = rng.integers(30, size=8), rng.integers(12, size=(8, 3))
    served = serve_batch(world, users, won, prices, organic, rng.random((8, 6)), rng.random((8, 6)), remaining)
    assert (served.charge[served.clicked] == prices[served.clicked]).all()  # never a free or discounted click
    assert (served.charge[~served.clicked] == 0).all() and (served.ads[served.clicked] >= 0).all()
    spent = np.zeros(n_adv)
    np.add.at(spent, owner[np.maximum(served.ads, 0)][served.clicked], served.charge[served.clicked])
    assert (spent <= remaining + 1e-9).all()
    assert ((served.ads == won) | served.withdrawn).all() and (served.ads[served.withdrawn] == -1).all()
    if not served.withdrawn.any():
        assert served.lost == 0.0
