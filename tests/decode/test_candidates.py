"""The Candidates interface: changed in place, each family's candidates equal those of a live set built afresh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.decode.beam import generate_slate
from genads.decode.bidding import BidConfig, BidTable
from genads.decode.candidates import Candidates, ExactCandidates, TrieCandidates
from genads.families import FAMILIES, family, family_of
from genads.parallel.model import ParallelConfig, ParallelModel
from genads.parallel.scoring import LiveAds
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.tokenize import disambiguate
from genads.tokenize.trie import PrefixTrie

N = 60


def _changes(cand: Candidates, rng: np.random.Generator) -> dict[int, float]:
    """Add every ad, then remove some one by one, re-bid others, and apply a batch; returns the final bids."""
    bids = {i: float(rng.uniform(0.2, 3.0)) for i in range(1, N + 1)}
    for item, bid in bids.items():
        cand.add(item, bid)
    for item in (4, 9):
        cand.remove(item)
        del bids[item]
    cand.set_bid(12, 7.5)
    bids[12] = 7.5
    batch = {i: float(rng.uniform(0.2, 3.0)) for i in range(20, 60) if i not in (30, 31)}  # > 32: lazy rebuild
    cand.apply([30, 31], batch)
    bids.update(batch)
    del bids[30], bids[31]
    return bids


def _history(m: int) -> np.ndarray:
    hist = np.zeros((3, m), dtype=np.int64)
    hist[0, -3:] = [1, 2, 3]
    hist[1, -1:] = [40]
    return hist


def test_trie_candidates_equal_a_fresh_trie_and_bid_table():
    rng = np.random.default_rng(0)
    sids = np.zeros((N + 1, 4), dtype=np.int64)
    sids[1:] = disambiguate(rng.integers(0, 4, size=(N, 3)))
    torch.manual_seed(0)
    model = SlateModel(sized_for(PRESETS["tiny"], sids)).eval()
    bid = BidConfig(alpha=1.0, beta=0.0)
    cand = TrieCandidates(model, sids, beam=6, bid_config=bid)
    final = _changes(cand, rng)
    assert len(cand) == len(final)
    trie = PrefixTrie(sids.shape[1], int(sids.max()) + 1)
    for item in final:
        trie.insert(item, sids[item].tolist())
    table = BidTable(trie, final)
    hist = _history(model.config.max_items)
    ads, logprob = cand.top(hist, [5, 8, 0])
    assert ads.shape == (3, 8) and (ads[2] == -1).all() and np.isinf(logprob[2]).all() and (ads[0, 5:] == -1).all()
    for row, k in ((0, 5), (1, 8)):
        ref = generate_slate(model, trie, sids, hist[row:row + 1], beam=max(6, k), slate_size=k, bids=table,
                             bid_config=bid)
        np.testing.assert_array_equal(ads[row, :k], ref.ads[0])
        np.testing.assert_allclose(logprob[row, :k], ref.logprob[0], rtol=1e-5)
    assert not {4, 9, 30, 31} & set(ads[:2].ravel().tolist())


def test_exact_candidates_equal_a_fresh_live_set():
    rng = np.random.default_rng(1)
    codes = np.zeros((N + 1, 8), dtype=np.int64)
    codes[1:] = rng.integers(0, 16, size=(N, 8))
    torch.manual_seed(0)
    model = ParallelModel(ParallelConfig(n_codes=8, codebook_size=16, n_items=N, d_model=16, n_layer=1,
                                         n_head=1, max_items=10)).eval()
    bid = BidConfig(alpha=1.0, beta=0.0)
    cand = ExactCandidates(model, codes, bid)
    final = _changes(cand, rng)
    assert len(cand) == len(final)
    fresh = ExactCandidates(model, codes, bid)
    fresh.live = LiveAds(codes, live=sorted(final), bids=final)
    hist = _history(10)
    ads, logprob = cand.top(hist, [5, 8, 0])
    ref = fresh.score(hist, 8)
    np.testing.assert_array_equal(ads, ref.ads)
    np.testing.assert_allclose(logprob, ref.logprob, rtol=1e-6)
    assert not {4, 9, 30, 31} & set(ads.ravel().tolist())


def test_every_family_is_registered_with_its_classes():
    assert set(FAMILIES) == {"sid", "parallel"}
    for name, fam in FAMILIES.items():
        assert family(name) is fam and fam.name == name
        assert family_of(fam.model_class.__new__(fam.model_class)) is fam
    with pytest.raises(ValueError, match=r"bundle\.json: family 'beam' must be one of"):
        family("beam", "bundle.json")
    with pytest.raises(TypeError, match="not a generator"):
        family_of(object())
