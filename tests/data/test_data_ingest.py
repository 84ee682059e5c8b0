"""The streaming importer: external sort with several buckets, progress bytes, a reference model."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genads.data import ingest
from genads.data.dataset import load_dataset
from genads.data.loaders import RecBoleSource, S3RecSource, TabularSource, TencentGRSource
from genads.data.loaders.text import file_size
from tests.data.datahelpers import (
    CATALOGUE_CSV,
    EVENTS_CSV,
    FIXTURES,
    do_import,
    frames_equal,
    rejected,
    write,
)

ACTIONS = ["impression", "click", "conversion"]


def _log(rng: np.random.Generator, n: int, users: int, ads: int) -> pd.DataFrame:
    """A random event log with ties and exact duplicates."""
    frame = pd.DataFrame({
        "user_id": rng.integers(0, users, n) * 7,  # multiples of 7: a modulo hash would cluster them
        "ad_id": rng.integers(1, ads + 1, n),
        "timestamp": rng.integers(0, 30, n),
        "action": rng.choice(ACTIONS, n),
    })
    dups = frame.sample(n // 10, random_state=1)
    return pd.concat([frame, dups], ignore_index=True)


def _reference(frame: pd.DataFrame) -> pd.DataFrame:
    """What the importer must produce: sorted by (user, timestamp, input order), later duplicates dropped."""
    ref = frame.assign(action=frame["action"].map({a: i for i, a in enumerate(ACTIONS)}).astype("int8"))
    ref = ref.drop_duplicates(["user_id", "ad_id", "timestamp", "action"], keep="first")
    return ref.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def _small_buckets(monkeypatch, bucket_bytes=2_000, bucket_rows=300, merge_rows=64):
    monkeypatch.setattr(ingest, "BUCKET_BYTES", bucket_bytes)
    monkeypatch.setattr(ingest, "BUCKET_ROWS", bucket_rows)
    monkeypatch.setattr(ingest, "MERGE_ROWS", merge_rows)


def test_many_buckets_give_the_same_dataset_as_one(tmp_path, monkeypatch):
    frame = _log(np.random.default_rng(0), 3000, users=200, ads=50)
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    one = do_import(TabularSource(path), tmp_path / "one", "skip", chunk_rows=500)
    _small_buckets(monkeypatch)
    assert ingest._bucket_count(file_size(path)) > 10
    many = do_import(TabularSource(path), tmp_path / "many", "skip", chunk_rows=500)
    a, b = load_dataset(one.path), load_dataset(many.path)
    frames_equal(a.events, b.events)
    frames_equal(a.catalogue, b.catalogue)
    assert a.meta == b.meta
    assert rejected(one.path) == rejected(many.path)
    assert one.issues.counts["duplicate"] == len(frame) - len(_reference(frame)) > 0
    frames_equal(a.events, _reference(frame))


def test_oversized_buckets_are_split_again(tmp_path, monkeypatch):
    """A low size hint (e.g. gzip) gives too few buckets: pass 2 re-partitions them."""
    frame = _log(np.random.default_rng(1), 2000, users=300, ads=40)
    path = tmp_path / "events.csv.gz"
    with gzip.open(path, "wt") as f:
        frame.to_csv(f, index=False)
    _small_buckets(monkeypatch, bucket_bytes=10**9, bucket_rows=150, merge_rows=50)
    seen = []
    real = ingest._split_bucket
    monkeypatch.setattr(ingest, "_split_bucket", lambda p, d: seen.append(d) or real(p, d))
    report = do_import(TabularSource(path), tmp_path / "ds", "skip", chunk_rows=333)
    assert seen  # pass 2 split the oversized buckets
    frames_equal(load_dataset(report.path).events, _reference(frame))


def test_one_user_larger_than_a_bucket(tmp_path, monkeypatch):
    frame = pd.DataFrame({"user_id": 5, "ad_id": np.arange(1, 501), "timestamp": np.arange(500) % 7, "action": "click"})
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    _small_buckets(monkeypatch, bucket_rows=100)
    report = do_import(TabularSource(path), tmp_path / "ds", chunk_rows=64)
    frames_equal(load_dataset(report.path).events, _reference(frame))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), n=st.integers(0, 300), chunk=st.integers(7, 97),
       bucket_rows=st.integers(40, 200), bucket_bytes=st.integers(800, 5000))
def test_import_matches_the_reference_model(tmp_path_factory, monkeypatch, seed, n, chunk, bucket_rows, bucket_bytes):
    tmp = tmp_path_factory.mktemp("prop")
    frame = _log(np.random.default_rng(seed), n, users=max(1, n // 5), ads=20)
    path = tmp / "events.csv"
    frame.to_csv(path, index=False)
    with monkeypatch.context() as m:
        _small_buckets(m, bucket_bytes=bucket_bytes, bucket_rows=bucket_rows, merge_rows=max(1, bucket_rows // 3))
        report = do_import(TabularSource(path), tmp / "ds", "skip", chunk_rows=chunk)
    ds = load_dataset(report.path)
    ref = _reference(frame)
    frames_equal(ds.events, ref)
    assert report.n_users == ref["user_id"].nunique()
    assert ds.catalogue["ad_id"].tolist() == sorted(ref["ad_id"].unique().tolist())
    assert report.issues.counts.get("duplicate", 0) == len(frame) - len(ref)


@pytest.mark.parametrize("make", [
    lambda tmp: TabularSource(write(tmp / "e.csv", EVENTS_CSV * 1)),
    lambda tmp: TabularSource(write(tmp / "e.csv.gz", EVENTS_CSV + "".join(f"9,1,{t},click\n" for t in range(300)))),
    lambda tmp: S3RecSource(FIXTURES / "s3rec" / "Tiny.txt"),
    lambda tmp: RecBoleSource(FIXTURES / "recbole" / "tiny.inter"),
    lambda tmp: TencentGRSource(FIXTURES / "tencentgr" / "seq.jsonl"),
], ids=["csv", "csv.gz", "s3rec", "recbole", "tencentgr"])
def test_progress_bytes_add_up_to_the_file_size(tmp_path, make):
    source = make(tmp_path)
    chunks = list(source.event_chunks(2))
    assert len(chunks) > 1
    assert sum(c.bytes_read for c in chunks) == source.size_hint() > 0
    assert all(c.bytes_read >= 0 for c in chunks)


def test_progress_bytes_parquet(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"user_id": range(100), "ad_id": 1, "timestamp": 1}).to_parquet(path, row_group_size=10)
    source = TabularSource(path)
    assert sum(c.bytes_read for c in source.event_chunks(7)) == source.size_hint()


def test_progress_bar_reaches_the_total(tmp_path, monkeypatch):
    updates = []

    class Bar:
        def __init__(self, total=None, **kw):
            self.total = total

        def update(self, n):
            updates.append((self.total, n))

        def close(self):
            pass

    monkeypatch.setattr(ingest, "tqdm", Bar)
    path = write(tmp_path / "e.csv", EVENTS_CSV)
    ingest.import_dataset(TabularSource(path), tmp_path / "ds", progress=True, chunk_rows=2)
    totals = {t for t, _ in updates if t == path.stat().st_size}
    assert totals and sum(n for t, n in updates if t == path.stat().st_size) == path.stat().st_size


def test_meta_and_layout(tmp_path):
    report = do_import(TabularSource(write(tmp_path / "e.csv", EVENTS_CSV),
                                     catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV)), tmp_path / "ds")
    assert sorted(p.name for p in report.path.iterdir()) == ["catalogue.parquet", "events.parquet", "meta.json"]
    meta = json.loads((report.path / "meta.json").read_text())
    assert meta["n_events"] == 7 and meta["n_users"] == 3 and meta["n_ads"] == 4
    assert meta["actions"] == {"impression": 1, "click": 5, "conversion": 1}
    assert meta["format"] == "csv" and meta["rejected"] == {}
    ds = load_dataset(report.path)
    assert ds.catalogue["ad_id"].tolist() == [1, 2, 3, 4]
    assert str(ds.events["action"].dtype) == "int8"
    assert np.isnan(ds.catalogue.set_index("ad_id").loc[4, "price"])


def test_empty_event_file(tmp_path):
    report = do_import(TabularSource(write(tmp_path / "e.csv", "user_id,ad_id,timestamp\n"),
                                     catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV)), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert report.n_events == 0 and len(ds.events) == 0 and len(ds.catalogue) == 4


def test_chunk_rows_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="chunk_rows=0"):
        do_import(TabularSource(write(tmp_path / "e.csv", EVENTS_CSV)), tmp_path / "ds", chunk_rows=0)


def test_load_dataset_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"catalogue\.parquet not found"):
        load_dataset(tmp_path)


def test_bucket_count_is_capped_and_pass_two_splits(tmp_path, monkeypatch):
    frame = _log(np.random.default_rng(2), 1500, users=300, ads=30)
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    _small_buckets(monkeypatch, bucket_bytes=100, bucket_rows=100, merge_rows=40)
    monkeypatch.setattr(ingest, "MAX_BUCKETS", 3)
    assert ingest._bucket_count(file_size(path)) == 3
    report = do_import(TabularSource(path), tmp_path / "ds", "skip", chunk_rows=200)
    frames_equal(load_dataset(report.path).events, _reference(frame))
