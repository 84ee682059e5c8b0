"""The second world (issue 28): page choice, creatives, fatigue, reserves, learning bidders, logs, oracles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from genads.creative.encoders import HashingEncoder
from genads.market.choice import draw_choice, page_probs, position_effects
from genads.market.creatives import CreativeBandit, CreativeConfig, best_for_everyone, make_creatives
from genads.market.headroom import (
    VARIANTS,
    HeadroomConfig,
    PageChooser,
    headroom_table,
    load_study,
    make_traffic2,
    run_oracle,
    seed_headroom,
)
from genads.market.learning_bidders import BanditBidders, LearningBidderConfig
from genads.market.logging_policy import ips_mean, plackett_luce
from genads.market.reserve import gsp_slot_reserves
from genads.market.world import WorldConfig
from genads.market.world2 import World2Config, make_world2

ROOT = Path(__file__).resolve().parents[2]
SMALL = WorldConfig(n_users=60, n_ads=50, n_advertisers=10, n_organic=30, dim=6, topics=3)
EXTRA = World2Config(creatives=CreativeConfig(encoder="hashing"))
STUDY = HeadroomConfig(seeds=(1, 2), sessions=12, waves=2, pool=5, budget_passes=3)


def small_world(extra: World2Config = EXTRA, seed: int = 0):
    return make_world2(SMALL, extra, np.random.default_rng(seed), HashingEncoder(dim=64))


def test_choice_probabilities_with_no_click_sum_to_at_most_one() -> None:
    rng = np.random.default_rng(0)
    kappa = position_effects(6, 1.0)
    w = rng.lognormal(0.0, 2.0, (500, 6)) * (rng.random((500, 6)) > 0.2)
    p = page_probs(w, kappa, no_click_logit=0.5)
    no_click = 1.0 - p.sum(1)
    assert (p >= 0).all() and (no_click > 0).all() and (no_click < 1).all()
    np.testing.assert_allclose(no_click, np.exp(0.5) / (np.exp(0.5) + (w * kappa).sum(1)))
    assert (p[w == 0] == 0).all()
    # draws follow the probabilities
    row = np.repeat(p[:1], 20000, axis=0)
    got = np.bincount(draw_choice(row, rng.random(20000)) + 1, minlength=7) / 20000
    np.testing.assert_allclose(got[1:], p[0], atol=0.01)
    np.testing.assert_allclose(got[0], no_click[0], atol=0.01)


def test_position_effects_decay_and_substitution() -> None:
    kappa = position_effects(4, 1.0)
    np.testing.assert_allclose(kappa, [1, 1 / 2, 1 / 3, 1 / 4])
    alone = page_probs(np.array([[1.0, 0, 0, 0]]), kappa, 0.0)[0, 0]
    crowded = page_probs(np.array([[1.0, 2.0, 0, 0]]), kappa, 0.0)[0, 0]
    assert crowded < alone  # a tempting neighbour takes clicks away
    with pytest.raises(ValueError, match="weights"):
        page_probs(np.ones((2, 3)), kappa, 0.0)


@pytest.mark.parametrize("quality_std,match_std", [(0.25, 0.25), (0.5, 0.1), (0.0, 0.4)])
def test_creative_effects_follow_the_configured_spread(quality_std: float, match_std: float) -> None:
    rng = np.random.default_rng(1)
    users = rng.standard_normal((400, 8))
    cfg = CreativeConfig(per_ad=3, quality_std=quality_std, match_std=match_std, encoder="hashing")
    cr = make_creatives(1500, users, cfg, rng, HashingEncoder(dim=64))
    assert len(cr.texts) == 4500 and cr.quality.shape == (1500, 3)
    np.testing.assert_allclose(cr.quality.mean(1), 0.0, atol=1e-12)  # centred within each ad
    within = np.sqrt((cr.quality ** 2).sum(1) / 2).mean()  # per-ad sample std, averaged
    assert within == pytest.approx(quality_std, rel=0.08, abs=1e-9)
    match = np.einsum("ud,acd->uac", users[:200], cr.direction)
    assert match.std() == pytest.approx(match_std, rel=0.1, abs=1e-9)
    np.testing.assert_allclose(match.mean(2), 0.0, atol=1e-9)


def test_creative_bandit_learns_the_best_creative() -> None:
    rng = np.random.default_rng(2)
    ctr = np.array([[0.02, 0.06, 0.03]])
    bandit = CreativeBandit(1, 3, rng)
    for _ in range(3000):
        c = bandit.choose(np.array([0]))
        bandit.update(np.array([0]), c, rng.random(1) < ctr[0, c])
    assert bandit.shows[0].argmax() == 1 and bandit.shows[0, 1] > 0.6 * bandit.shows.sum()


def test_fatigue_lowers_repeated_exposure_ctr() -> None:
    w2 = small_world()
    lb, eff = w2.ad_logits(np.array([3, 3, 3]))
    fresh = np.exp(lb + eff[..., 0])
    exposures = np.zeros(fresh.shape)
    exposures[1, 7], exposures[2, 7] = 1, 3
    ads = np.full((3, 3), -1)
    ads[:, 0] = 7
    org_w = np.ones((3, SMALL.page_size)) * 0.05
    from genads.market.headroom import true_page

    p, _ = true_page(w2, fresh * w2.fatigue(exposures, np.zeros(3)), ads, org_w)
    assert p[0, 0] > p[1, 0] > p[2, 0]
    p_blind, _ = true_page(w2, fresh * w2.fatigue(np.zeros(fresh.shape), np.array([0.0, 5.0, 10.0])), ads, org_w)
    assert p_blind[0, 0] > p_blind[1, 0] > p_blind[2, 0]  # ad blindness: ads seen earlier in the session
    none = replace(w2, config=replace(w2.config, fatigue_same_ad=1.0, ad_blindness=0.0))
    np.testing.assert_allclose(none.fatigue(exposures, np.array([0.0, 5.0, 10.0])), 1.0)


def test_reserve_is_never_undercut() -> None:
    rng = np.random.default_rng(3)
    bids, q = rng.lognormal(0, 0.7, (400, 6)), rng.uniform(0.01, 0.2, (400, 6))
    bids[rng.random(bids.shape) < 0.1] = 0.0
    reserves = np.array([1.2, 0.8, 0.4])
    win, price = gsp_slot_reserves(bids, q, reserves)
    for j in range(3):
        shown = win[:, j] >= 0
        wb = bids[shown, win[shown, j]]
        assert (wb >= reserves[j]).all() and (price[shown, j] >= reserves[j]).all()
        assert (price[shown, j] <= wb + 1e-12).all()
    assert len({tuple(r[r >= 0]) for r in win}) > 1
    # the oracles never place an ad under its slot's reserve either
    w2 = small_world(replace(EXTRA, reserve_levels=(1.0, 0.6, 0.3)))
    lb, eff = w2.ad_logits(np.arange(20))
    view = np.exp(lb + eff.max(2))
    bids_all = w2.base.value
    for oracle in (VARIANTS["full"], VARIANTS["myopic"]):
        ads = PageChooser(w2, 6).choose(view, bids_all, bids_all, np.ones(SMALL.n_ads, bool), np.full((20, 6), 0.1),
                                        oracle)
        for j in range(3):
            shown = ads[:, j] >= 0
            assert (bids_all[ads[shown, j]] >= w2.reserves[j]).all()


def test_learning_bidder_spend_converges_in_a_stationary_world() -> None:
    rng = np.random.default_rng(4)
    bidders = BanditBidders(np.array([True]), LearningBidderConfig(share=1.0), rng)
    competitor, value, spends = 0.6, 1.0, []
    for _ in range(600):
        bid = value * bidders.multipliers()[0]
        clicks = rng.binomial(100, 0.1) if bid > competitor else 0
        spend = clicks * bid  # first price per click
        bidders.update(np.array([clicks * (value - bid)]), np.array([spend]))
        spends.append(spend)
    assert bidders.multipliers()[0] == pytest.approx(0.7)  # the least bid that still wins
    late, later = np.mean(spends[-200:-100]), np.mean(spends[-100:])
    assert later == pytest.approx(late, rel=0.1) and later == pytest.approx(7.0, rel=0.1)


def test_logging_policy_is_not_uniform_and_ips_corrects_it() -> None:
    rng = np.random.default_rng(5)
    n, B = 20, 40000
    ctr = np.linspace(0.01, 0.2, n)
    scores = np.broadcast_to(np.log(ctr), (B, n))
    items, props = plackett_luce(scores, 3, 0.5, rng)
    assert (items >= 0).all() and (props > 0).all() and (props <= 1).all()
    assert len({tuple(sorted(r)) for r in items[:200]}) > 1
    shown = np.bincount(items[:, 0], minlength=n) / B
    assert shown[-1] > 5 * shown[0]  # the old system's favourites dominate the log
    clicks = (rng.random(B) < ctr[items[:, 0]]).astype(float)
    assert clicks.mean() > 1.3 * ctr.mean()  # naive: biased
    assert ips_mean(clicks, props[:, 0], n) == pytest.approx(ctr.mean(), rel=0.08)


def test_full_oracle_beats_each_blind_one_where_pages_are_independent() -> None:
    extra = replace(EXTRA, fatigue_same_ad=1.0, ad_blindness=0.0, organic_value=1.0,
                    learning=LearningBidderConfig(share=0.0))
    w2 = small_world(extra, seed=6)
    traffic = make_traffic2(w2, STUDY, np.random.default_rng(7))
    budget = np.full(SMALL.n_advertisers, 1e9)
    lam = np.zeros(SMALL.n_advertisers)
    full = run_oracle(w2, traffic, VARIANTS["full"], budget, lam, 0, STUDY.pool)["objective"]
    for name in ("creative_blind", "myopic", "fixed_load"):
        assert full >= run_oracle(w2, traffic, VARIANTS[name], budget, lam, 0, STUDY.pool)["objective"] - 1e-9
    assert full > run_oracle(w2, traffic, VARIANTS["creative_blind"], budget, lam, 0, STUDY.pool)["objective"]


def test_seeded_runs_are_reproducible() -> None:
    def once(seed: int) -> dict:
        w2 = small_world(seed=seed)
        return seed_headroom(w2, make_traffic2(w2, STUDY, np.random.default_rng(seed + 1)), STUDY, seed)

    a, b, c = once(1), once(1), once(2)
    assert a == b and a != c
    rows = headroom_table([{"markets": a}, {"markets": c}])
    assert {r["effect"] for r in rows} == {"creative", "slate", "ad_load", "fatigue", "budget"}
    assert all(np.isfinite(r["headroom"]) for r in rows)


def test_world2_config_loads_and_names_bad_keys(tmp_path: Path) -> None:
    world, extra, study = load_study(ROOT / "configs" / "market_world2.yaml")
    assert world.ad_positions == (1, 3, 5) and extra.creatives.per_ad == 3 and len(study.seeds) == 10
    bad = tmp_path / "bad.yaml"
    bad.write_text("world2: {fatigue_same_ad: 0.8, fatigue: 1}\n")
    with pytest.raises(ValueError, match="fatigue"):
        load_study(bad)
    bad.write_text("world2: {reserve_levels: [0.1, 0.1]}\n")
    with pytest.raises(ValueError, match="reserve_levels"):
        load_study(bad)


def test_page_choice_world_is_the_mnl_behind_the_first_worlds_api() -> None:
    from genads.market.headroom import true_page
    from genads.market.world2 import page_choice_world

    extra = replace(EXTRA, no_click_logit=0.5)
    pw = page_choice_world(SMALL, extra, np.random.default_rng(8), HashingEncoder(dim=64))
    w2 = make_world2(SMALL, extra, np.random.default_rng(8), HashingEncoder(dim=64))
    users = np.arange(30)
    rng = np.random.default_rng(9)
    ads = np.stack([rng.choice(SMALL.n_ads, 3, replace=False) for _ in users])
    ads[::4, 2] = -1
    org = np.stack([rng.choice(SMALL.n_organic, 3, replace=False) for _ in users])
    p = pw.page_click_prob(users, ads, org)
    assert (p.sum(1) < 1).all() and pw.config.slate_effects
    # the same pages in the second world with each ad's creative best for everyone and no fatigue
    lb, eff = w2.ad_logits(users)
    w = np.exp(lb + eff[:, np.arange(SMALL.n_ads), best_for_everyone(w2.creatives, w2.base.users)])
    org_w = np.exp(np.take_along_axis(w2.organic_logits(users), org, 1))
    compact = np.full(ads.shape, -1)
    for r in range(len(ads)):  # true_page packs ads on the first slots; here empty slots only sit last
        compact[r, :(ads[r] >= 0).sum()] = ads[r][ads[r] >= 0]
    full_pages = (ads >= 0).all(1)
    p_ads, _ = true_page(w2, w, compact, np.pad(org_w, ((0, 0), (0, 3))))
    np.testing.assert_allclose(p[full_pages][:, list(SMALL.ad_positions)], p_ads[full_pages], rtol=1e-9)
    draws = np.random.default_rng(10).random((40000, SMALL.page_size))
    clicks = pw.page_clicks(np.zeros(40000, dtype=int), np.repeat(ads[:1], 40000, 0), np.repeat(org[:1], 40000, 0),
                            draws)
    assert clicks.sum(1).max() == 1
    np.testing.assert_allclose(clicks.mean(0), p[0], atol=0.01)


def test_sim_config_page_world_is_opt_in() -> None:
    from genads.market.config import SimConfig
    from genads.market.logs import LogConfig
    from genads.market.value_study import draw_world
    from genads.market.world import World, make_world
    from genads.market.world2 import PageChoiceWorld

    base = SimConfig(world=SMALL, logs=LogConfig(log_requests=50))
    old = draw_world(base, np.random.default_rng(3))
    assert type(old) is World
    np.testing.assert_array_equal(old.users, make_world(SMALL, np.random.default_rng(3)).users)
    new = draw_world(replace(base, page_world=EXTRA), np.random.default_rng(3))
    assert isinstance(new, PageChoiceWorld)
    with pytest.raises(ValueError, match="reserve_levels"):
        SimConfig(world=SMALL, page_world=replace(EXTRA, reserve_levels=(0.1,)))


def test_logs_from_a_previous_system_are_biased_towards_its_favourites() -> None:
    from genads.market.logs import LogConfig, exploration_log, past_clicks
    from genads.market.world2 import page_choice_world

    pw = page_choice_world(SMALL, EXTRA, np.random.default_rng(11), HashingEncoder(dim=64))
    shown_ctr = {}
    for name, temp in (("uniform", None), ("previous", 0.5)):
        cfg = LogConfig(history_len=5, log_requests=600, max_history=8, logging_temperature=temp)
        rng = np.random.default_rng(12)
        imp, _ = exploration_log(pw, past_clicks(pw, cfg, rng), cfg, rng)
        ads = imp.item - 1
        shown_ctr[name] = pw.ad_ctr(imp.user, ads[:, None])[:, 0].mean()
        counts = np.bincount(ads, minlength=SMALL.n_ads)
        if temp is not None:
            assert counts.max() > 4 * max(np.median(counts), 1)  # the old system's favourites dominate
    assert shown_ctr["previous"] > 1.5 * shown_ctr["uniform"]
    with pytest.raises(ValueError, match="logging_temperature"):
        LogConfig(logging_temperature=0.0)


def test_creative_best_for_everyone_has_the_highest_mean_effect() -> None:
    w2 = small_world(replace(EXTRA, creatives=CreativeConfig(quality_std=0.0, match_std=0.5, encoder="hashing")))
    users = w2.base.users
    mean_effect = w2.creatives.all_effects(users).mean(0)  # (n_ads, C)
    best = best_for_everyone(w2.creatives, users)
    np.testing.assert_array_equal(best, mean_effect.argmax(1))
    assert len(set(best.tolist())) > 1  # with no quality spread, not always the first creative
