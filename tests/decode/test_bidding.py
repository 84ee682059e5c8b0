"""Token-level bidding: the bid table against naive scans, and bid-aware beam search.

Allocation of an ad for a request = its rank in the returned slate (0 = top), ``slate_size`` when it
is not in the slate. Monotonicity: raising one ad's bid never makes its rank worse (any position-
decreasing click model then gives it a weakly higher allocation probability).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.decode.beam import beam_search_reference, generate_slate, live_trie
from genads.decode.bidding import BidConfig, BidTable
from genads.tokenize.trie import PrefixTrie

from .test_beam import N_ITEMS, SIDS, histories, model_for


def random_bids(seed: int, zero_share: float = 0.0) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    bids = rng.lognormal(0.0, 1.0, size=N_ITEMS) * (rng.random(N_ITEMS) >= zero_share)
    return {ad: float(b) for ad, b in zip(range(1, N_ITEMS + 1), bids, strict=True)}


def rank(slate_ads: np.ndarray, ad: int) -> np.ndarray:
    """(B,) rank of ``ad`` in each slate row; the slate size where it is absent."""
    hit = slate_ads == ad
    return np.where(hit.any(1), hit.argmax(1), slate_ads.shape[1])


def test_config_is_validated():
    for bad in (dict(alpha=-1.0), dict(beta=-0.1), dict(alpha=float("nan")), dict(aggregate="median")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BidConfig(**bad)
    assert BidConfig(alpha=0.0).log_weight(np.array([0.0, 5.0])).tolist() == [math.log(1.0)] * 2


DEPTH, VOCAB = 3, 3
op = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 12), st.tuples(*[st.integers(0, VOCAB - 1)] * DEPTH)),
    st.tuples(st.just("drop"), st.integers(0, 12), st.none()),
    st.tuples(st.just("bid"), st.integers(0, 12), st.floats(0, 10)),
    st.tuples(st.just("unbid"), st.integers(0, 12), st.none()),
    st.tuples(st.just("query"), st.integers(0, 0), st.none()),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(op, max_size=50), st.sampled_from(["max", "mean"]), st.floats(0, 2), st.floats(0, 1))
def test_table_tracks_trie_and_bid_changes(ops, aggregate, alpha, beta):
    trie = PrefixTrie(DEPTH, VOCAB)
    table, cfg = BidTable(trie, default_bid=0.5), BidConfig(alpha, beta, aggregate)
    prefixes = [torch.tensor([p], dtype=torch.int64).reshape(1, t)
                for t in range(DEPTH) for p in np.ndindex(*[VOCAB] * t)]
    for kind, ad, arg in ops:
        if kind == "insert":
            trie.insert(ad, arg)
        elif kind == "drop" and ad in trie:
            trie.remove(ad)
        elif kind == "bid":
            table.set_bid(ad, arg)
        elif kind == "unbid" and ad in table._bids:
            table.remove(ad)
        elif kind == "query":  # brings the aggregates up to date, so later bid changes go the in-place way
            table.log_weight(prefixes[0], cfg)
    for p in prefixes:
        torch.testing.assert_close(table.log_weight(p, cfg), table.log_weight_reference(p, cfg), rtol=1e-5, atol=1e-5)
    for ad in trie.index().ads.tolist():
        sid = trie.sid_of(ad)
        for t in range(DEPTH + 1):
            under = [table.bid(a) for a in trie.index().ads.tolist() if trie.sid_of(a)[:t] == sid[:t]]
            want = max(under) if aggregate == "max" else sum(under) / len(under)
            assert table.prefix_bid(sid[:t], aggregate) == pytest.approx(want)


def test_bid_updates_and_removals_propagate_to_prefixes():
    trie = PrefixTrie.from_codes([1, 2, 3], np.array([[0, 0], [0, 1], [1, 0]]), vocab_size=2)
    table = BidTable(trie, {1: 1.0, 2: 4.0, 3: 2.0})
    assert table.prefix_bid((0,)) == 4.0 and table.prefix_bid((0,), "mean") == 2.5 and table.prefix_bid(()) == 4.0
    table.set_bid(2, 0.5)  # the top bid falls: max re-scanned
    assert table.prefix_bid((0,)) == 1.0 and table.prefix_bid(()) == 2.0 and table.prefix_bid((0,), "mean") == 0.75
    trie.remove(3)
    assert table.prefix_bid(()) == 1.0 and math.isnan(table.prefix_bid((1,)))
    table.remove(1)  # back to the default bid 0
    assert table.prefix_bid((0,)) == 0.5 and table.bid(1) == 0.0
    with pytest.raises(ValueError, match="ad 2: bid"):
        table.set_bid(2, -1.0)
    with pytest.raises(KeyError, match="no bid"):
        table.remove(1)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_alpha_zero_reproduces_plain_decoding(beta):
    model, trie = model_for(SIDS), live_trie(SIDS)
    hist = histories(3)
    plain = generate_slate(model, trie, SIDS, hist, beam=8, slate_size=8)
    bidded = generate_slate(model, trie, SIDS, hist, beam=8, slate_size=8, bids=BidTable(trie, random_bids(0)),
                            bid_config=BidConfig(alpha=0.0, beta=beta))
    np.testing.assert_array_equal(bidded.ads, plain.ads)
    np.testing.assert_array_equal(bidded.logprob, plain.scores)
    np.testing.assert_allclose(bidded.scores, plain.scores + math.log(1 + beta), rtol=1e-6)


@pytest.mark.parametrize("cfg", [BidConfig(1.0, 0.0, "max"), BidConfig(0.5, 0.3, "mean"), BidConfig(2.0, 0.1, "max")])
def test_batched_equals_reference_with_bids(cfg):
    model, trie = model_for(SIDS, seed=1), live_trie(SIDS)
    table = BidTable(trie, random_bids(1, zero_share=0.2 if cfg.beta else 0.0))
    hist = histories(5)
    fast = generate_slate(model, trie, SIDS, hist, beam=6, slate_size=5, bids=table, bid_config=cfg)
    for i, h in enumerate(hist):
        ref = beam_search_reference(model, trie, SIDS, h, beam=6, slate_size=5, bids=table, bid_config=cfg)
        np.testing.assert_array_equal(fast.ads[i], ref.ads[0])
        for field in ("scores", "logprob", "bids"):
            np.testing.assert_allclose(getattr(fast, field)[i], getattr(ref, field)[0], rtol=1e-4, atol=1e-4)
        shown = fast.ads[i] >= 0
        np.testing.assert_array_equal(fast.bids[i][shown], [table.bid(a) for a in fast.ads[i][shown]])
        assert (np.diff(fast.scores[i][shown]) <= 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 50), ad=st.integers(1, N_ITEMS), factor=st.floats(1.0, 50.0),
       cfg=st.builds(BidConfig, st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.5]),
                     st.sampled_from(["max", "mean"])), shared=st.booleans())
def test_raising_a_bid_never_lowers_its_allocation(seed, ad, factor, cfg, shared):
    sids = SIDS[:, :2].copy() if shared else SIDS  # shared: several ads per SID
    model = model_for(sids, seed % 4)
    trie = PrefixTrie.from_codes(range(1, N_ITEMS + 1), sids[1:], vocab_size=int(sids.max()) + 1)
    table = BidTable(trie, random_bids(seed, zero_share=0.1))
    hist = histories(seed)
    before = generate_slate(model, trie, sids, hist, beam=4, slate_size=3, bids=table, bid_config=cfg)
    table.set_bid(ad, table.bid(ad) * factor + 0.1)
    after = generate_slate(model, trie, sids, hist, beam=4, slate_size=3, bids=table, bid_config=cfg)
    assert (rank(after.ads, ad) <= rank(before.ads, ad)).all()


def test_a_high_enough_bid_wins_the_top_slot_and_a_removed_ad_never_appears():
    model, trie = model_for(SIDS), live_trie(SIDS)
    table, hist = BidTable(trie, random_bids(2)), histories(4)
    plain = generate_slate(model, trie, SIDS, hist, beam=4, slate_size=3, bids=table)
    loser = next(a for a in range(1, N_ITEMS + 1) if (rank(plain.ads, a) == 3).all())
    table.set_bid(loser, 1e9)
    won = generate_slate(model, trie, SIDS, hist, beam=4, slate_size=3, bids=table)
    assert (won.ads[:, 0] == loser).all()
    trie.remove(loser)  # the table follows the trie: the ad's bid no longer lifts its prefixes
    gone = generate_slate(model, trie, SIDS, hist, beam=4, slate_size=3, bids=table)
    assert not (gone.ads == loser).any()
    np.testing.assert_array_equal(gone.ads, plain.ads)


def test_zero_bids_with_beta_zero_are_never_allocated():
    model, trie = model_for(SIDS), live_trie(SIDS)
    bids = {ad: (1.0 if ad <= 5 else 0.0) for ad in range(1, N_ITEMS + 1)}
    slate = generate_slate(model, trie, SIDS, histories(1), beam=10, slate_size=10, bids=BidTable(trie, bids))
    assert set(slate.ads[slate.ads >= 0].tolist()) <= set(range(1, 6))


def test_bids_over_another_trie_are_refused():
    model = model_for(SIDS)
    with pytest.raises(ValueError, match="another trie"):
        generate_slate(model, live_trie(SIDS), SIDS, histories(0), beam=4, slate_size=4,
                       bids=BidTable(live_trie(SIDS)))


def test_bulk_update_rebuilds_and_matches_one_by_one():
    trie = live_trie(SIDS)
    bulk, single = BidTable(trie, random_bids(3)), BidTable(trie, random_bids(3))
    new = random_bids(4)
    bulk.prefix_bid(()), single.prefix_bid(())  # aggregates current: single's changes go in place
    bulk.update(new)  # 40 changes: rebuilt at the next query
    for ad, bid in new.items():
        single.set_bid(ad, bid)  # in place
    cfg = BidConfig(aggregate="max")
    for t in range(SIDS.shape[1]):
        prefixes = torch.from_numpy(np.unique(SIDS[1:, :t], axis=0))
        torch.testing.assert_close(bulk.log_weight(prefixes, cfg), single.log_weight(prefixes, cfg))
        torch.testing.assert_close(bulk.log_weight(prefixes, cfg), bulk.log_weight_reference(prefixes, cfg))


def test_large_ad_ids_outside_the_dense_array():
    big = BidTable.DENSE_IDS + 7
    trie = PrefixTrie.from_codes([3, big, big + 1], np.array([[0, 1], [0, 1], [1, 0]]), vocab_size=2)
    table = BidTable(trie, {3: 1.0, big: 5.0, big + 1: 2.0})
    assert table.prefix_bid((0,)) == 5.0 and table.bid(big) == 5.0
    table.set_bid(big, 0.5)
    assert table.prefix_bid((0, 1)) == 1.0 and table.prefix_bid(()) == 2.0
    np.testing.assert_array_equal(table.bids_of(np.array([big, big + 1, -1, 99])), [0.5, 2.0, np.nan, 0.0])
    cfg = BidConfig()
    for t in range(2):
        prefixes = torch.zeros((1, t), dtype=torch.int64)
        torch.testing.assert_close(table.log_weight(prefixes, cfg), table.log_weight_reference(prefixes, cfg))
    with pytest.raises(ValueError, match="ad ids must be >= 0"):
        trie.insert(-1, (0, 0))
