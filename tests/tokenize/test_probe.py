import numpy as np
import pandas as pd
import pytest

from genads.data.dataset import Dataset
from genads.data.split import leave_one_out
from genads.eval.harness import evaluate
from genads.tokenize.probe import ProbeConfig, SIDProbe


def _cyclic_split(n_items=60, n_users=120, length=8, seed=0):
    """Users walk the items in order (i -> i+1 mod n), from random starts: the next item is predictable."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(0, n_items)
        rows += [(u, (start + t) % n_items, t) for t in range(length)]
    events = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp"]).assign(action=1)
    catalogue = pd.DataFrame({"ad_id": np.arange(n_items)})
    return leave_one_out(Dataset(catalogue, events, {}))


def test_probe_learns_from_informative_sids():
    split = _cyclic_split()
    n = split.n_items
    sids = np.zeros((n + 1, 2), dtype=np.int64)
    sids[1:, 0] = np.arange(n) // 8  # coarse level
    sids[1:, 1] = np.arange(n) % 8  # fine level: (coarse, fine) is unique
    probe = SIDProbe(sids, [8, 8], ProbeConfig(max_len=8, d_model=32, n_layers=1, epochs=30, eval_every=10,
                                               batch_size=64, lr=5e-3, dropout=0.0))
    log = probe.fit(split, seed=0)
    assert log[-1]["loss"] < log[0]["loss"]
    assert evaluate(probe, split.test)["recall@10"] > 0.5  # random would be 10/60


def test_probe_checks_shapes():
    with pytest.raises(ValueError, match="sids must be"):
        SIDProbe(np.zeros((5, 2), dtype=np.int64), [4])
    split = _cyclic_split(n_items=10, n_users=5)
    with pytest.raises(ValueError, match="rows"):
        SIDProbe(np.zeros((5, 1), dtype=np.int64), [4]).fit(split)
