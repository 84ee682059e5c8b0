"""Fixtures for the parallel family: the cycle dataset split and PQ codes over random item vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.data.split import SequenceSplit, leave_one_out
from genads.parallel import PQCodebook, PQConfig


def item_vectors(n_items: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_items, dim)).astype(np.float32)


def item_codes(vectors: np.ndarray, codebook: PQCodebook) -> np.ndarray:
    """(n + 1, m) codes with row 0 = padding."""
    codes = codebook.encode(vectors)
    return np.vstack([np.zeros((1, codes.shape[1]), dtype=np.int64), codes])


@pytest.fixture
def cycle_split(cycle_dataset) -> SequenceSplit:
    return leave_one_out(cycle_dataset)


@pytest.fixture
def cycle_vectors(cycle_split) -> np.ndarray:
    return item_vectors(cycle_split.n_items)


@pytest.fixture
def cycle_codebook(cycle_vectors) -> PQCodebook:
    return PQCodebook.fit(cycle_vectors, PQConfig(n_codes=4, nbits=2, dim=8, opq_iterations=3))


@pytest.fixture
def cycle_codes(cycle_vectors, cycle_codebook) -> np.ndarray:
    return item_codes(cycle_vectors, cycle_codebook)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
