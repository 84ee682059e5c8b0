from __future__ import annotations

import numpy as np
import pytest

from genads.data.split import left_pad
from tests.market.test_rl import market  # noqa: F401  (the shared tiny trained pipeline)


def test_candidates_are_live_distinct_and_ranked_by_generation_score(market) -> None:  # noqa: F811
    world, logs, pipe, info = market
    hist = left_pad(logs.histories, 12)[:50]
    live = np.ones(world.config.n_ads, dtype=bool)
    live[::3] = False
    ads, pctr = pipe.propose(hist, live, world.value)
    assert ads.shape == (50, pipe.cfg.candidates) and (ads >= 0).all()
    assert live[ads].all()
    assert all(len(set(row)) == len(row) for row in ads.tolist())
    assert ((pctr > 0) & (pctr < 1)).all()
    h, logp, mem = pipe.user_state(hist)
    score, _ = pipe.policy_scores(h, logp, world.value, mem)
    got = np.take_along_axis(score.detach().numpy(), ads, 1)
    assert (np.diff(got, axis=1) <= 1e-9).all()
    assert got[:, -1].min() >= score.detach().numpy()[:, live].min()
    assert info["value_head"]["valid_logloss"] < info["value_head"]["valid_logloss_constant"]


def test_fewer_live_ads_than_candidates_pad_with_minus_one(market) -> None:  # noqa: F811
    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)[:5]
    live = np.zeros(world.config.n_ads, dtype=bool)
    live[[3, 7]] = True
    ads, _ = pipe.propose(hist, live, world.value)
    assert (np.sort(ads[:, :2], axis=1) == [3, 7]).all() and (ads[:, 2:] == -1).all()
    ads, _ = pipe.propose(hist, np.zeros_like(live), world.value)
    assert (ads == -1).all()


def test_a_higher_bid_never_lowers_an_ads_generation_rank(market) -> None:  # noqa: F811
    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)[:20]
    h, logp, mem = pipe.user_state(hist)
    bids = world.value.copy()
    base, _ = pipe.policy_scores(h, logp, bids, mem)
    ad = 11
    bids[ad] *= 5
    raised, _ = pipe.policy_scores(h, logp, bids, mem)
    rank = lambda s: (s.detach().numpy() > s.detach().numpy()[:, [ad]]).sum(1)  # noqa: E731
    assert (rank(raised) <= rank(base)).all()
    no_bid = pipe.with_config(alpha=0.0)
    s0, _ = no_bid.policy_scores(h, logp, world.value, mem)
    s1, _ = no_bid.policy_scores(h, logp, bids, mem)
    assert np.allclose(s0.detach().numpy(), s1.detach().numpy())


def test_learned_payments_need_a_net(market) -> None:  # noqa: F811
    _, _, pipe, _ = market
    with pytest.raises(RuntimeError, match="payment network"):
        pipe.with_config(payments="learned").auction(np.ones((2, 4)), np.full((2, 4), 0.1))
    alloc = pipe.with_config(payments="gsp").auction(np.ones((2, 4)), np.full((2, 4), 0.1))
    assert (alloc.prices <= 1.0 + 1e-12).all()


def test_the_gate_generates_only_among_the_most_relevant_ads(market) -> None:  # noqa: F811
    import torch

    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)[:25]
    live = np.ones(world.config.n_ads, dtype=bool)
    live[::5] = False
    bids = world.value
    _, logp, _ = pipe.user_state(hist)
    for gate, alpha in ((10, 0.0), (10, 1.0), (30, 2.0)):
        ads, _ = pipe.with_config(gate=gate, gate_alpha=alpha).propose(hist, live, bids)
        rel = logp.double().numpy() + alpha * np.log(bids)[None]
        rel[:, ~live] = -np.inf
        kth = -np.sort(-rel, axis=1)[:, gate - 1:gate]  # the gate's threshold (ties at it may go either way)
        assert (np.take_along_axis(rel, ads, 1) >= kth - 1e-9).all()
        # inside the gate the order is the ungated generation score's
        score, _ = pipe.policy_scores(*pipe.user_state(hist)[:2], bids, pipe.user_state(hist)[2])
        s = score.detach().double().numpy()
        assert all((np.diff(s[i, a]) <= 1e-9).all() for i, a in enumerate(ads))
    # a gate as wide as the live set changes nothing
    full, _ = pipe.with_config(gate=int(live.sum())).propose(hist, live, bids)
    assert np.array_equal(full, pipe.propose(hist, live, bids)[0])
    with pytest.raises(ValueError, match="gate"):
        pipe.with_config(gate=-1)
    assert torch.is_tensor(logp)
