import numpy as np
import pytest


@pytest.fixture
def market():
    """40 items with random 2-level SIDs (8 codes), lognormal bids and popularity counts."""
    rng = np.random.default_rng(0)
    n_items = 40
    sids = np.zeros((n_items + 1, 2), dtype=np.int64)
    sids[1:] = rng.integers(0, 8, (n_items, 2))
    bids = np.concatenate([[0.0], rng.lognormal(0.0, 0.5, n_items)])
    pop = np.concatenate([[0.0], rng.integers(1, 50, n_items)]).astype(float)
    return sids, bids, pop
