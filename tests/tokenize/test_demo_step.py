import numpy as np
import pandas as pd
import torch

from genads.data.dataset import Dataset
from genads.data.split import leave_one_out
from genads.demo import DemoContext
from genads.tokenize import demo_step


def test_demo_step_aligns_sids_with_the_split(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 200
    catalogue = pd.DataFrame({"ad_id": np.arange(10, 10 + n), "title": [f"item {i}" for i in range(n)],
                              "brand": "", "category": "", "description": "", "attributes": [[] for _ in range(n)]})
    rows = [(u, int(10 + a), t, 1) for u in range(60) for t, a in enumerate(rng.choice(n, 5, replace=False))]
    events = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp", "action"])
    ds = Dataset(catalogue, events, {})
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    monkeypatch.setattr(demo_step, "item_vectors", lambda *a, **k: (vectors, {"text": 16}))
    ctx = DemoContext(out=tmp_path, fast=True)
    ctx.dataset, ctx.split = ds, leave_one_out(ds)
    demo_step.run(ctx)
    sids = ctx.artifacts["sids"]
    assert sids.shape == (n + 1, demo_step.LEVELS + 1)
    assert (sids[0] == 0).all() and len(np.unique(sids[1:], axis=0)) == n
    # row i of sids is the SID of the ad with split index i
    tok_codes = ctx.artifacts["tokenizer"].encode(vectors)
    idx = ctx.split.index_of(catalogue["ad_id"].to_numpy())
    assert np.array_equal(ctx.artifacts["sid_codes"][idx], tok_codes)
    trie = ctx.artifacts["sid_trie"]
    assert len(trie) == n and trie.ads(tuple(sids[idx[0]])) == [int(idx[0])]
    assert trie.mask(torch.zeros((1, 0), dtype=torch.int64)).sum() == len(np.unique(sids[1:, 0]))
    section = ctx.report.section("Semantic IDs")
    assert section.tables and section.images
    assert set(ctx.metrics["tokenize"]["methods"]) == {"RQ-KMeans", "end-to-end (UniSID)"}
