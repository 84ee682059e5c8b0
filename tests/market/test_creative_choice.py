"""Creative choice in the second world's verdict (issue 28, item 1): the world's creative-aware click model, the
log's creative rotation, the cascade's bandit after the auction and the end-to-end side's joint (ad, creative) score."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from genads.auction.mechanisms import gsp
from genads.creative.encoders import HashingEncoder
from genads.market.bidders import BidderConfig
from genads.market.creative_choice import (
    CascadeCreatives,
    CreativeHead,
    JointCreatives,
    OracleCreatives,
    fit_creative_head,
    log_counts,
    with_creatives,
)
from genads.market.creatives import CreativeConfig
from genads.market.engine import EpisodeConfig, make_traffic, run_episode
from genads.market.logs import LogConfig, exploration_log, make_logs, past_clicks
from genads.market.world import WorldConfig, make_world
from genads.market.world2 import World2Config, make_world2, page_choice_world

SMALL = WorldConfig(n_users=80, n_ads=40, n_advertisers=8, n_organic=30, dim=6, topics=3, budget_per_1000=50.0)
EXTRA = World2Config(creatives=CreativeConfig(quality_std=0.3, match_std=0.6, encoder="hashing"))


def world(extra: World2Config = EXTRA, cfg: WorldConfig = SMALL, seed: int = 4):
    return page_choice_world(cfg, extra, np.random.default_rng(seed), HashingEncoder(dim=64))


class TrueCTR:
    """Candidates: the live ads of highest true CTR (default creative) x bid; the engine passes the users."""

    name, needs_users = "truth", True

    def __init__(self, w, n: int = 5) -> None:
        self.w, self.n = w, n

    def propose(self, history, live, bids, users):
        ctr = self.w.all_ad_ctr(users)
        score = np.where((live & (bids > 0))[None], ctr * bids[None], -np.inf)
        ads = np.argsort(-score, axis=1, kind="stable")[:, : self.n]
        ok = np.take_along_axis(score, ads, 1) > -np.inf
        return np.where(ok, ads, -1), np.where(ok, np.take_along_axis(ctr, ads, 1), 1e-9)

    def auction(self, bids, quality):
        return gsp(bids, quality, len(self.w.slot_ctr), slot_ctr=self.w.slot_ctr)


def test_the_page_world_carries_each_creatives_true_effect() -> None:
    pw = world()
    w2 = make_world2(SMALL, EXTRA, np.random.default_rng(4), HashingEncoder(dim=64))
    users = np.arange(20)
    ads = np.tile(np.arange(3), (20, 1))
    ads[3, 2] = -1
    np.testing.assert_allclose(pw.ad_ctr(users, ads, pw.default_creative[np.maximum(ads, 0)]), pw.ad_ctr(users, ads))
    # the lift of creative c over the default is the second world's effect difference
    eff = w2.creatives.effect(w2.base.users[users], ads)  # (B, k, C)
    default = np.take_along_axis(eff, pw.default_creative[np.maximum(ads, 0)][..., None], 2)
    want = np.where((ads >= 0)[..., None], eff - default, 0.0)
    np.testing.assert_allclose(pw.creative_lift(users, ads), want, atol=1e-9)
    best, worst = want.argmax(2), want.argmin(2)
    hi, lo = pw.page_click_prob(users, ads, None, best), pw.page_click_prob(users, ads, None, worst)
    pos = list(SMALL.ad_positions)
    assert (hi[:, pos] >= lo[:, pos] - 1e-15).all() and (hi[:, pos] > lo[:, pos] + 1e-6).any()
    assert (hi.sum(1) < 1).all()  # still a choice with a no-click option
    assert pw.creative_embedding.shape == (SMALL.n_ads, 3, 64)


def test_the_log_rotates_creatives_and_the_first_worlds_log_has_none() -> None:
    pw = world()
    cfg = LogConfig(history_len=5, log_requests=900, max_history=8, logging_temperature=0.5)
    rng = np.random.default_rng(5)
    imp, _ = exploration_log(pw, past_clicks(pw, cfg, rng), cfg, rng)
    counts = np.bincount(imp.creative, minlength=3)
    assert counts.sum() == 2700 and (np.abs(counts / 2700 - 1 / 3) < 0.04).all()
    clicks, shows = log_counts(imp, SMALL.n_ads, 3)
    assert shows.sum() == 2700 and clicks.sum() == imp.click.sum()
    w1 = make_world(SMALL, np.random.default_rng(4))
    logs = make_logs(w1, LogConfig(history_len=5, log_requests=50, max_history=8), np.random.default_rng(5))
    assert logs.impressions.creative is None
    with pytest.raises(ValueError, match="no creatives"):
        log_counts(logs.impressions, SMALL.n_ads, 3)


def test_the_cascade_bandit_picks_after_the_auction_and_learns_from_its_own_clicks() -> None:
    pw = world()
    cfg = EpisodeConfig(requests=400, batch_size=50, audit_auctions=4)
    traffic = make_traffic(pw, cfg, np.random.default_rng(6))
    prior_clicks, prior_shows = np.zeros((SMALL.n_ads, 3)), np.zeros((SMALL.n_ads, 3))
    prior_shows[:], prior_clicks[:] = 400.0, [20.0, 20.0, 200.0]  # the log says creative 2 is far better
    pipe = CascadeCreatives(TrueCTR(pw), prior_clicks, prior_shows, seed=1)
    hist = np.arange(SMALL.n_users)[:, None]
    res = run_episode(pw, pipe, hist, traffic, BidderConfig(), cfg, 0)
    learned = pipe.bandit.shows - prior_shows
    assert learned.sum() == res["fill_rate"] * 400 * 3  # every shown slot, once
    assert learned[:, 2].sum() > 0.95 * learned.sum()  # it follows its prior ...
    assert (pipe.bandit.clicks - prior_clicks).sum() == round(res["clicks_per_mille"] * 400 / 1000)  # ... and its clicks
    frozen = CascadeCreatives(TrueCTR(pw), prior_clicks, prior_shows, seed=1, online=False)
    run_episode(pw, frozen, hist, traffic, BidderConfig(), cfg, 0)
    assert (frozen.bandit.shows == prior_shows).all()


def test_creative_choice_reaches_the_clicks_and_runs_are_reproducible() -> None:
    pw = world(cfg=replace(SMALL, base_logit=-1.5))
    cfg = EpisodeConfig(requests=600, batch_size=100, audit_auctions=4)
    traffic = make_traffic(pw, cfg, np.random.default_rng(7))
    hist = np.arange(SMALL.n_users)[:, None]

    def run(pipe):
        res = run_episode(pw, pipe, hist, traffic, BidderConfig(), cfg, 0)
        res.pop("audit")
        return res

    aware, blind = run(OracleCreatives(TrueCTR(pw), pw)), run(TrueCTR(pw))
    assert aware["ctr_expected"] > 1.03 * blind["ctr_expected"]
    assert run(OracleCreatives(TrueCTR(pw), pw)) == aware
    a = run(CascadeCreatives(TrueCTR(pw), *log_counts_uniform(), seed=3))
    assert a == run(CascadeCreatives(TrueCTR(pw), *log_counts_uniform(), seed=3))


def log_counts_uniform() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((SMALL.n_ads, 3)), np.zeros((SMALL.n_ads, 3))


def test_joint_choice_ranks_each_candidate_with_its_best_creative() -> None:
    pw = world()
    head = CreativeHead(beta=np.zeros((SMALL.n_ads, 3)), W=np.zeros((SMALL.dim, 2)), basis=np.zeros((SMALL.n_ads, 3, 2)),
                        features=pw.ad_features)
    head.beta[7] = [-1.0, 0.0, 2.0]  # ad 7's third creative lifts its logit by 2 for everyone
    inner = SimpleNamespace(name="e2e", propose=lambda h, live, bids: (np.array([[3, 7, -1]]), np.array([[0.1, 0.1, 1e-9]])),
                            auction=None)
    joint = JointCreatives(inner, head)
    _, q = joint.propose(np.zeros((1, 4), dtype=np.int64), None, None, np.array([0]))
    assert q[0, 0] == pytest.approx(0.1) and q[0, 1] == pytest.approx(1 / (1 + 9 * np.exp(-2.0)))
    assert q[0, 2] == 1e-9
    np.testing.assert_array_equal(joint.creatives(None, np.array([[7, 3, -1]]), None), [[2, 0, 0]])


def test_the_creative_head_learns_who_likes_which_creative() -> None:
    extra = World2Config(creatives=CreativeConfig(quality_std=0.0, match_std=1.0, encoder="hashing"))
    cfg = replace(SMALL, n_users=400, n_ads=30, base_logit=-1.0)
    pw = world(extra, cfg, seed=8)
    logs = make_logs(pw, LogConfig(history_len=6, log_requests=6000, max_history=10), np.random.default_rng(9))
    head, info = fit_creative_head(pw.ad_features, pw.creative_embedding, logs.impressions, cfg.ad_load, 0.2, seed=0)
    assert set(info["held_logloss_by_l2"]) == {"0.0001", "0.001", "0.01"}
    users = np.arange(cfg.n_users)
    ads = np.tile(np.arange(cfg.n_ads), (cfg.n_users, 1))
    hist = np.zeros((cfg.n_users, 10), dtype=np.int64)
    for u in users:
        h = logs.histories[u][-10:]
        hist[u, -len(h):] = h
    true = pw.creative_lift(users, ads)  # (U, n_ads, C)
    chosen = np.take_along_axis(true, head.lift(hist, ads).argmax(2)[..., None], 2)[..., 0]
    everyone = np.take_along_axis(true, pw.default_creative[ads][..., None], 2)[..., 0]  # = 0: the default
    # a personal choice beats the one creative best for everyone by a clear share of what the truth allows
    assert chosen.mean() > everyone.mean() + 0.25 * (true.max(2).mean() - everyone.mean())


def test_with_creatives_is_a_no_op_in_a_world_without_creatives() -> None:
    w1 = make_world(SMALL, np.random.default_rng(0))
    pipe = TrueCTR(w1)
    assert with_creatives(pipe, SimpleNamespace(world=w1), 0.2) is pipe
    pw = world()
    wrapped = with_creatives(TrueCTR(pw), SimpleNamespace(world=pw), 0.2)
    assert isinstance(wrapped, OracleCreatives) and wrapped.name == "truth" and wrapped.n == 5
    with pytest.raises(TypeError, match="no creative choice"):
        with_creatives(SimpleNamespace(name="x"), SimpleNamespace(world=pw), 0.2)


def test_with_creatives_gives_each_architecture_its_own_creative_model() -> None:
    from genads.market.cascade import Cascade, CascadeConfig
    from genads.market.e2e_parallel import ParallelEndToEnd

    pw = world()
    logs = make_logs(pw, LogConfig(history_len=5, log_requests=300, max_history=8), np.random.default_rng(3))
    market = SimpleNamespace(world=pw, drawn=pw, logs=logs, seed=5)
    cascade = Cascade(None, None, CascadeConfig(retrieve=10, candidates=4), pw.slot_ctr)
    wrapped = with_creatives(cascade, market, 0.2)
    assert isinstance(wrapped, CascadeCreatives) and wrapped.cfg.retrieve == 10  # the cascade's own attributes
    clicks, shows = log_counts(logs.impressions, SMALL.n_ads, 3)
    np.testing.assert_array_equal(wrapped.bandit.shows, shows)
    np.testing.assert_array_equal(wrapped.bandit.clicks, clicks)
    fitted = market._creative_models
    e2e = ParallelEndToEnd.__new__(ParallelEndToEnd)  # only its type matters here
    joint = with_creatives(e2e, market, 0.2)
    assert isinstance(joint, JointCreatives) and joint.head is fitted["head"]  # fitted once per market
    again = with_creatives(cascade, market, 0.2)
    assert again.bandit is not wrapped.bandit and (again.bandit.shows == shows).all()  # a fresh bandit per episode
