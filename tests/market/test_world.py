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


def _toy_page(click_model: str, stop: float, cannibalisation: float = 0.0):
    cfg = WorldConfig(n_users=5, n_ads=6, n_advertisers=2, n_organic=4, dim=4, topics=2, page_size=4,
                      ad_positions=(1, 3), click_model=click_model, stop_after_click=stop,
                      cannibalisation=cannibalisation, base_logit=-1.0)
    return make_world(cfg, np.random.default_rng(5))


def test_cascade_click_model_matches_its_closed_form_on_a_toy_page() -> None:
    w = _toy_page("cascade", 0.6)
    users, ads, org = np.array([1]), np.array([[2, 4]]), np.array([[0, 3]])
    a = [w.organic_item_ctr(users, org)[0, 0], w.ad_ctr(users, ads)[0, 0], w.organic_item_ctr(users, org)[0, 1],
         w.ad_ctr(users, ads)[0, 1]]  # attractiveness by position (organic, ad, organic, ad)
    e = w.examination
    r = [e[1] / e[0], e[2] / e[1], e[3] / e[2]]
    exam = [1.0]
    for p in range(3):  # E_{p+1} = E_p r_p (1 - stop a_p), written out by hand
        exam.append(exam[-1] * r[p] * (1 - 0.6 * a[p]))
    np.testing.assert_allclose(w.page_click_prob(users, ads, org)[0], np.array(exam) * np.array(a), rtol=1e-12)
    # the drawn clicks converge to it (common random numbers, 200k pages)
    n, rng = 200_000, np.random.default_rng(0)
    clicks = w.page_clicks(np.repeat(users, n), np.repeat(ads, n, 0), np.repeat(org, n, 0), rng.random((n, 4)),
                           rng.random((n, 4)))
    np.testing.assert_allclose(clicks.mean(0), np.array(exam) * np.array(a), atol=4e-3)


def test_position_model_without_stop_is_the_original_world() -> None:
    w, c = _toy_page("position", 0.0), _toy_page("cascade", 0.0)
    users, ads, org = np.arange(3), np.array([[0, 1], [2, -1], [5, 4]]), np.array([[0, 1], [2, 3], [1, 0]])
    expect = w.examination[None] * w.attractiveness(users, ads, org)
    np.testing.assert_allclose(w.page_click_prob(users, ads, org), expect)
    np.testing.assert_allclose(c.page_click_prob(users, ads, org), expect)  # no stopping: same examination
    np.testing.assert_allclose(expect[:, [1, 3]], w.examination[[1, 3]] * w.ad_ctr(users, ads))
    assert expect[1, 3] == 0.0  # the empty slot is never clicked


def test_cannibalisation_lowers_the_lower_of_two_similar_ads() -> None:
    w = _toy_page("position", 0.0, cannibalisation=0.8)
    users = np.array([0, 0])
    same = w.page_click_prob(users, np.array([[2, 2], [2, -1]]))  # the same ad twice vs once
    factor = w.cannibalised(np.array([[2, 2]]))[0]
    np.testing.assert_allclose(factor, [1.0, 0.2])  # cos = 1 with itself: 1 - 0.8
    np.testing.assert_allclose(same[0, 3], 0.2 * w.examination[3] * w.ad_ctr(users[:1], np.array([[2]]))[0, 0])
    assert same[0, 1] == same[1, 1]  # the top ad is not affected by what is below it


def test_slate_effect_config_errors() -> None:
    with pytest.raises(ValueError, match="click_model"):
        WorldConfig(click_model="dbn")
    with pytest.raises(ValueError, match="cannibalisation"):
        WorldConfig(cannibalisation=1.5)


def _toy(click_model: str, cannibalisation: float = 0.0):
    from dataclasses import replace
    cfg = replace(SMALL, page_size=3, ad_positions=(0, 2), click_model=click_model, stop_after_click=0.5,
                  cannibalisation=cannibalisation)
    return make_world(cfg, np.random.default_rng(1))


def test_cascade_click_model_closed_form_with_an_empty_slot() -> None:
    w = _toy("cascade")
    users, ads, organic = np.array([0, 1]), np.array([[3, 7], [5, -1]]), np.array([[2], [4]])
    a = w.attractiveness(users, ads, organic)
    e = w.examination
    r = e[1:] / e[:-1]
    # by hand: E0 = 1, E1 = r0 (1 - s a0), E2 = E1 r1 (1 - s a1)
    e1 = r[0] * (1 - 0.5 * a[:, 0])
    e2 = e1 * r[1] * (1 - 0.5 * a[:, 1])
    want = np.stack([a[:, 0], e1 * a[:, 1], e2 * a[:, 2]], 1)
    np.testing.assert_allclose(w.page_click_prob(users, ads, organic), want)
    assert want[1, 2] == 0.0  # an empty ad slot is never clicked
    # the drawn clicks converge to the closed form
    n = 200_000
    rng = np.random.default_rng(0)
    u, ad, org = np.repeat(users, n), np.repeat(ads, n, 0), np.repeat(organic, n, 0)
    clicks = w.page_clicks(u, ad, org, rng.random((2 * n, 3)), rng.random((2 * n, 3)))
    np.testing.assert_allclose(clicks.reshape(2, n, 3).mean(1), want, atol=4e-3)


def test_position_model_is_the_original_world_and_cascade_lowers_clicks_below_a_click() -> None:
    users, ads, organic = np.array([0]), np.array([[3, 7]]), np.array([[2]])
    pos, cas = _toy("position"), _toy("cascade")
    np.testing.assert_allclose(pos.page_click_prob(users, ads, organic)[0, [0, 2]],
                               pos.examination[[0, 2]] * pos.ad_ctr(users, ads)[0])
    assert cas.page_click_prob(users, ads, organic)[0, 2] < pos.page_click_prob(users, ads, organic)[0, 2]


def test_cannibalisation_discounts_a_duplicate_ad_below() -> None:
    w = _toy("position", cannibalisation=0.8)
    users = np.array([0])
    twin = w.attractiveness(users, np.array([[3, 3]]), None)
    np.testing.assert_allclose(twin[0, 2], 0.2 * w.ad_ctr(users, np.array([[3]]))[0, 0])
    np.testing.assert_allclose(twin[0, 0], w.ad_ctr(users, np.array([[3]]))[0, 0])
