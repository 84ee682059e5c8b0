"""Issue 20: no validation or test event reaches a tokenizer's features.

Planted: ad 101 is clicked only as user 900's test item, ad 102 only as user 901's validation item.
Under leave-one-out these events are held out, so the collaborative vectors and the end-to-end
tokenizer's co-occurring pairs must not know ads 101 and 102.
"""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genads.cli import main
from genads.data.dataset import load_dataset
from genads.data.schema import CATALOGUE_SCHEMA, EVENT_SCHEMA
from genads.encode.collaborative import cooccurring_pairs, sequences_from_events
from genads.tokenize import UniSIDTokenizer
from genads.tokenize.features import item_features, item_vectors

TEST_ONLY, VALID_ONLY = 101, 102
PLANTED = [TEST_ONLY, VALID_ONLY]


def write_dataset(folder, planted: bool = True):
    rng = np.random.default_rng(0)
    n = 102
    genre = np.arange(n) % 4
    cat = pd.DataFrame({
        "ad_id": np.arange(1, n + 1), "advertiser_id": genre, "title": "", "description": "", "category": "",
        "brand": "", "price": np.nan, "selling_points": [[] for _ in range(n)],
        "attributes": [[f"genre:{g}"] for g in genre], "embedding": None, "bid": 1.0, "budget": 100.0,
    })
    rows = []
    for u in range(80):  # ordinary users over ads 1..100
        items = rng.choice(np.flatnonzero(genre[:100] == u % 4), 6, replace=False) + 1
        rows += [(u, int(a), t, 1) for t, a in enumerate(items)]
    if planted:
        rows += [(900, a, t, 1) for t, a in enumerate([1, 5, 9, 13, TEST_ONLY])]  # test = 101
        rows += [(901, a, t, 1) for t, a in enumerate([2, 6, 10, VALID_ONLY, 14])]  # validation = 102
    events = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp", "action"])
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(cat, schema=CATALOGUE_SCHEMA, preserve_index=False), folder / "catalogue.parquet")
    pq.write_table(pa.Table.from_pandas(events, schema=EVENT_SCHEMA, preserve_index=False), folder / "events.parquet")
    (folder / "meta.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("leak") / "ds")


def rows_of(ds, ad_ids) -> np.ndarray:
    return np.searchsorted(ds.catalogue["ad_id"].to_numpy(), ad_ids)


def test_the_planted_items_would_leak_from_the_whole_event_log(folder):
    """The control: built from every event, the planted ads do co-occur (so the next tests can fail)."""
    ds = load_dataset(folder)
    pairs = cooccurring_pairs(sequences_from_events(ds.events, ds.catalogue["ad_id"].to_numpy()))
    assert set(rows_of(ds, PLANTED)) <= set(pairs[:, 0].tolist())


def test_held_out_events_reach_neither_pairs_nor_collaborative_vectors(folder):
    ds = load_dataset(folder)
    planted = rows_of(ds, PLANTED)
    pairs = item_features(ds).pairs
    assert len(pairs) and not np.isin(pairs, planted).any()
    vectors, dims = item_vectors(ds, ("collab",), progress=False)
    assert dims == {"collab": 64}
    assert not vectors[planted].any() and vectors[rows_of(ds, [1, 5, 9])].any(axis=1).all()


def test_genads_tokenize_fits_on_training_events_only(folder, tmp_path, monkeypatch):
    seen = {}
    fit = UniSIDTokenizer.fit

    def spy(self, vectors, seed=0, features=None):
        seen["vectors"], seen["pairs"] = vectors, features.pairs
        return fit(self, vectors, seed=seed, features=features)

    monkeypatch.setattr(UniSIDTokenizer, "fit", spy)
    out = tmp_path / "sids"
    assert main(["tokenize", str(folder), "--out", str(out), "--method", "e2e", "--levels", "2", "--codebook", "8",
                 "--epochs", "1", "--features", "attributes,collab", "--quiet", "--no-cache"]) == 0
    ds = load_dataset(folder)
    planted = rows_of(ds, PLANTED)
    assert not np.isin(seen["pairs"], planted).any()
    assert not seen["vectors"][planted, -64:].any()  # the collaborative block of the fused vectors
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["features_from"].startswith("training events") and len(metrics["inputs_sha256"]) == 64


def test_the_inputs_key_changes_with_the_data_and_the_options(folder, tmp_path):
    from genads.cli import build_parser
    from genads.commands.tokenize import inputs_key

    parse = build_parser().parse_args
    args = parse(["tokenize", str(folder), "--out", "x", "--method", "e2e"])
    other = write_dataset(tmp_path / "other", planted=False)
    key = inputs_key(folder, args)
    assert key == inputs_key(folder, parse(["tokenize", str(folder), "--out", "y", "--method", "e2e", "--quiet"]))
    assert key != inputs_key(other, args)
    assert key != inputs_key(folder, parse(["tokenize", str(folder), "--out", "x", "--method", "e2e", "--seed", "1"]))
