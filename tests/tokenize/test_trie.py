import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.tokenize.trie import PrefixTrie

DEPTH, VOCAB = 3, 4
sids = st.tuples(*[st.integers(0, VOCAB - 1)] * DEPTH)
ops = st.lists(st.tuples(st.sampled_from(["insert", "remove"]), st.integers(0, 15), sids), max_size=60)


def _apply(ops_list):
    trie, live = PrefixTrie(DEPTH, VOCAB), {}
    for op, ad, sid in ops_list:
        if op == "insert":
            trie.insert(ad, sid)
            live[ad] = sid
        elif ad in live:
            trie.remove(ad)
            del live[ad]
    return trie, live


def _all_paths(trie):
    """Every complete path that decoding with the fast mask can produce (DFS)."""
    paths, frontier = [], [()]
    while frontier:
        prefix = frontier.pop()
        if len(prefix) == trie.depth:
            paths.append(prefix)
            continue
        allowed = trie.mask(torch.tensor([prefix], dtype=torch.int64).reshape(1, len(prefix)))[0]
        frontier += [(*prefix, int(t)) for t in torch.nonzero(allowed).flatten()]
    return paths


@settings(max_examples=60, deadline=None)
@given(ops)
def test_every_complete_path_is_a_live_ad_and_removed_ads_never_come_out(ops_list):
    trie, live = _apply(ops_list)
    paths = _all_paths(trie)
    assert len(paths) == len(set(paths))
    assert set(paths) == set(live.values())
    decoded_ads = {ad for p in paths for ad in trie.ads(p)}
    assert decoded_ads == set(live)
    removed = {ad for op, ad, _ in ops_list} - set(live)
    assert not decoded_ads & removed


@settings(max_examples=60, deadline=None)
@given(ops, st.lists(st.lists(st.integers(-1, VOCAB), min_size=DEPTH - 1, max_size=DEPTH - 1), min_size=1, max_size=8),
       st.integers(0, DEPTH - 1))
def test_fast_mask_equals_reference(ops_list, prefixes, t):
    trie, _ = _apply(ops_list)
    batch = torch.tensor(prefixes, dtype=torch.int64)[:, :t]
    assert torch.equal(trie.mask(batch), trie.mask_reference(batch))


def test_runtime_insert_remove_and_errors():
    trie = PrefixTrie.from_codes([10, 11], np.array([[0, 1], [0, 2]]), vocab_size=3)
    assert trie.mask(torch.zeros((1, 0), dtype=torch.int64)).tolist() == [[True, False, False]]
    trie.remove(10)
    assert trie.mask(torch.tensor([[0]])).tolist() == [[False, False, True]]
    trie.insert(12, (2, 2))
    assert trie.mask(torch.zeros((2, 0), dtype=torch.int64))[:, 2].all()
    trie.insert(11, (1, 1))  # re-insert moves the ad
    assert trie.ads((0, 2)) == [] and trie.ads((1, 1)) == [11] and trie.sid_of(11) == (1, 1)
    with pytest.raises(KeyError, match="not live"):
        trie.remove(10)
    with pytest.raises(ValueError, match="vocab_size"):
        trie.insert(5, (0, 3))
    with pytest.raises(ValueError, match="depth"):
        trie.mask(torch.zeros((1, 2), dtype=torch.int64))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(ops, st.just([("query", 0, (0,) * DEPTH)])), max_size=12))
def test_patched_index_equals_a_fresh_build(chunks):
    base = np.random.default_rng(0).integers(0, VOCAB, size=(64, DEPTH))
    trie = PrefixTrie.from_codes(range(100, 164), base, VOCAB)  # many ads, few changes: the patch path
    trie.index()
    for chunk in chunks:
        for op, ad, sid in chunk:
            if op == "insert":
                trie.insert(ad, sid)
            elif op == "remove" and ad in trie:
                trie.remove(ad)
        patched = trie.index()  # patches the previous index when few ads changed
        fresh = PrefixTrie.from_codes(list(trie._sid), np.array(list(trie._sid.values())).reshape(-1, DEPTH), VOCAB)
        for name in ("ads", "codes"):
            np.testing.assert_array_equal(getattr(patched, name), getattr(fresh.index(), name))
        for name in ("keys", "start", "child", "token"):
            for a, b in zip(getattr(patched, name), getattr(fresh.index(), name), strict=True):
                np.testing.assert_array_equal(a, b)
