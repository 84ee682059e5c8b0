import faiss
import numpy as np
import pytest

from genads.parallel import PQCodebook, PQConfig
from genads.tokenize.pq import sized_for


def test_encode_matches_faiss_and_reconstructs_better_than_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 24)).astype(np.float32) @ rng.normal(size=(24, 24)).astype(np.float32)
    cb = PQCodebook.fit(x, PQConfig(n_codes=4, nbits=4, dim=16, opq_iterations=5))
    codes = cb.encode(x)
    k = cb.config.codebook_size  # 600 points: at most 600 / 39 values per code, so 8
    assert k == 8 and codes.shape == (600, 4) and codes.min() >= 0 and codes.max() < k
    # our numpy assignment = faiss's own PQ assignment with the same centroids
    pq = faiss.ProductQuantizer(16, 4, cb.config.nbits)
    faiss.copy_array_to_vector(cb.centroids.ravel(), pq.centroids)
    theirs = pq.decode(pq.compute_codes(np.ascontiguousarray(cb.transform(x), dtype=np.float32)))  # packed codes
    recon = cb.centroids[np.arange(4)[None], codes]  # (600, 4, 4) our assignment's reconstruction
    np.testing.assert_allclose(recon.reshape(600, 16), theirs, rtol=1e-6, atol=1e-6)
    # quantisation error well below the spread of the data
    z = cb.transform(x).reshape(600, 4, 4)
    assert ((z - recon) ** 2).sum() < 0.5 * ((z - z.mean(0)) ** 2).sum()


def test_save_load_round_trip_and_cold_start_encoding(tmp_path):
    x = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32)
    cb = PQCodebook.fit(x, PQConfig(n_codes=4, nbits=3, dim=8, opq_iterations=3))
    cb.save(tmp_path)
    again = PQCodebook.load(tmp_path)
    new = np.random.default_rng(2).normal(size=(5, 12)).astype(np.float32)  # ads never seen in fitting
    np.testing.assert_array_equal(cb.encode(new), again.encode(new))
    with pytest.raises(ValueError, match=r"\(n, 12\)"):
        again.encode(np.zeros((2, 7), dtype=np.float32))


def test_config_shrinks_to_small_data_and_errors_name_the_field():
    small = sized_for(PQConfig(), n_items=100, in_dim=20)
    assert small.codebook_size <= 100 / 16 * 2 and small.dim <= 20 and small.dim % small.n_codes == 0
    assert sized_for(PQConfig(), 12101, 1300) == PQConfig()
    with pytest.raises(ValueError, match="dim=100 must be a multiple of n_codes=32"):
        PQConfig(dim=100)
    with pytest.raises(ValueError, match="NaN"):
        PQCodebook.fit(np.full((10, 4), np.nan, dtype=np.float32))
    with pytest.raises(FileNotFoundError, match="codebook"):
        PQCodebook.load("/nonexistent/folder")
