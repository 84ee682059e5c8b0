"""The importer: the DuckDB fast path against the general path (same bytes), spilling, progress bytes, a reference model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genads.data import duck_sort, ingest
from genads.data.dataset import load_dataset
from genads.data.loaders import RecBoleSource, S3RecSource, TabularSource, TencentGRSource
from genads.data.validate import ImportValidationError
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


def _both(path, tmp, on_error="skip", source=None, **kw):
    """Import ``path`` on the fast (DuckDB CSV) path and on the general path; returns both reports."""
    fast = do_import(TabularSource(path, **(source or {})), tmp / "fast", on_error, **kw)
    general = do_import(TabularSource(path, **(source or {})), tmp / "general", on_error, fast=False, **kw)
    return fast, general


def _same(a_report, b_report) -> None:
    a, b = load_dataset(a_report.path), load_dataset(b_report.path)
    frames_equal(a.events, b.events)
    frames_equal(a.catalogue, b.catalogue)
    assert a.meta == b.meta
    assert rejected(a_report.path) == rejected(b_report.path)
    assert a.vocab.to_frame().equals(b.vocab.to_frame())
    for name in ("events.parquet", "catalogue.parquet", "meta.json"):
        assert (a_report.path / name).read_bytes() == (b_report.path / name).read_bytes(), name


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz", "events.tsv"])
def test_fast_and_general_paths_give_the_same_bytes(tmp_path, name):
    frame = _log(np.random.default_rng(0), 3000, users=200, ads=50)
    path = tmp_path / name
    frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    fast, general = _both(path, tmp_path)
    assert (fast.engine, general.engine) == ("fast", "general")
    _same(fast, general)
    assert fast.issues.counts["duplicate"] == len(frame) - len(_reference(frame)) > 0
    frames_equal(load_dataset(fast.path).events, _reference(frame))


MESSY_EVENTS = """user_id,ad_id,timestamp,action
u1,ad-a,100,click
u2,ad-b,200,purchase
3,ad-a,300,View
 u1 ,ad-b,150,click
u1,ad-a,100,click
,ad-a,5,click
u4,ad-zz,5,click
u5,ad-a,1.5e3,click
u5,ad-a,12.7,click
-1,ad-a,5,click
1.5,ad-b,6,click
u6,ad-c,7,dance
+7,ad-c,8,CLICK
ué,ad-c,9,click
u8,ad-c,-5,conversion
u9,ad-c,123456789012345678901,click
"""

MESSY_CATALOGUE = """ad_id,title,advertiser_id
ad-a,First,shop-1
ad-b,Second,shop-2
ad-c,Third,shop-1
"""


@pytest.mark.parametrize("catalogue", [True, False], ids=["catalogue", "bare"])
def test_fast_path_judges_odd_rows_like_the_general_path(tmp_path, catalogue):
    """String ids, whitespace, floats, unknown ads, unknown actions, an --action-map: the same issues, the same ids."""
    events = write(tmp_path / "e.csv", MESSY_EVENTS)
    cat = {"catalogue": write(tmp_path / "c.csv", MESSY_CATALOGUE)} if catalogue else {}
    fast, general = _both(events, tmp_path, source=cat,
                          action_map={"purchase": "conversion"})
    assert fast.engine == "fast"
    _same(fast, general)
    kinds = {r["kind"] for r in rejected(fast.path)}
    assert {"missing_field", "bad_id", "bad_action", "duplicate"} <= kinds
    if catalogue:
        assert "unknown_ad" in kinds
    ds = load_dataset(fast.path)
    assert ds.vocab.index_of("user", "u1") is not None and ds.vocab.index_of("user", "ué") is not None


def test_stop_reports_the_first_bad_row_on_both_paths(tmp_path):
    events = write(tmp_path / "e.csv", MESSY_EVENTS)
    messages = []
    for fast in (True, False):
        with pytest.raises(ImportValidationError) as err:
            do_import(TabularSource(events), tmp_path / f"ds-{fast}", "stop", fast=fast)
        messages.append(str(err.value))
        assert not (tmp_path / f"ds-{fast}").exists()  # nothing written on stop
    assert messages[0] == messages[1] and ":7: field 'user_id': missing_field" in messages[0]


@pytest.mark.parametrize("text", [
    'user_id,ad_id,timestamp,action\n1,1,5,click\n"2",1,6,click\n',  # a quote: the csv module's rules
    "user_id,ad_id,timestamp,action\n1,1,5,click\n\n2,1,6,click\n",  # a blank line: lines != rows
    "user_id,ad_id,timestamp,action\n1,1,5,click\n2,1,6\n3,1,7,click,extra\n",  # wrong field counts
    "user_id,ad_id,timestamp,action\n1,1,5,click\n2,1,6,click\n\n",  # a trailing blank line
    "user_id,ad_id,timestamp,action\r\n1,1,5,click\r\n\r\n2,1,6,click\r\n",  # a blank CRLF line
], ids=["quote", "blank-line", "malformed", "trailing-blank", "blank-crlf"])
def test_files_the_fast_path_cannot_read_strictly_take_the_general_path(tmp_path, text):
    events = write(tmp_path / "e.csv", text)
    fast, general = _both(events, tmp_path)
    assert fast.engine == "general"
    _same(fast, general)


@pytest.mark.parametrize("text", [
    "user_id,ad_id,timestamp,action\n1,1,5,click\n2,1,6,click",  # no newline after the last row
    "user_id,ad_id,timestamp,action\r\n1,1,5,click\r\n2,1,6,click\r\n",  # CRLF line ends
], ids=["no-final-newline", "crlf"])
def test_plain_files_without_blank_lines_take_the_fast_path(tmp_path, text):
    events = write(tmp_path / "e.csv", text)
    fast, general = _both(events, tmp_path)
    assert fast.engine == "fast"
    _same(fast, general)


def test_plain_file_pass_counts_lines_and_finds_patterns_across_blocks(tmp_path):
    from genads.data import duck_scan

    def scan(name, text, block=1 << 24):
        return duck_scan._plain_file_cached(str(write(tmp_path / name, text)), 0, 0, block)

    assert scan("a.csv", "h\n1\n2\n") == duck_scan._PlainFile(True, 3)
    assert scan("b.csv", "h\n1\n2").lines == 3  # a last line without newline counts
    assert scan("c.csv", "h\n" + "1\n" * 50, block=7).lines == 51
    assert scan("d.csv", "h\r\n" + "1\r\n" * 9, block=5) == duck_scan._PlainFile(True, 10)
    for cut in range(1, 12):  # a blank CRLF line or a quote wherever the blocks are cut
        assert not scan("e.csv", "h\r\n1\r\n\r\n2\r\n", block=cut).eligible
        assert not scan("f.csv", 'h\n1\n"2"\n', block=cut).eligible
    assert not scan("g.csv", "  \n1\n").eligible  # a blank header


def test_gzip_check_finds_a_quote_across_blocks(tmp_path):
    from genads.data import duck_scan

    path = write(tmp_path / "e.csv.gz", "user_id,ad_id,timestamp,action\n" + "1,1,5,click\n" * 40 + '2,"1",6,click\n')
    assert not duck_scan._plain_gzip(path, block=7)
    clean = write(tmp_path / "c.csv.gz", "user_id,ad_id,timestamp,action\n" + "1,1,5,click\n" * 40)
    assert duck_scan._plain_gzip(clean, block=7)
    blank = write(tmp_path / "b.csv.gz", "user_id,ad_id,timestamp,action\n" + "1,1,5,click\n" * 20 + "\n3,1,7,click\n")
    assert not duck_scan._plain_gzip(blank, block=5)


def test_a_small_memory_limit_spills_and_gives_the_same_bytes(tmp_path):
    frame = _log(np.random.default_rng(3), 60_000, users=5000, ads=300)
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    roomy = do_import(TabularSource(path), tmp_path / "roomy", "skip")
    tight = do_import(TabularSource(path), tmp_path / "tight", "skip",
                      duck=duck_sort.DuckConfig(memory_limit="20MB", threads=1))
    _same(roomy, tight)
    again = do_import(TabularSource(path), tmp_path / "again", "skip")
    _same(roomy, again)  # the same input, the same bytes


def test_one_user_with_many_events(tmp_path):
    frame = pd.DataFrame({"user_id": 5, "ad_id": np.arange(1, 501), "timestamp": np.arange(500) % 7, "action": "click"})
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    report = do_import(TabularSource(path), tmp_path / "ds", chunk_rows=64)
    frames_equal(load_dataset(report.path).events, _reference(frame))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 300), chunk=st.integers(7, 97), fast=st.booleans())  # n=0: an error
def test_import_matches_the_reference_model(tmp_path_factory, seed, n, chunk, fast):
    tmp = tmp_path_factory.mktemp("prop")
    frame = _log(np.random.default_rng(seed), n, users=max(1, n // 5), ads=20)
    path = tmp / "events.csv"
    frame.to_csv(path, index=False)
    report = do_import(TabularSource(path), tmp / "ds", "skip", chunk_rows=chunk, fast=fast)
    ds = load_dataset(report.path)
    ref = _reference(frame)
    frames_equal(ds.events, ref)
    assert report.n_users == ref["user_id"].nunique()
    assert ds.catalogue["ad_id"].tolist() == sorted(ref["ad_id"].unique().tolist())
    assert report.issues.counts.get("duplicate", 0) == len(frame) - len(ref)


@pytest.mark.parametrize("row_group", [1, 3, 16, 1 << 20])
def test_copies_across_batches_are_dropped_and_listed_in_input_order(tmp_path, monkeypatch, row_group):
    """Runs of equal (user, timestamp) straddle the sorted stream's batches: every later copy is found, the
    first in input order is kept, and the issues name each copy's line and its first copy's line."""
    monkeypatch.setattr(duck_sort, "ROW_GROUP", row_group)
    frame = _log(np.random.default_rng(5), 400, users=3, ads=4)  # few users, ads and times: many copies
    frame["timestamp"] //= 10
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    report = do_import(TabularSource(path), tmp_path / "ds", "skip")
    ds = load_dataset(report.path)
    frames_equal(ds.events, _reference(frame))
    key = ["user_id", "ad_id", "timestamp", "action"]
    copies = frame[frame.duplicated(key, keep="first")]
    firsts = frame.reset_index().groupby(key)["index"].transform("min")
    want = [(i + 2, f"same user, ad, timestamp and action as line {firsts[i] + 2}") for i in copies.index]
    got = [(r["line"], r["message"]) for r in rejected(report.path)]
    assert got == want and report.issues.counts["duplicate"] == len(copies) > 100
    assert report.n_users == frame["user_id"].nunique()
    assert ds.meta["actions"] == {a: int(n) for a, n in zip(ACTIONS, np.bincount(
        _reference(frame)["action"], minlength=3), strict=True)}


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


def test_empty_event_file_is_an_error(tmp_path):
    """A header-only file gives nothing to train on: an error, not an empty dataset that exits 0 (issue 27)."""
    with pytest.raises(ValueError, match=r"e\.csv: no event was accepted \(no malformed rows\); nothing written"):
        do_import(TabularSource(write(tmp_path / "e.csv", "user_id,ad_id,timestamp\n"),
                                catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV)), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_every_row_rejected_is_an_error_and_keeps_the_old_dataset(tmp_path):
    good = do_import(TabularSource(write(tmp_path / "e.csv", EVENTS_CSV)), tmp_path / "ds")
    before = load_dataset(good.path).events
    bad = write(tmp_path / "bad.csv", "user_id,ad_id,timestamp\n1,2,soon\n3,4,later\n")
    with pytest.raises(ValueError, match=r"no event was accepted \(skipped 2 malformed rows.*bad\.csv:2.*left as it was"):
        do_import(TabularSource(bad), tmp_path / "ds", on_error="skip")
    frames_equal(load_dataset(tmp_path / "ds").events, before)


def test_chunk_rows_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="chunk_rows=0"):
        do_import(TabularSource(write(tmp_path / "e.csv", EVENTS_CSV)), tmp_path / "ds", chunk_rows=0)


def test_load_dataset_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"catalogue\.parquet not found"):
        load_dataset(tmp_path)
