import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.decode.beam import beam_search_reference, generate_slate, live_trie, top_per_group
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.tokenize import RQKMeansConfig, RQKMeansTokenizer, disambiguate
from genads.tokenize.trie import PrefixTrie


def item_sids(n_items: int, levels: int, codebook: int, seed: int) -> np.ndarray:
    """(n_items + 1, levels + 1) unique SIDs from RQ-KMeans over random vectors; row 0 = padding."""
    vectors = np.random.default_rng(seed).normal(size=(n_items, 8)).astype(np.float32)
    codes = RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=codebook, n_iter=5)).fit(vectors, seed=seed)
    return np.concatenate([np.zeros((1, levels + 1), np.int64), disambiguate(codes)])


N_ITEMS = 40
SIDS = item_sids(N_ITEMS, levels=2, codebook=4, seed=1)


def model_for(sids: np.ndarray, seed: int = 0) -> SlateModel:
    torch.manual_seed(seed)
    return SlateModel(sized_for(PRESETS["tiny"], sids)).eval()


def histories(seed: int, n: int = 6, width: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, width), dtype=np.int64)
    for i in range(n):
        m = int(rng.integers(0, width + 1))
        out[i, width - m:] = rng.integers(1, N_ITEMS + 1, size=m)
    return out


@pytest.mark.parametrize("beam,slate", [(5, 5), (8, 3), (20, 10)])
def test_batched_equals_per_request_reference(beam, slate):
    model, trie = model_for(SIDS), live_trie(SIDS)
    hist = histories(seed=beam)
    fast = generate_slate(model, trie, SIDS, hist, beam=beam, slate_size=slate)
    for i, h in enumerate(hist):
        ref = beam_search_reference(model, trie, SIDS, h, beam=beam, slate_size=slate)
        np.testing.assert_array_equal(fast.ads[i], ref.ads[0])
        np.testing.assert_allclose(fast.scores[i], ref.scores[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(fast.logprob[i], fast.scores[i])  # no bids: score = log-probability
        assert np.isnan(fast.bids[i]).all()


@settings(max_examples=15, deadline=None)
@given(removed=st.lists(st.integers(1, N_ITEMS), max_size=N_ITEMS, unique=True), seed=st.integers(0, 3))
def test_only_live_ads_and_distinct_even_after_removals(removed, seed):
    model, trie = model_for(SIDS, seed), live_trie(SIDS)
    for ad in removed:
        trie.remove(ad)
    slate = generate_slate(model, trie, SIDS, histories(seed), beam=10, slate_size=10)
    live = set(range(1, N_ITEMS + 1)) - set(removed)
    for row in slate.ads:
        got = row[row >= 0].tolist()
        assert set(got) <= live
        assert len(got) == len(set(got)) == min(10, len(live))
        assert (row[len(got):] == -1).all()


def test_shared_sids_resolve_to_each_ad_once():
    sids = SIDS[:, :2].copy()  # drop the disambiguation level: several ads share an SID
    assert len({tuple(r) for r in sids[1:]}) < N_ITEMS
    model = model_for(sids)
    trie = PrefixTrie.from_codes(range(1, N_ITEMS + 1), sids[1:], vocab_size=int(sids.max()) + 1)
    slate = generate_slate(model, trie, sids, histories(0), beam=16, slate_size=N_ITEMS)
    for row, scores in zip(slate.ads, slate.scores, strict=True):
        assert sorted(row.tolist()) == list(range(1, N_ITEMS + 1))  # every ad once, no duplicates
        for ad, score in zip(row, scores, strict=True):
            same = [a for a, s in zip(row, scores, strict=True) if (sids[a] == sids[ad]).all()]
            assert len(same) == len(trie.ads(sids[ad])) and score == scores[row.tolist().index(same[0])]


def test_trie_wider_than_the_model_is_refused():
    model = model_for(SIDS)
    trie = PrefixTrie(depth=SIDS.shape[1], vocab_size=model.config.codebook_size + 1)
    trie.insert(1, SIDS[1])
    with pytest.raises(ValueError, match="codebook_size"):
        generate_slate(model, trie, SIDS, histories(0), beam=4, slate_size=4)


@settings(max_examples=80, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), min_size=1, max_size=5), r=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_top_per_group_equals_a_stable_sort_per_group(sizes, r, seed):
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(len(sizes)), sizes)
    score = rng.choice(np.array([-np.inf, -2.0, -1.0, -0.5, 0.0], dtype=np.float32), size=len(group))  # many ties
    idx, rank = top_per_group(group, score, r, len(sizes))
    want = []
    for g in range(len(sizes)):
        members = np.flatnonzero(group == g)
        want += sorted(members.tolist(), key=lambda i: -score[i])[:r]  # stable: ties keep index order
    assert idx.tolist() == want
    assert rank.tolist() == [j for g in range(len(sizes)) for j in range(min(r, sizes[g]))]


def test_no_live_ad_gives_an_empty_slate():
    model, trie = model_for(SIDS), live_trie(SIDS)
    for ad in range(1, N_ITEMS + 1):
        trie.remove(ad)
    slate = generate_slate(model, trie, SIDS, histories(0), beam=4, slate_size=3)
    assert (slate.ads == -1).all() and np.isneginf(slate.scores).all()
