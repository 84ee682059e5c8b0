"""Joint refinement with a recommender's item vectors: codes follow the recommender, the anchor keeps them stable."""

from dataclasses import replace

import numpy as np
import pytest

from genads.tokenize import ItemFeatures, UniSIDConfig, UniSIDTokenizer
from genads.tokenize.joint import AlignConfig, align_to_recommender

TINY = UniSIDConfig(levels=2, codebook_size=8, d_model=16, n_layers=1, n_heads=2, vector_tokens=2, epochs=4,
                    batch_size=64, conditioning="residual")


def _world(n=240, seed=0):
    rng = np.random.default_rng(seed)
    content = rng.integers(0, 4, n)  # what the item vectors show
    behaviour = rng.integers(0, 4, n)  # what the recommender learned: a faint trace in the item vectors
    x = (rng.normal(size=(4, 12))[content] * 3 + rng.normal(size=(4, 12))[behaviour]
         + rng.normal(size=(n, 12))).astype(np.float32)
    rec = (np.eye(4)[behaviour] * 3 + 0.1 * rng.normal(size=(n, 4))).astype(np.float32)
    return x, rec, behaviour, ItemFeatures(tokens=(content + 1)[:, None].astype(np.int64), vocab_size=5)


def _purity(codes, labels):
    """Mean over first-level codes of the share of its items in its most common label."""
    total = 0
    for c in np.unique(codes[:, 0]):
        total += np.bincount(labels[codes[:, 0] == c]).max()
    return total / len(labels)


def test_alignment_moves_codes_towards_the_recommender_and_anchor_keeps_them():
    x, rec, behaviour, feats = _world()
    results = {}
    for name, w_anchor in (("free", 0.0), ("anchored", 20.0)):
        tok = UniSIDTokenizer(TINY)
        before = tok.fit(x, seed=0, features=feats)
        after, report = align_to_recommender(tok, x, rec, feats, AlignConfig(epochs=15, lr=3e-3, w_align=5.0, w_anchor=w_anchor),
                                             seed=0)
        results[name] = (before, after, report)
    before, free, report = results["free"]
    assert _purity(free, behaviour) > _purity(before, behaviour) + 0.05
    assert report["unchanged"] == pytest.approx(float((before == free).all(1).mean()))
    assert results["anchored"][2]["unchanged"] > report["unchanged"]
    assert {"align", "anchor", "contrastive"} <= set(report["history"][-1])


def test_alignment_is_seeded_and_checks_rows():
    x, rec, _, feats = _world()
    runs = []
    for _ in range(2):
        tok = UniSIDTokenizer(replace(TINY, epochs=1))
        tok.fit(x, seed=0, features=feats)
        runs.append(align_to_recommender(tok, x, rec, feats, AlignConfig(epochs=1), seed=3)[0])
    assert np.array_equal(*runs)
    with pytest.raises(ValueError, match="one row per item"):
        align_to_recommender(tok, x, rec[:10], feats, AlignConfig(epochs=1))
