from __future__ import annotations

import numpy as np
import pytest

from genads.market.logs import LogConfig, make_logs
from genads.market.world import WorldConfig, make_world

SMALL = WorldConfig(n_users=50, n_ads=40, n_advertisers=8, n_organic=20, dim=4, topics=3)


def test_same_seed_same_world() -> None:
    a, b = make_world(SMALL, np.random.default_rng(3)), make_world(SMALL, np.random.default_rng(3))
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.value, b.value)
    assert not np.array_equal(a.users, make_world(SMALL, np.random.default_rng(4)).users)


def test_click_model_is_a_probability_and_position_biased() -> None:
    w = make_world(SMALL, np.random.default_rng(0))
    ctr = w.all_ad_ctr(np.arange(10))
    assert ctr.shape == (10, 40) and (ctr > 0).all() and (ctr < 1).all()
    assert (np.diff(w.examination) < 0).all() and w.examination[0] == 1.0
    np.testing.assert_allclose(w.slot_ctr, w.examination[list(SMALL.ad_positions)])
    ads = np.array([[0, 5, -1]])
    got = w.ad_ctr(np.array([2]), ads)
    np.testing.assert_allclose(got[0, :2], ctr[2, [0, 5]])
    assert got[0, 2] == 0.0


def test_every_advertiser_owns_an_ad_and_roi_targets_are_at_least_one() -> None:
    w = make_world(SMALL, np.random.default_rng(1))
    assert set(w.owner.tolist()) == set(range(8))
    assert (w.roi_target >= 1).all() and (w.value > 0).all()


@pytest.mark.parametrize("field,value", [("n_ads", 0), ("ad_positions", (3, 1)), ("ad_positions", (9,)),
                                         ("n_advertisers", 5000), ("roi_target_max", 0.5)])
def test_config_errors_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        WorldConfig(**{field: value})


def test_logs_histories_and_impressions() -> None:
    w = make_world(SMALL, np.random.default_rng(0))
    logs = make_logs(w, LogConfig(history_len=5, log_requests=30, max_history=8), np.random.default_rng(0))
    assert len(logs.histories) == 50 and all(len(h) >= 5 for h in logs.histories)
    assert all(len(set(h[:5].tolist())) == 5 for h in logs.histories)  # past clicks are distinct
    imp = logs.impressions
    assert len(imp.item) == 30 * SMALL.ad_load and imp.history.shape == (90, 8)
    assert imp.item.min() >= 1 and imp.item.max() <= 40 and set(imp.slot.tolist()) <= {0, 1, 2}
    split = logs.split()
    assert split.n_items == 40 and len(split.test) == 50
