import numpy as np
import pandas as pd
import pytest
import torch

from genads.decode.beam import live_trie
from genads.reward import RewardConfig, SlateRewardModel
from genads.reward.pipeline import (
    BeamGenerator,
    SimulationConfig,
    compare_decoders,
    item_bids,
    item_popularity,
    slate_outcomes,
    training_log,
)
from genads.reward.simulate import ClickModel
from genads.slate.model import PRESETS, SlateModel, sized_for


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    n = 60
    sids = np.zeros((n + 1, 3), dtype=np.int64)
    i = rng.permutation(n)
    sids[1:] = np.stack([i // 16, (i // 4) % 4, i % 4], axis=1)  # 60 distinct SIDs, 3 levels x 4 codes
    torch.manual_seed(0)
    model = SlateModel(sized_for(PRESETS["tiny"], sids))
    bids = np.concatenate([[0.0], rng.lognormal(0, 0.6, n)])
    history = rng.integers(0, n + 1, (40, 6))
    return sids, model, live_trie(sids), bids, history, rng.integers(1, n + 1, 40)


def test_training_log_and_comparison(world):
    sids, model, trie, bids, history, targets = world
    pop = item_popularity([history[i][history[i] > 0] for i in range(len(history))], len(sids) - 1)
    cfg = SimulationConfig(requests=30, repeats=2, slate_size=4, pool_size=8, beam_share=0.5)
    log, hist = training_log(history, targets, pop, cfg, seed=0, generator=BeamGenerator(model, trie, sids))
    assert log.slates.shape == (60, 4) and hist.shape == (30, 6) and log.rows.max() == 29
    assert all(len(set(r.tolist())) == 4 for r in log.slates) and (log.slates > 0).all()
    again, _ = training_log(history, targets, pop, cfg, seed=0, generator=BeamGenerator(model, trie, sids))
    assert (again.clicks == log.clicks).all()
    assert log.scores.shape == log.slates.shape and np.isfinite(log.scores).all() and (log.scores < 0).all()
    reward = SlateRewardModel(RewardConfig(levels=3, codebook_size=4, max_slate=4, d_model=8, n_layer=1, n_head=1,
                                           use_history=True, use_score=True))
    rows = compare_decoders(model, trie, sids, bids, pop, history[:10], targets[:10], reward, ClickModel(),
                            slate_size=4, beam=6, pool_size=8)
    assert [r["decoder"] for r in rows][:3] == ["plain beam", "bid-aware (max)", "bid-aware (mean)"]
    assert rows[1]["mean_bid"] >= rows[0]["mean_bid"] - 1e-9  # bids pull the slate toward higher bids
    assert all(0 <= r["recall@4"] <= 1 and r["sim_ctr"] >= 0 for r in rows)
    both = compare_decoders(model, trie, sids, bids, pop, history[:10], targets[:10], reward, ClickModel(),
                            slate_size=4, beam=6, pool_size=8, revenue_weights=(1.0, 0.0))
    assert [r["decoder"] for r in both][3:] == ["plain pool 8 + reward re-rank (w=1)",
                                                "bid-aware (max) pool 8 + reward re-rank (w=1)",
                                                "plain pool 8 + reward re-rank (w=0)",
                                                "bid-aware (max) pool 8 + reward re-rank (w=0)"]
    assert both[3]["model_value"] >= both[5]["model_value"] - 1e-6  # w=1 maximises the value model_value reports


def test_slate_outcomes_by_hand():
    bids = np.array([0.0, 1.0, 2.0, 3.0])
    pop = np.array([0.0, 1.0, 1.0, 1.0])
    cm = ClickModel(position_decay=1.0, relevant_ctr=0.5, base_ctr=0.1, popularity_power=0.0)
    out = slate_outcomes(np.array([[2, 3], [1, -1]]), np.array([3, 2]), bids, pop, cm)
    assert out["recall@2"] == 0.5 and out["ndcg@2"] == pytest.approx(0.5 / np.log2(3))
    assert out["mean_bid"] == pytest.approx(2.0)
    assert out["sim_ctr"] == pytest.approx((0.1 + 0.25 + 0.1) / 3)
    assert out["sim_revenue"] == pytest.approx(((0.1 * 2 + 0.25 * 3) + 0.1 * 1) / 2)


def test_item_bids_by_index():
    cat = pd.DataFrame({"ad_id": [30, 10, 20], "bid": [3.0, 1.0, np.nan]})
    out = item_bids(cat, np.array([-1, 10, 20, 30, 40]))
    assert out.tolist() == [0.0, 1.0, 0.0, 3.0, 0.0]
    with pytest.raises(ValueError, match="bid"):
        item_bids(cat.drop(columns="bid"), np.array([-1, 10]))
    with pytest.raises(ValueError, match="pool_size"):
        SimulationConfig(slate_size=10, pool_size=5)


def test_sid_logprob_matches_the_beam(world):
    from genads.decode.beam import generate_slate
    from genads.reward.features import sid_logprob

    sids, model, trie, _, history, _ = world
    slate = generate_slate(model, trie, sids, history[:7], beam=8, slate_size=8)
    ads = slate.ads.copy()
    ads[:, -1] = -1
    lp = sid_logprob(model, sids, history[:7], ads, batch_size=3)
    np.testing.assert_allclose(lp[:, :-1], slate.logprob[:, :-1], rtol=1e-5, atol=1e-5)
    assert np.isneginf(lp[:, -1]).all()
