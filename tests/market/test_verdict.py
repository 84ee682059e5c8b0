"""The market verdict: the optimiser's-curse fixes, the bid-aware cascade, the paced oracle and the Holm table."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genads.eval.statistics import holm_table
from genads.market.cascade import Cascade, CascadeConfig
from genads.market.ceilings import PacedOracle, slate_headroom
from genads.market.ranker import DIN, RankerConfig
from genads.market.value import ValueConfig, ValueHead, eb_shrink, shrunk_head
from genads.market.verdict import MARKETS
from genads.market.world import WorldConfig, make_world


def _chosen(seed: int, bid_spread: float) -> dict[str, tuple[float, float]]:
    """A market whose truth is known: 500 ads, true CTR logit = c + b_ad, each ad shown n_ad times (a skewed
    exploration log, 5-200 impressions) with binomial clicks; the platform picks the 5 ads of highest pCTR x bid
    from the fitted per-ad estimates (the MLE of b_ad), from their empirical-Bayes posterior means, or from the
    MLE's lower confidence bound (z = 1.5 sampling sds). Returns each rule's (mean true CTR, mean true eCPM) of its
    5 ads."""
    rng = np.random.default_rng(seed)
    n, c = 500, -2.5
    b = 0.4 * rng.standard_normal(n)
    shows = rng.integers(5, 200, n)
    clicks = rng.binomial(shows, 1 / (1 + np.exp(-(c + b))))
    rate = (clicks + 0.5) / (shows + 1.0)
    mle = np.log(rate / (1 - rate)) - c
    info = shows * rate * (1 - rate)
    bid = rng.lognormal(0.0, bid_spread, n)
    post, _, _ = eb_shrink(mle, info)
    sig = lambda x: 1 / (1 + np.exp(-(c + x)))  # noqa: E731
    out = {}
    for name, est in (("mle", mle), ("eb", post), ("lcb", mle - 1.5 / np.sqrt(info))):
        top = np.argsort(-sig(est) * bid)[:5]
        out[name] = (float(sig(b[top]).mean()), float((sig(b[top]) * bid[top]).mean()))
    return out


def test_shrinkage_and_lcb_selection_raise_the_chosen_ads_true_ctr() -> None:
    runs = [_chosen(s, bid_spread=0.0) for s in range(20)]  # equal bids: the choice is by pCTR alone
    mle, eb, lcb = (np.mean([r[k][0] for r in runs]) for k in ("mle", "eb", "lcb"))
    assert eb > mle * 1.05, (mle, eb)
    assert lcb > mle * 1.05, (mle, lcb)


def test_shrinkage_raises_the_chosen_ads_true_ecpm_when_bids_differ() -> None:
    runs = [_chosen(s, bid_spread=0.3) for s in range(20)]
    mle, eb = (np.mean([r[k][1] for r in runs]) for k in ("mle", "eb"))
    assert eb > mle, (mle, eb)


def test_eb_shrink_recovers_the_prior_and_orders_by_information() -> None:
    rng = np.random.default_rng(0)
    truth = 0.5 * rng.standard_normal(4000)
    info = rng.uniform(2.0, 50.0, 4000)
    est = truth + rng.standard_normal(4000) / np.sqrt(info)
    post, sd, tau2 = eb_shrink(est, info)
    assert tau2 == pytest.approx(0.25, rel=0.15)
    assert np.mean((post - truth) ** 2) < np.mean((est - truth) ** 2)
    assert (sd < 1 / np.sqrt(info)).all()
    lo, hi = info < 5, info > 40  # little information: pulled harder toward the mean
    assert np.abs(post - est)[lo].mean() > np.abs(post - est)[hi].mean()
    unseen, sd0, _ = eb_shrink(np.r_[est, 3.0], np.r_[info, 0.0])
    assert abs(unseen[-1] - np.average(est, weights=info)) < 1e-9 and sd0[-1] == pytest.approx(np.sqrt(tau2))


def test_shrunk_head_pulls_biases_in_and_keeps_the_original() -> None:
    torch.manual_seed(0)
    head = ValueHead(4, torch.randn(11, 3), ValueConfig(d_value=2))
    with torch.no_grad():
        head.bias.weight[:, 0] = torch.linspace(-2, 2, 11)
        head.bias_info[1:] = torch.tensor([1.0, 1, 1, 1, 1, 100, 100, 100, 100, 100])
    before = head.bias.weight[:, 0].clone()
    out = shrunk_head(head)
    assert torch.equal(head.bias.weight[:, 0], before)
    moved = (out.bias.weight[1:, 0] - before[1:]).abs()
    assert moved[:5].mean() > moved[5:].mean() and (out.bias_sd[1:] > 0).all()


class _Net:
    def __init__(self, scores: torch.Tensor) -> None:
        self.s = scores

    def eval(self) -> None:
        pass

    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        return self.s[: len(seq)]


def _cascade(alpha: float, scores: torch.Tensor, n_ads: int) -> Cascade:
    retriever = SimpleNamespace(net=_Net(scores), config=SimpleNamespace(max_len=4))
    din = DIN(np.random.default_rng(0).standard_normal((n_ads, 3)).astype(np.float32), RankerConfig(d_model=4, hidden=8))
    return Cascade(retriever, din, CascadeConfig(retrieve=5, candidates=3, bid_alpha=alpha), np.array([1.0, 0.7, 0.5]))


def test_the_bid_aware_cascade_is_bid_monotone() -> None:
    rng = np.random.default_rng(1)
    n = 40
    scores = torch.as_tensor(rng.standard_normal((8, n + 1)))
    hist = np.ones((8, 4), dtype=np.int64)
    live = np.ones(n, dtype=bool)
    aware = _cascade(1.0, scores, n)
    for _ in range(20):
        bids = rng.lognormal(0, 0.5, n)
        before = aware.retrieve(hist, live, bids)
        j = int(rng.integers(n))
        for factor in (1.5, 3.0, 10.0):
            raised = bids.copy()
            raised[j] *= factor
            after = aware.retrieve(hist, live, raised)
            kept = [j in row for row in before]
            assert all(j in row for row, was in zip(after, kept, strict=True) if was)  # never dropped by bidding more
        assert any(j in row for row in aware.retrieve(hist, live, np.where(np.arange(n) == j, 1e6, bids)))
    blind = _cascade(0.0, scores, n)
    a, b = blind.retrieve(hist, live, rng.lognormal(0, 1, n)), blind.retrieve(hist, live, rng.lognormal(0, 1, n))
    assert all(set(x) == set(y) for x, y in zip(a, b, strict=True))  # bid-blind: bids change nothing
    ads, _ = aware.propose(hist, live, rng.lognormal(0, 0.5, n))
    assert ads.shape == (8, 3) and (ads >= 0).all()


def test_the_paced_oracle_lowers_a_budget_bound_advertisers_share() -> None:
    wc = WorldConfig(n_users=200, n_ads=60, n_advertisers=6, n_organic=20, dim=4, topics=2)
    world = make_world(wc, np.random.default_rng(0))
    world = replace(world, budget_rate=np.full(6, 1e6))
    # advertiser 0: highest value, a budget far below what the myopic oracle would spend on it
    world = replace(world, value=np.where(world.owner == 0, 3.0, 1.0),
                    budget_rate=np.where(np.arange(6) == 0, 1.0, 1e6))
    market = SimpleNamespace(world=world)
    users = np.random.default_rng(1).integers(200, size=150)
    bids = world.value.copy()
    live = np.ones(60, dtype=bool)
    paced = PacedOracle(market, 4, 150, eta=0.5, requests=150 * 15)
    shares = []
    for _ in range(15):
        ads, q = paced.propose(None, live, bids, users)
        alloc = paced.auction(np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0), q)
        won = np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1)[alloc.winners >= 0]
        shares.append(float((world.owner[won] == 0).mean()))
    assert paced.lam[0] > 0 and (paced.lam[1:] == 0).all()
    assert shares[-1] < shares[0]
    rich = PacedOracle(SimpleNamespace(world=replace(world, budget_rate=np.full(6, 1e6))), 4, 150, 0.5, 150 * 15)
    for _ in range(5):
        rich.propose(None, live, bids, users)
    assert (rich.lam == 0).all()  # a budget that cannot run out is never paced


def test_slate_headroom_is_zero_without_slate_effects_and_positive_with_them() -> None:
    base = WorldConfig(n_users=50, n_ads=40, n_advertisers=5, n_organic=20, dim=4, topics=2)
    users, rng = np.arange(10), np.random.default_rng(0)
    organic = rng.integers(20, size=(10, 3))
    flat = slate_headroom(make_world(base, np.random.default_rng(0)), users, organic, pool=6)
    assert flat["headroom"] == pytest.approx(0.0, abs=1e-12)
    slate = replace(base, click_model="cascade", stop_after_click=0.5, cannibalisation=0.9)
    out = slate_headroom(make_world(slate, np.random.default_rng(0)), users, organic, pool=6)
    assert out["headroom"] > 0 and out["best_slate_value"] >= out["myopic_value"]


def test_holm_table_adjusts_and_widens() -> None:
    rng = np.random.default_rng(0)
    tests = [{"alternative": "greater", "d": list(0.1 + 0.01 * rng.standard_normal(10))},
             {"alternative": "greater", "d": list(0.001 + 0.05 * rng.standard_normal(10))},
             {"alternative": "less", "d": list(-0.1 + 0.01 * rng.standard_normal(10))}]
    out = holm_table(tests)
    assert all(t["p_holm"] >= t["p"] for t in out)
    assert out[0]["rejected"] and out[2]["rejected"] and not out[1]["rejected"]
    assert out[1]["ci_level"] == pytest.approx(0.95) and max(t["ci_level"] for t in out) == pytest.approx(1 - 0.05 / 3)
    assert set(MARKETS) == {"budget_bound", "unconstrained"}
