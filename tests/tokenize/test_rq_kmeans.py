import numpy as np
import pytest

from genads.tokenize import RQKMeansConfig, RQKMeansTokenizer, load_tokenizer, save_tokenizer
from genads.tokenize.metrics import quantisation_error
from genads.tokenize.rq_kmeans import balanced_assign


def _vectors(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(12, d)) * 3
    return (centers[rng.integers(0, 12, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_fit_shapes_and_more_levels_reduce_error():
    x = _vectors()
    errs = []
    for levels in (1, 2, 3):
        tok = RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=16, n_iter=10))
        codes = tok.fit(x, seed=0)
        assert codes.shape == (600, levels) and codes.dtype == np.int64
        assert codes.min() >= 0 and codes.max() < 16
        errs.append(quantisation_error(x, tok.reconstruct(codes)))
    assert errs[0] > errs[1] > errs[2]


def test_deterministic_under_seed_and_encode_matches_fit():
    x = _vectors()
    cfg = RQKMeansConfig(levels=3, codebook_size=16, n_iter=10)
    a, b = RQKMeansTokenizer(cfg), RQKMeansTokenizer(cfg)
    codes = a.fit(x, seed=3)
    assert np.array_equal(codes, b.fit(x, seed=3))
    assert np.array_equal(a.encode(x), codes)


def test_save_load_round_trip(tmp_path):
    x = _vectors()
    tok = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=8, n_iter=5))
    tok.fit(x, seed=0)
    save_tokenizer(tok, tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert isinstance(back, RQKMeansTokenizer) and back.config == tok.config
    assert np.array_equal(back.encode(x[:50]), tok.encode(x[:50]))


def test_balanced_assignment_respects_capacity():
    rng = np.random.default_rng(0)
    d = rng.random((103, 5))
    d[:, 0] -= 10  # everyone prefers centroid 0
    a = balanced_assign(d)
    assert np.bincount(a, minlength=5).max() <= 21
    x = _vectors(n=640)
    tok = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=16, n_iter=5, balanced=True, balanced_iter=2))
    codes = tok.fit(x, seed=0)
    assert np.bincount(codes[:, 0], minlength=16).max() <= 40


def test_errors_name_the_field():
    with pytest.raises(ValueError, match="codebook_size"):
        RQKMeansConfig(codebook_size=1)
    with pytest.raises(ValueError, match="codebook_size=64"):
        RQKMeansTokenizer(RQKMeansConfig(codebook_size=64)).fit(np.ones((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="row 1"):
        RQKMeansTokenizer().fit(np.array([[0.0], [np.nan]]))
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        load_tokenizer("/nonexistent/folder")


def _bag_of_words(n: int, vocab: int, words: int, seed: int) -> np.ndarray:
    """Zipf-distributed word counts per item: sparse, heavy-tailed, like titles or attribute bags."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    x = np.zeros((n, vocab), dtype=np.float32)
    for i in range(n):
        np.add.at(x[i], rng.choice(vocab, words, p=p / p.sum()), 1.0)
    return x


def test_spherical_residuals_keep_deep_levels_healthy():
    """Regression for the level collapse seen on ml-100k (level-2 perplexity ~5 of 64): on fused
    bag-of-words item vectors plain L2 residual k-means lets a near-origin hub centroid swallow the
    deeper levels; the default spherical mode keeps every level's perplexity near K."""
    from genads.encode.fusion import fuse
    from genads.tokenize.metrics import level_stats

    x = fuse({"words": _bag_of_words(1200, 1000, 5, seed=0), "tags": _bag_of_words(1200, 333, 2, seed=1)})
    shares = {}
    for mode in ("l2", "spherical"):
        tok = RQKMeansTokenizer(RQKMeansConfig(levels=3, codebook_size=64, residual=mode))
        codes = tok.fit(x, seed=0)
        shares[mode] = [r["perplexity_share"] for r in level_stats(codes, 64)]
        assert np.array_equal(tok.encode(x), codes)
    assert min(shares["spherical"][1:]) > 0.75
    assert max(shares["l2"][1:]) < 0.5  # the collapse the default mode fixes


def test_spherical_round_trip_and_legacy_l2_folder(tmp_path):
    x = _vectors()
    tok = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=8, n_iter=5, balanced=True, balanced_iter=1))
    codes = tok.fit(x, seed=0)
    assert tok.directions.shape == tok.centroids.shape
    np.testing.assert_allclose(np.linalg.norm(tok.directions, axis=2), 1.0, atol=1e-5)
    save_tokenizer(tok, tmp_path / "sph")
    assert np.array_equal(load_tokenizer(tmp_path / "sph").encode(x), tok.encode(x))
    assert quantisation_error(x, tok.reconstruct(codes)) < 0.5
    legacy = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=8, n_iter=5, residual="l2"))
    legacy.fit(x, seed=0)
    tensors, meta = legacy.state()
    del meta["config"]["residual"]  # written before the mode existed
    back = RQKMeansTokenizer.from_state(tensors, meta)
    assert back.config.residual == "l2" and np.array_equal(back.encode(x), legacy.encode(x))
    with pytest.raises(ValueError, match="residual"):
        RQKMeansConfig(residual="cosine")
