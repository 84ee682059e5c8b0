import numpy as np
import pytest
import torch

from genads.decode.bidding import BidConfig
from genads.parallel import LiveAds, score_items


def random_logp(b: int, m: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, m, k, generator=g, dtype=torch.float64), -1)


def test_exact_scores_equal_a_naive_per_ad_sum():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, size=(41, 5))
    logp = random_logp(3, 5, 8)
    fast = score_items(logp, torch.from_numpy(codes))
    for b in range(3):
        for n in range(41):
            assert fast[b, n].item() == pytest.approx(sum(logp[b, j, codes[n, j]].item() for j in range(5)))


def test_topk_equals_reference_with_and_without_bids_and_only_live_ads():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 8, size=(31, 4))
    live = LiveAds(codes, bids={i: float(rng.uniform(0.1, 5)) for i in range(1, 31)})
    for gone in (3, 7, 11):
        live.remove(gone)
    logp = random_logp(1, 4, 8, seed=2)
    for cfg in (None, BidConfig(alpha=1.0, beta=0.1)):
        fast = live.topk(logp, 10, bid_config=cfg)
        ref = live.topk_reference(logp, 10, bid_config=cfg)
        np.testing.assert_array_equal(fast.ads, ref.ads)
        np.testing.assert_allclose(fast.scores, ref.scores, rtol=1e-9)
        assert not set(fast.ads[0]) & {3, 7, 11, 0}
    everything = live.topk(logp, 40)
    assert (everything.ads[0, :27] > 0).all() and (everything.ads[0, 27:] == -1).all()


def test_raising_a_bid_never_lowers_the_ads_rank():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 8, size=(21, 4))
    live = LiveAds(codes, bids={i: 1.0 for i in range(1, 21)})
    logp = random_logp(1, 4, 8, seed=4)
    cfg = BidConfig(alpha=1.0, beta=0.0)
    ad = int(live.topk(logp, 20, bid_config=cfg).ads[0, -1])  # the worst-placed ad
    ranks = []
    for bid in (1.0, 2.0, 5.0, 50.0, 5000.0):
        live.set_bid(ad, bid)
        ranks.append(list(live.topk(logp, 20, bid_config=cfg).ads[0]).index(ad))
    assert ranks == sorted(ranks, reverse=True) and ranks[-1] == 0 and ranks[0] == 19


def test_added_ad_is_scored_at_once_and_exclude_works():
    codes = np.zeros((4, 2), dtype=np.int64)
    codes[1:] = [[1, 1], [2, 2], [3, 3]]
    live = LiveAds(codes)
    logp = torch.log_softmax(torch.tensor([[[0.0, 0.0, 0.0, 0.0, 9.0], [0.0, 0.0, 0.0, 0.0, 9.0]]]), -1)
    assert 100 not in set(live.topk(logp, 3).ads[0])
    live.add(100, np.array([4, 4]), bid=1.0)  # a brand-new ad whose codes the user's state prefers
    assert live.topk(logp, 1).ads[0, 0] == 100
    assert live.topk(logp, 1, exclude=np.array([[100, 0]])).ads[0, 0] != 100
    with pytest.raises(ValueError, match="3 codes"):
        live.add(5, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="bid -1"):
        live.set_bid(1, -1)


def test_matrix_ranking_equals_exact_log_probability_ranking():
    from genads.parallel import ParallelConfig, ParallelModel
    from genads.parallel.train import exact_topk

    torch.manual_seed(0)
    model = ParallelModel(ParallelConfig(n_codes=4, codebook_size=8, d_code=4, d_model=16, n_layer=1, max_items=6,
                                         n_items=30)).eval()
    codes = torch.randint(0, 8, (31, 4))
    codes[0] = 0
    history = np.random.default_rng(0).integers(1, 31, size=(5, 6))
    fast = exact_topk(model, codes, history, 10)
    with torch.no_grad():
        logp = model.next_logprobs(torch.from_numpy(history), codes[torch.from_numpy(history)])
        live = LiveAds(codes.numpy())
        exact = live.topk(logp.double(), 10).ads
    np.testing.assert_array_equal(fast, exact)


def test_in_place_updates_stay_consistent_with_the_reference():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 8, size=(60, 4))
    live = LiveAds(codes, live=range(1, 20), bids={i: 1.0 for i in range(1, 60)})
    for _ in range(200):  # random adds, removes, re-adds and bid changes (swap-with-last removal)
        key = int(rng.integers(1, 60))
        op = rng.integers(3)
        if op == 0:
            live.add(key, codes[key])
        elif op == 1:
            live.remove(key)
        else:
            live.set_bid(key, float(rng.uniform(0.1, 3)))
    keys = set(live.keys.tolist())
    assert len(keys) == len(live) and all(k in live for k in keys)
    for key in keys:
        np.testing.assert_array_equal(live.codes_of(key), codes[key])
    logp = random_logp(1, 4, 8, seed=6)
    cfg = BidConfig(alpha=1.0, beta=0.0)
    np.testing.assert_array_equal(live.topk(logp, 15, bid_config=cfg).ads, live.topk_reference(logp, 15, cfg).ads)


def test_id_scores_are_added_per_key_and_an_ad_without_an_id_row_reads_column_zero():
    """A model whose item score has an ID term: each live ad gets ``id_scores[:, key]``; an ad added after training
    (a key beyond the ID table) gets column 0 (the zero padding row), for the batched and the one-row paths."""
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 8, size=(31, 4))
    live = LiveAds(codes, bids={i: float(rng.uniform(0.1, 5)) for i in range(1, 31)})
    live.remove(5)
    live.add(40, codes[3], bid=2.0)  # no ID row: scored by its codes alone
    g = torch.Generator().manual_seed(5)
    id_scores = torch.randn(3, 31, generator=g, dtype=torch.float64) * 3
    id_scores[:, 0] = 0.0
    logp = random_logp(3, 4, 8, seed=6)
    keys, plain = live.scores(logp)
    _, with_ids = live.scores(logp, id_scores)
    cols = torch.where(keys < 31, keys, torch.zeros_like(keys))
    torch.testing.assert_close(with_ids, plain + id_scores[:, cols])
    assert with_ids[:, keys.tolist().index(40)].tolist() == plain[:, keys.tolist().index(40)].tolist()
    for cfg in (None, BidConfig(alpha=1.0, beta=0.1)):
        for row in range(3):
            fast = live.topk(logp[row:row + 1], 10, bid_config=cfg, id_scores=id_scores[row:row + 1])
            ref = live.topk_reference(logp[row:row + 1], 10, bid_config=cfg, id_scores=id_scores[row:row + 1])
            np.testing.assert_array_equal(fast.ads, ref.ads)
            np.testing.assert_allclose(fast.scores, ref.scores, rtol=1e-9)
        batched = live.topk(logp, 10, bid_config=cfg, id_scores=id_scores)
        assert batched.ads[1].tolist() == live.topk(logp[1:2], 10, bid_config=cfg, id_scores=id_scores[1:2]).ads[0].tolist()


def test_item_logprobs_is_the_item_softmax_of_the_model_score():
    from genads.parallel.model import ParallelConfig, ParallelModel, item_logprobs

    torch.manual_seed(0)
    n, m, k, t_item = 30, 4, 8, 0.05
    codes = torch.cat([torch.zeros(1, m, dtype=torch.long), torch.randint(0, k, (n, m))])
    h = torch.randn(5, 16)
    plain = ParallelModel(ParallelConfig(n_codes=m, codebook_size=k, d_model=16, d_code=4, n_layer=1, n_items=n))
    # codes only: the exact Σ_k log p_k, a distribution over the code product space (not renormalised over items)
    assert torch.allclose(item_logprobs(plain, h, codes, t_item), score_items(plain.code_logprobs(h), codes[1:]))
    w = m * t_item / 0.07
    hybrid = ParallelModel(ParallelConfig(n_codes=m, codebook_size=k, d_model=16, d_code=4, n_layer=1, n_items=n,
                                          id_weight=w))
    with torch.no_grad():
        hybrid.item.weight.normal_()
    out = item_logprobs(hybrid, h, codes, t_item)
    # naive: per item, scale * (Σ_k log p_k(code_k) + id_weight * h·e), softmax over the n items
    logp = hybrid.code_logprobs(h)
    naive = torch.stack([sum(logp[:, j, codes[i, j]] for j in range(m)) + w * h @ hybrid.item.weight[i]
                         for i in range(1, n + 1)], dim=1)
    scale = 0.07 / (m * t_item)
    assert torch.allclose(out, torch.log_softmax(scale * naive, dim=1), atol=1e-5)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)
    # the ID term moves the distribution: the same model without it gives another one
    assert not torch.allclose(out, torch.log_softmax(scale * score_items(logp, codes[1:]), dim=1), atol=1e-3)
    # the ranking is the model's item score (item_queries · item_keys)
    ranked = (hybrid.item_queries(h) @ hybrid.item_keys(codes).T)[:, 1:]
    assert torch.equal(out.argsort(1, descending=True)[:, :5], ranked.argsort(1, descending=True)[:, :5])


def test_code_input_off_reads_items_by_their_id_alone():
    from genads.parallel.model import ParallelConfig, ParallelModel

    torch.manual_seed(0)
    cfg = ParallelConfig(n_codes=4, codebook_size=8, d_model=16, d_code=4, n_layer=1, n_items=10, code_input=False,
                         id_dropout=0.0)
    model = ParallelModel(cfg).eval()
    items = torch.tensor([[0, 3, 5]])
    a = model(items, torch.randint(0, 8, (1, 3, 4)))
    b = model(items, torch.randint(0, 8, (1, 3, 4)))
    assert torch.equal(a, b)  # other codes, same states: the input ignores them
    with_codes = ParallelModel(replace_cfg := ParallelConfig(**{**cfg.__dict__, "code_input": True})).eval()
    assert replace_cfg.code_input and not torch.equal(with_codes(items, torch.zeros(1, 3, 4, dtype=torch.long)),
                                                      with_codes(items, torch.ones(1, 3, 4, dtype=torch.long)))
    with pytest.raises(ValueError, match="code_input"):
        ParallelModel(ParallelConfig(n_codes=4, codebook_size=8, d_model=16, d_code=4, code_input=False))
