import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genads.cli import main
from genads.data.schema import CATALOGUE_SCHEMA, EVENT_SCHEMA
from genads.tokenize import load_tokenizer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """300 ads in 6 genres (attributes only, no text); users click within one genre."""
    folder = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(0)
    n = 300
    genre = np.arange(n) % 6
    cat = pd.DataFrame({
        "ad_id": np.arange(1, n + 1), "advertiser_id": genre, "title": "", "description": "", "category": "",
        "brand": "", "price": np.nan, "selling_points": [[] for _ in range(n)],
        "attributes": [[f"genre:{g}", f"size:{i % 3}"] for i, g in enumerate(genre)],
        "embedding": None, "bid": 1.0, "budget": 100.0,
    })
    rows = []
    for u in range(200):
        items = rng.choice(np.flatnonzero(genre == u % 6), 6, replace=False) + 1
        rows += [(u, int(a), t, 1) for t, a in enumerate(items)]
    events = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp", "action"])
    pq.write_table(pa.Table.from_pandas(cat, schema=CATALOGUE_SCHEMA, preserve_index=False), folder / "catalogue.parquet")
    pq.write_table(pa.Table.from_pandas(events, schema=EVENT_SCHEMA, preserve_index=False), folder / "events.parquet")
    (folder / "meta.json").write_text("{}")
    return folder


@pytest.mark.parametrize("method", ["rq-kmeans", "rq-vae", "e2e"])
def test_tokenize_command_writes_tokenizer_and_unique_sids(dataset, tmp_path, method):
    out = tmp_path / method
    rc = main(["tokenize", str(dataset), "--out", str(out), "--method", method, "--levels", "2", "--codebook", "8",
               "--features", "auto", "--epochs", "2", "--quiet", "--no-cache"])
    assert rc == 0
    sids = pd.read_parquet(out / "sids.parquet")
    assert sids["ad_id"].tolist() == list(range(1, 301))
    full = np.stack(sids["sid"].to_numpy())
    codes = np.stack(sids["codes"].to_numpy())
    assert full.shape == (300, 3) and np.array_equal(full[:, :2], codes)
    assert len(np.unique(full, axis=0)) == 300
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sources"] == {"attributes": 9, "collab": 64}
    assert 0.0 <= metrics["summary"]["collision_rate"] < 1.0
    tok = load_tokenizer(out)
    assert tok.method == method and tok.levels == 2 and tok.codebook_size == 8


def test_tokenize_command_reports_bad_source(dataset, tmp_path, capsys):
    rc = main(["tokenize", str(dataset), "--out", str(tmp_path / "x"), "--features", "colour", "--quiet"])
    assert rc == 2
    assert "colour" in capsys.readouterr().err


def test_command_sources_match_the_library():
    from genads.commands.tokenize import SOURCES
    from genads.tokenize.features import SOURCES as LIBRARY_SOURCES

    assert SOURCES == LIBRARY_SOURCES


def test_tokenize_command_residual_e2e_round_trips_and_keys_its_options(dataset, tmp_path):
    out = tmp_path / "e2e-residual"
    argv = ["tokenize", str(dataset), "--out", str(out), "--method", "e2e", "--levels", "2", "--codebook", "8",
            "--features", "auto", "--epochs", "2", "--quiet", "--no-cache", "--conditioning", "residual",
            "--collision-aware"]
    assert main(argv) == 0
    tok = load_tokenizer(out)
    assert tok.config.conditioning == "residual" and tok.config.collision_aware
    from genads.cli import build_parser
    from genads.commands.tokenize import inputs_key

    plain = [a for a in argv if a not in ("--conditioning", "residual", "--collision-aware")]
    assert inputs_key(dataset, build_parser().parse_args(argv)) != inputs_key(dataset, build_parser().parse_args(plain))
