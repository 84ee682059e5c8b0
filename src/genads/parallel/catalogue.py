"""From a dataset to the parallel family's codes: item vectors (training events only) → PQ codes by item index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genads.data.dataset import Dataset
from genads.data.split import SequenceSplit
from genads.tokenize.pq import PQCodebook, PQConfig


def catalogue_vectors(dataset: Dataset, split: SequenceSplit, sources: Sequence[str] | None = None, *,
                      cache_dir: str | Path | None = None, seed: int = 0, progress: bool = True) -> tuple[np.ndarray, dict]:
    """(n_ads, d) fused item vectors in catalogue order, from text / attributes / collaborative signal of the
    *training* events of ``split`` (validation and test never shape them) / precomputed embeddings."""
    from genads.tokenize.features import item_vectors

    return item_vectors(dataset, sources, cache_dir=cache_dir, split=split.config, seed=seed, progress=progress)


def codes_by_index(codes: np.ndarray, ad_ids: np.ndarray, split: SequenceSplit) -> np.ndarray:
    """(n_items + 1, m) codes by item index of ``split`` from codes of catalogue rows ``ad_ids``; row 0 = padding."""
    index = split.index_of(np.asarray(ad_ids))
    out = np.zeros((split.n_items + 1, codes.shape[1]), dtype=np.int64)
    known = index > 0
    out[index[known]] = codes[known]
    missing = np.setdiff1d(np.arange(1, split.n_items + 1), index[known])
    if len(missing):
        raise ValueError(f"{len(missing)} items of the split have no catalogue row (e.g. ad {split.item_ids[missing[0]]})")
    return out


def fit_codes(dataset: Dataset, split: SequenceSplit, config: PQConfig | None = None,
              sources: Sequence[str] | None = None, *, cache_dir: str | Path | None = None, seed: int = 0,
              progress: bool = True) -> tuple[PQCodebook, np.ndarray, dict, np.ndarray]:
    """Fit the PQ codebook on every catalogue ad's vector.

    Returns:
        (codebook, codes by item index (n_items + 1, m), stats, the vectors in catalogue order).
    """
    vectors, dims = catalogue_vectors(dataset, split, sources, cache_dir=cache_dir, seed=seed, progress=progress)
    codebook = PQCodebook.fit(vectors, config)
    codes = codebook.encode(vectors)
    by_index = codes_by_index(codes, dataset.catalogue["ad_id"].to_numpy(), split)
    stats = {"vector_dims": dims, "pq": {"n_codes": codebook.config.n_codes,
                                         "codebook_size": codebook.config.codebook_size, "dim": codebook.config.dim},
             "unique_code_rate": len(np.unique(codes, axis=0)) / max(len(codes), 1)}
    return codebook, by_index, stats, vectors
