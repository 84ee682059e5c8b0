import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.creative.encoders import HashingEncoder
from genads.creative.history import STRATEGIES, HistoryConfig, leakage_mask, mmr, sample_history


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(0, 30), n=st.integers(0, 12), strategy=st.sampled_from(STRATEGIES), seed=st.integers(0, 99))
def test_sample_history_properties(h, n, strategy, seed):
    rng = np.random.default_rng(seed)
    vecs = _unit(rng.normal(size=(h, 8))) if h else np.zeros((0, 8))
    titles = [f"title {i % 7}" for i in range(h)]
    target = "TITLE 3" if h > 3 else None
    idx = sample_history(_unit(rng.normal(size=8)), vecs, titles, target, HistoryConfig(n=n, strategy=strategy),
                         np.random.default_rng(seed))
    usable = leakage_mask(titles, target).sum()
    assert len(idx) == min(n, usable)
    assert len(set(idx.tolist())) == len(idx) and np.all(np.diff(idx) > 0)
    assert all(titles[i].lower() != "title 3" or target is None for i in idx)


def test_leakage_guard_is_case_and_space_insensitive():
    assert leakage_mask(["Red  Shoe", "blue cap"], "red shoe").tolist() == [False, True]


def test_similar_picks_the_most_similar():
    p = np.array([1.0, 0.0])
    vecs = _unit(np.array([[1, 0.1], [0, 1], [1, 0.5], [-1, 0]]))
    idx = sample_history(p, vecs, list("abcd"), None, HistoryConfig(n=2, strategy="similar"), np.random.default_rng(0))
    assert idx.tolist() == [0, 2]


def test_recent_keeps_the_last_usable_items():
    vecs = _unit(np.random.default_rng(0).normal(size=(5, 4)))
    titles = ["a", "b", "target", "c", "d"]
    idx = sample_history(vecs[0], vecs, titles, "Target", HistoryConfig(n=3, strategy="recent"),
                         np.random.default_rng(0))
    assert idx.tolist() == [1, 3, 4]  # the target's own title is skipped, the last three others kept


def test_mmr_trades_relevance_for_diversity():
    vecs = _unit(np.array([[1, 0.0], [1, 0.01], [0.6, 0.8]]))
    rel = np.array([1.0, 0.99, 0.6])
    assert mmr(rel, vecs, 2, diversity=0.0) == [0, 1]
    assert mmr(rel, vecs, 2, diversity=0.5) == [0, 2]


def test_coarse_to_fine_prefers_relevant_but_keeps_diversity():
    enc = HashingEncoder(dim=256)
    relevant = [f"waterproof hiking shoe model {i}" for i in range(6)] + ["waterproof hiking shoe model 0"] * 4
    noise = [f"ceramic coffee mug {i}" for i in range(10)]
    titles = relevant + noise
    vecs, prod = enc(titles), enc(["waterproof hiking shoe"])[0]
    cfg = HistoryConfig(n=6, strategy="coarse_to_fine", coarse_factor=2.0)
    counts = {"relevant": 0, "distinct": 0}
    for seed in range(20):
        idx = sample_history(prod, vecs, titles, None, cfg, np.random.default_rng(seed))
        counts["relevant"] += sum(i < 10 for i in idx)
        counts["distinct"] += len({titles[i] for i in idx})
    sim = sample_history(prod, vecs, titles, None, HistoryConfig(n=6, strategy="similar"), np.random.default_rng(0))
    assert counts["relevant"] / 20 >= 5  # mostly relevant ...
    assert counts["distinct"] / 20 > len({titles[i] for i in sim})  # ... and more diverse than top-N


def test_hashing_encoder_is_deterministic_and_normalised():
    a = HashingEncoder(64)(["白色外套", "white coat", ""])
    assert np.allclose(np.linalg.norm(a[:2], axis=1), 1) and np.all(a[2] == 0)
    assert np.array_equal(a, HashingEncoder(64)(["白色外套", "white coat", ""]))


def test_config_validation():
    with pytest.raises(ValueError, match="strategy"):
        HistoryConfig(strategy="best")
    with pytest.raises(ValueError, match="diversity"):
        HistoryConfig(diversity=2)


@pytest.mark.slow
def test_minilm_encoder_offline():
    from genads.creative.encoders import MiniLMEncoder

    vecs = MiniLMEncoder()(["waterproof hiking boots", "trail shoes for hiking", "ceramic coffee mug"])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
