import itertools

import numpy as np
import pytest
import torch

from genads.reward import RerankConfig, RewardConfig, SlateRewardModel, rerank, score_slates


class Oracle(SlateRewardModel):
    """pCTR = examination(slot) × a fixed per-ad attractiveness: a known reward to re-rank against."""

    def __init__(self, attract: np.ndarray, decay: float = 1.0) -> None:
        super().__init__(RewardConfig(levels=1, codebook_size=64, max_slate=6, d_model=4, n_layer=1, n_head=1))
        self.attract = torch.as_tensor(attract, dtype=torch.float32)
        self.decay = decay

    def forward(self, sids, bids, valid, history=None, history_valid=None, scores=None):
        exam = 1.0 / (1.0 + torch.arange(valid.shape[1])) ** self.decay
        p = (exam * self.attract[sids[..., 0]]).clamp(1e-6, 1 - 1e-6)
        return torch.logit(p)[..., None]


def setup(n=30, seed=0):
    rng = np.random.default_rng(seed)
    sids = np.arange(n + 1)[:, None]
    attract = np.concatenate([[0.0], rng.uniform(0.01, 0.5, n)])
    bids = np.concatenate([[0.0], rng.lognormal(0, 0.7, n)])
    return sids, attract, bids, rng


def test_revenue_rerank_is_optimal_for_a_separable_reward():
    sids, attract, bids, rng = setup()
    model = Oracle(attract)
    cands = np.stack([rng.permutation(np.arange(1, 31))[:8] for _ in range(5)])
    cfg = RerankConfig(slate_size=3, revenue_weight=1.0)
    out = rerank(model, cands, sids, bids, cfg)
    for row, ads, value in zip(cands, out.ads, out.value, strict=True):
        best = max(itertools.permutations(row.tolist(), 3),
                   key=lambda s: sum(attract[a] * bids[a] / (1 + k) for k, a in enumerate(s)))
        assert list(ads) == list(best)
        assert value == pytest.approx(sum(attract[a] * bids[a] / (1 + k) for k, a in enumerate(best)), rel=1e-4)
    assert (out.value >= out.pool_value - 1e-6).all()


def test_ctr_objective_orders_by_attractiveness_and_scores_match():
    sids, attract, bids, rng = setup(seed=1)
    model = Oracle(attract)
    cands = rng.permutation(np.arange(1, 31))[None, :10]
    cfg = RerankConfig(slate_size=4, revenue_weight=0.0, bid_ref=2.0)
    out = rerank(model, cands, sids, bids, cfg)
    top = cands[0][np.argsort(-attract[cands[0]], kind="stable")][:4]
    assert list(out.ads[0]) == list(top)
    p, v = score_slates(model, out.ads, sids, bids, cfg)
    assert np.allclose(v, out.value, rtol=1e-5) and np.allclose(p, out.pctr, rtol=1e-5)


def test_short_pools_duplicates_and_empty_rows():
    sids, attract, bids, _ = setup()
    model = Oracle(attract)
    cands = np.array([[5, 5, 7, -1, -1, -1], [-1] * 6, [1, 2, 3, 4, 5, 6]])
    out = rerank(model, cands, sids, bids, RerankConfig(slate_size=4))
    assert sorted(out.ads[0][:2].tolist()) == [5, 7] and (out.ads[0][2:] == -1).all()
    assert (out.ads[1] == -1).all() and out.value[1] == 0
    assert len(set(out.ads[2].tolist())) == 4 and set(out.ads[2].tolist()) <= set(range(1, 7))


def test_learned_model_runs_with_history():
    sids, _, bids, rng = setup()
    model = SlateRewardModel(RewardConfig(levels=1, codebook_size=64, max_slate=6, d_model=8, n_layer=1, n_head=1,
                                          use_history=True))
    cands = rng.integers(1, 31, (7, 9))
    out = rerank(model, cands, sids, bids, RerankConfig(slate_size=5, batch_size=3), history=rng.integers(0, 31, (7, 4)))
    assert out.ads.shape == (7, 5) and (out.value >= out.pool_value - 1e-6).all()
    with pytest.raises(ValueError, match="history"):
        rerank(model, cands, sids, bids, RerankConfig(slate_size=5))
    with pytest.raises(ValueError, match="revenue_weight"):
        RerankConfig(revenue_weight=2.0)


def test_scores_travel_with_their_ads():
    sids, _, bids, rng = setup()
    model = SlateRewardModel(RewardConfig(levels=1, codebook_size=64, max_slate=6, d_model=8, n_layer=1, n_head=1,
                                          use_score=True))
    cands = np.stack([rng.permutation(np.arange(1, 31))[:9] for _ in range(4)])
    scores = -cands.astype(np.float32) / 10  # a score that names its ad
    out = rerank(model, cands, sids, bids, RerankConfig(slate_size=5), scores=scores)
    np.testing.assert_allclose(out.scores, -out.ads / 10, rtol=1e-6)
    _, v = score_slates(model, out.ads, sids, bids, RerankConfig(slate_size=5), scores=out.scores)
    np.testing.assert_allclose(v, out.value, rtol=1e-5)
    with pytest.raises(ValueError, match="scores"):
        rerank(model, cands, sids, bids, RerankConfig(slate_size=5))
