"""Learned long codes: a refined PQ codebook stays a codebook, is seeded, and pulls co-occurring items' codes together."""

import numpy as np
import pytest

from genads.parallel.learned_codes import LearnedCodesConfig, refine_codebook
from genads.tokenize.pq import PQCodebook, PQConfig


def _world(n=400, seed=0):
    # items i and i + n/2 co-occur; they agree on 4 low-variance dims and not on 12 high-variance ones,
    # so PCA (8 of 16 dims) keeps mostly the directions on which the pair differs
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n // 2, 4))
    x = np.concatenate([np.concatenate([shared, shared + 0.05 * rng.normal(size=shared.shape)]),
                        3 * rng.normal(size=(n, 12))], axis=1).astype(np.float32)
    pairs = np.stack([np.arange(n // 2), np.arange(n // 2) + n // 2], axis=1)
    return x, np.concatenate([pairs, pairs[:, ::-1]])


CFG = PQConfig(n_codes=4, nbits=3, dim=8, opq=False)


def _shared(codes, pairs):
    return float((codes[pairs[:, 0]] == codes[pairs[:, 1]]).mean())


def test_refined_codebook_is_a_codebook_and_seeded():
    x, pairs = _world()
    base = PQCodebook.fit(x, CFG)
    a, hist = refine_codebook(base, x, pairs, LearnedCodesConfig(epochs=3, batch_size=64), seed=1)
    b, _ = refine_codebook(base, x, pairs, LearnedCodesConfig(epochs=3, batch_size=64), seed=1)
    assert isinstance(a, PQCodebook) and a.centroids.shape == base.centroids.shape
    assert np.array_equal(a.encode(x), b.encode(x))
    assert len(hist) == 3 and {"reconstruction", "collaborative", "balance", "orthogonal"} <= set(hist[0])
    assert a.encode(x).max() < 8


def test_collaborative_term_makes_co_occurring_items_share_codes():
    x, pairs = _world()
    base = PQCodebook.fit(x, CFG)
    cfg = LearnedCodesConfig(epochs=30, batch_size=64, lr=1e-2, w_collaborative=1.0)
    learned, _ = refine_codebook(base, x, pairs, cfg, seed=0)
    plain, _ = refine_codebook(base, x, pairs, LearnedCodesConfig(epochs=30, batch_size=64, lr=1e-2,
                                                                   w_collaborative=0.0), seed=0)
    assert _shared(learned.encode(x), pairs) > _shared(plain.encode(x), pairs) + 0.05


def test_refine_rejects_bad_pairs_and_vectors():
    x, pairs = _world()
    base = PQCodebook.fit(x, CFG)
    with pytest.raises(ValueError, match="pairs"):
        refine_codebook(base, x, np.array([[0, 10_000]]), LearnedCodesConfig(epochs=1))
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        refine_codebook(base, bad, pairs, LearnedCodesConfig(epochs=1))
