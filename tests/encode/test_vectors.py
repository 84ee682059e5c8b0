import numpy as np
import pandas as pd
import pytest

from genads.encode import (
    CollabConfig,
    collaborative_vectors,
    fuse,
    l2_normalize,
    multi_hot,
    precomputed_vectors,
)
from genads.encode.collaborative import cooccurrence_pairs


def test_fuse_weights_scale_squared_distances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    fused = fuse({"a": a, "b": b}, {"a": 4.0, "b": 1.0})
    assert fused.shape == (5, 7)
    na, nb = l2_normalize(a), l2_normalize(b)
    d_fused = ((fused[0] - fused[1]) ** 2).sum()
    d_parts = 4.0 * ((na[0] - na[1]) ** 2).sum() + ((nb[0] - nb[1]) ** 2).sum()
    assert d_fused == pytest.approx(d_parts, rel=1e-5)


def test_fuse_errors_name_the_problem():
    with pytest.raises(ValueError, match="different item counts"):
        fuse({"a": np.ones((2, 2)), "b": np.ones((3, 2))})
    with pytest.raises(ValueError, match="unknown source"):
        fuse({"a": np.ones((2, 2))}, {"c": 1.0})


def test_multi_hot_vocab_and_fixed_vocab():
    m, vocab = multi_hot([["x", "y"], ["y"], []])
    assert vocab == ["y", "x"]
    assert m.tolist() == [[1, 1], [1, 0], [0, 0]]
    m2, _ = multi_hot([["x", "z"]], vocab=vocab)
    assert m2.tolist() == [[0, 1]]


def test_precomputed_vectors_checks_sizes():
    cat = pd.DataFrame({"ad_id": [1, 2], "embedding": [[1.0, 2.0], [3.0, 4.0]]})
    assert precomputed_vectors(cat).shape == (2, 2)
    bad = pd.DataFrame({"ad_id": [1, 2], "embedding": [[1.0, 2.0], [3.0]]})
    with pytest.raises(ValueError, match="ad_id 2 has 1 values"):
        precomputed_vectors(bad)
    missing = pd.DataFrame({"ad_id": [1, 2], "embedding": [[1.0], None]})
    with pytest.raises(ValueError, match="ad_id 2 has no vector"):
        precomputed_vectors(missing)


def test_cooccurrence_stays_within_users():
    rows, cols, w = cooccurrence_pairs([np.array([0, 1]), np.array([2, 3])], window=3)
    pairs = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert pairs == {(0, 1), (1, 0), (2, 3), (3, 2)}
    assert np.allclose(w, 1.0)


def test_collaborative_vectors_group_co_occurring_items():
    rng = np.random.default_rng(0)
    # two communities: items 0-9 and 10-19 never share a user
    seqs = [rng.choice(10, 8) + 10 * (u % 2) for u in range(400)]
    v = l2_normalize(collaborative_vectors(seqs, 21, CollabConfig(dim=8), seed=0))
    assert np.allclose(v[20], 0)  # never seen
    sims = v[:20] @ v[:20].T
    within = (sims[:10, :10].mean() + sims[10:, 10:].mean()) / 2
    across = sims[:10, 10:].mean()
    assert within > across + 0.3
    again = collaborative_vectors(seqs, 21, CollabConfig(dim=8), seed=0)
    assert np.array_equal(again, collaborative_vectors(seqs, 21, CollabConfig(dim=8), seed=0))


def test_collaborative_rejects_out_of_range_items():
    with pytest.raises(ValueError, match="outside"):
        collaborative_vectors([np.array([0, 5])], 3)


def test_item_tokens_vocab_and_padding():
    from genads.encode.tokens import item_tokens

    cat = pd.DataFrame({"title": ["Red drill", "Blue drill", "red saw"], "brand": ["Acme", "Acme", ""],
                        "category": ["", "", ""], "attributes": [["g:1"], ["g:1"], []]})
    tokens, vocab = item_tokens(cat, max_tokens=3, min_count=2)
    assert vocab[0] == "<pad>" and set(vocab[1:]) == {"g:1", "drill", "acme", "red"}
    assert [vocab[i] for i in tokens[0]] == ["g:1", "red", "drill"]
    assert [vocab[i] for i in tokens[2] if i] == ["red"]
    assert tokens.shape == (3, 3) and tokens[2, 1:].tolist() == [0, 0]


def test_sequences_from_events_maps_ads_to_rows_in_time_order():
    from genads.encode.collaborative import cooccurring_pairs, sequences_from_events

    events = pd.DataFrame({"user_id": [2, 1, 1, 2, 1], "ad_id": [30, 20, 10, 10, 99],
                           "timestamp": [5, 2, 1, 9, 3], "action": [1, 1, 1, 1, 0]})
    seqs = sequences_from_events(events, np.array([20, 10, 30]))
    assert [s.tolist() for s in seqs] == [[1, 0], [2, 1]]  # unknown ad 99 and impressions dropped
    assert cooccurring_pairs(seqs).tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]
