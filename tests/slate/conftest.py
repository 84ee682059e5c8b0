"""Fixtures for the slate model: the cycle dataset split and RQ-KMeans SIDs over its items."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.data.split import SequenceSplit, leave_one_out
from genads.tokenize import RQKMeansConfig, RQKMeansTokenizer, disambiguate


def item_sids(n_items: int, levels: int = 2, codebook: int = 4, seed: int = 0) -> np.ndarray:
    """(n_items + 1, levels + 1) unique SIDs from RQ-KMeans over random item vectors; row 0 = padding."""
    vectors = np.random.default_rng(seed).normal(size=(n_items, 8)).astype(np.float32)
    codes = RQKMeansTokenizer(RQKMeansConfig(levels=levels, codebook_size=codebook, n_iter=5)).fit(vectors, seed=seed)
    sids = np.zeros((n_items + 1, levels + 1), dtype=np.int64)
    sids[1:] = disambiguate(codes)
    return sids


@pytest.fixture
def cycle_split(cycle_dataset) -> SequenceSplit:
    return leave_one_out(cycle_dataset)


@pytest.fixture
def cycle_sids(cycle_split) -> np.ndarray:
    return item_sids(cycle_split.n_items)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
