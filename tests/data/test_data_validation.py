"""Every kind of malformed row in generic CSV / CSV.gz / Parquet input: named by file, line and field."""

from __future__ import annotations

import pandas as pd
import pytest

from genads.data.dataset import load_dataset
from genads.data.loaders import TabularSource
from genads.data.validate import ImportValidationError
from tests.data.datahelpers import (
    CATALOGUE_CSV,
    EVENTS_CSV,
    assert_skips,
    assert_stops,
    do_import,
    frames_equal,
    rejected,
    write,
)

N_GOOD = 7  # events in EVENTS_CSV
BAD_LINE = 9  # header + 7 events, then the bad line

EVENT_CASES = [
    # (bad line, field, kind)
    ("-9,1,100,click", "user_id", "bad_id"),
    ("4,-1,100,click", "ad_id", "bad_id"),
    ("4,1.5,100,click", "ad_id", "bad_id"),
    ("4,1e3,100,click", "ad_id", "bad_id"),
    (",1,100,click", "user_id", "missing_field"),
    ("4,1,,click", "timestamp", "missing_field"),
    ("4,1,  ,click", "timestamp", "missing_field"),
    ("4,1,100,", "action", "missing_field"),
    ("4,1,yesterday,click", "timestamp", "bad_timestamp"),
    ("4,1,nan,click", "timestamp", "bad_timestamp"),
    ("4,1,1e30,click", "timestamp", "bad_timestamp"),
    ("4,1,100,like", "action", "bad_action"),
    ("4,99,100,click", "ad_id", "unknown_ad"),
    ("1,2,200,click", "event", "duplicate"),
    ("4,1,100", "row", "malformed_row"),
    ("4,1,100,click,extra", "row", "malformed_row"),
]


def _case_id(case: tuple) -> str:
    return f"{case[2]}:{case[0]}"


@pytest.mark.parametrize("case", EVENT_CASES, ids=_case_id)
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_bad_event_row_stop_and_skip(tmp_path, case, suffix):
    text, field, kind = case
    events = write(tmp_path / f"events{suffix}", EVENTS_CSV + text + "\n")
    catalogue = write(tmp_path / "catalogue.csv", CATALOGUE_CSV)
    source = TabularSource(events, catalogue=catalogue)
    assert_stops(source, tmp_path / "ds", events, BAD_LINE, field, kind)
    row = assert_skips(source, tmp_path / "ds", events, BAD_LINE, field, kind, N_GOOD)
    if kind == "duplicate":
        assert "line 3" in row["message"]  # points at the earlier copy


def test_bad_row_in_the_middle_keeps_neighbours(tmp_path):
    lines = EVENTS_CSV.splitlines()
    lines.insert(3, "1,2,oops,click")  # becomes line 4
    events = write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    source = TabularSource(events, catalogue=write(tmp_path / "catalogue.csv", CATALOGUE_CSV))
    assert_stops(source, tmp_path / "ds", events, 4, "timestamp", "bad_timestamp")
    assert_skips(source, tmp_path / "ds", events, 4, "timestamp", "bad_timestamp", N_GOOD)
    ds = load_dataset(tmp_path / "ds")
    assert ds.events[ds.events.user_id == 1]["timestamp"].tolist() == [100, 200, 300]


def test_column_map_names_the_input_column(tmp_path):
    events = write(tmp_path / "log.csv", "uid,item,ts\n1,1,10\n1,2,x\n")
    source = TabularSource(events, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV),
                           column_map={"user_id": "uid", "ad_id": "item", "timestamp": "ts"})
    assert_stops(source, tmp_path / "ds", events, 3, "ts", "bad_timestamp")
    assert_skips(source, tmp_path / "ds", events, 3, "ts", "bad_timestamp", 1)
    assert load_dataset(tmp_path / "ds").events["action"].tolist() == [1]  # default action: click


def test_quoted_multiline_field_reports_the_start_line(tmp_path):
    events = write(tmp_path / "events.csv", 'user_id,ad_id,timestamp,note\n1,1,10,"a\nb"\n1,"2",x,c\n1,3,30,d\n')
    source = TabularSource(events, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV))
    assert_stops(source, tmp_path / "ds", events, 4, "timestamp", "bad_timestamp")
    assert_skips(source, tmp_path / "ds", events, 4, "timestamp", "bad_timestamp", 2)


def test_blank_lines_are_not_rows(tmp_path):
    events = write(tmp_path / "events.csv", "user_id,ad_id,timestamp\n1,1,10\n\n1,2,x\n")
    source = TabularSource(events, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV))
    assert_stops(source, tmp_path / "ds", events, 4, "timestamp", "bad_timestamp")


CATALOGUE_CASES = [
    ("2,Other kettle,Acme,kitchen,3", "ad_id", "duplicate"),
    ("5.5,Thing,Acme,kitchen,3", "ad_id", "bad_id"),
    (",Thing,Acme,kitchen,3", "ad_id", "missing_field"),
    ("5,Thing,Acme,kitchen,cheap", "price", "bad_value"),
    ("5,Thing,Acme,kitchen,-3", "price", "bad_value"),
    ("5,Thing,Acme", "row", "malformed_row"),
]


@pytest.mark.parametrize("case", CATALOGUE_CASES, ids=_case_id)
def test_bad_catalogue_row(tmp_path, case):
    text, field, kind = case
    catalogue = write(tmp_path / "catalogue.csv", CATALOGUE_CSV + text + "\n")
    source = TabularSource(write(tmp_path / "events.csv", EVENTS_CSV), catalogue=catalogue)
    assert_stops(source, tmp_path / "ds", catalogue, 6, field, kind)
    row = assert_skips(source, tmp_path / "ds", catalogue, 6, field, kind, N_GOOD)
    if kind == "duplicate":
        assert "line 3" in row["message"]
        cat = load_dataset(tmp_path / "ds").catalogue
        assert cat.loc[cat.ad_id == 2, "title"].item() == "Blue kettle"  # the first definition wins


MONEY_CATALOGUE = "ad_id,title,advertiser_id,bid,budget\n1,a,7,0.5,100\n2,b,7,0.6,100\n3,c,8,1.0,50\n4,d,8,1.1,50\n"


@pytest.mark.parametrize("case", [
    ("5,e,8,abc,50", "bid", "bad_value"),
    ("5,e,8,-0.1,50", "bid", "bad_value"),
    ("5,e,8,1.0,inf", "budget", "bad_value"),
    ("5,e,8,1.0,-5", "budget", "bad_value"),
    ("5,e,-8,1.0,5", "advertiser_id", "bad_id"),
], ids=_case_id)
def test_bad_bid_budget_advertiser(tmp_path, case):
    text, field, kind = case
    catalogue = write(tmp_path / "catalogue.csv", MONEY_CATALOGUE + text + "\n")
    source = TabularSource(write(tmp_path / "events.csv", EVENTS_CSV), catalogue=catalogue)
    assert_stops(source, tmp_path / "ds", catalogue, 6, field, kind)
    assert_skips(source, tmp_path / "ds", catalogue, 6, field, kind, N_GOOD)
    ds = load_dataset(tmp_path / "ds")
    assert ds.catalogue["bid"].tolist() == [0.5, 0.6, 1.0, 1.1]  # given money is kept as is
    assert ds.catalogue["advertiser_id"].tolist() == [7, 7, 8, 8]
    assert ds.meta["market"]["bid"] == {"synthetic": False}


def test_catalogue_map_must_name_real_columns(tmp_path):
    source = TabularSource(write(tmp_path / "events.csv", EVENTS_CSV),
                           catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV), catalogue_map={"title": "name"})
    with pytest.raises(ValueError, match=r"c\.csv:1: catalogue map title=name"):
        do_import(source, tmp_path / "ds")


def test_missing_event_column_is_named(tmp_path):
    events = write(tmp_path / "events.csv", "user,ad_id,timestamp\n1,1,1\n")
    with pytest.raises(ValueError, match=r"events\.csv:1: header has no column 'user_id'"):
        do_import(TabularSource(events), tmp_path / "ds")


def _parquet(tmp_path, rows: dict) -> object:
    path = tmp_path / "events.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_parquet_with_column_map_and_bad_rows(tmp_path):
    path = _parquet(tmp_path, {"uid": [1, 1, 2, 2], "item": [1, 2, 3, 77], "ts": [10.0, 20.0, 5.0, 6.0],
                               "kind": ["click", "view", "purchase", "click"]})
    source = TabularSource(path, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV),
                           column_map={"user_id": "uid", "ad_id": "item", "timestamp": "ts", "action": "kind"})
    assert_stops(source, tmp_path / "ds", path, 4, "item", "unknown_ad")
    assert_skips(source, tmp_path / "ds", path, 4, "item", "unknown_ad", 3)
    ds = load_dataset(tmp_path / "ds")
    assert ds.events["action"].tolist() == [1, 0, 2]
    assert ds.meta["format"] == "parquet"


@pytest.mark.parametrize("column, values, kind", [
    ("uid", [1.0, 2.5, 3.0], "bad_id"),
    ("uid", [1.0, None, 3.0], "missing_field"),
    ("ts", ["1", "x", "3"], "bad_timestamp"),
])
def test_parquet_bad_values(tmp_path, column, values, kind):
    rows = {"uid": [1, 2, 3], "item": [1, 2, 3], "ts": [1, 2, 3]}
    rows[column] = values
    path = _parquet(tmp_path, rows)
    source = TabularSource(path, column_map={"user_id": "uid", "ad_id": "item", "timestamp": "ts"})
    assert_stops(source, tmp_path / "ds", path, 2, column, kind)
    assert_skips(source, tmp_path / "ds", path, 2, column, kind, 2)


def test_big_ids_are_exact(tmp_path):
    big = 2**61 + 1  # not representable as float64
    events = write(tmp_path / "events.csv", f"user_id,ad_id,timestamp\n{big},{big},1700000000123\n")
    do_import(TabularSource(events), tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert ds.events["user_id"].item() == big and ds.catalogue["ad_id"].item() == big
    assert ds.events["timestamp"].item() == 1700000000123


def test_failed_import_leaves_existing_dataset_intact(tmp_path):
    catalogue = write(tmp_path / "catalogue.csv", CATALOGUE_CSV)
    do_import(TabularSource(write(tmp_path / "good.csv", EVENTS_CSV), catalogue=catalogue), tmp_path / "ds")
    before = load_dataset(tmp_path / "ds")
    bad = write(tmp_path / "bad.csv", EVENTS_CSV + "4,1,100,like\n")
    with pytest.raises(ImportValidationError, match=r"bad\.csv:9: field 'action'"):
        do_import(TabularSource(bad, catalogue=catalogue), tmp_path / "ds")
    after = load_dataset(tmp_path / "ds")
    frames_equal(before.events, after.events)
    frames_equal(before.catalogue, after.catalogue)
    assert before.meta == after.meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "catalogue.csv", "ds", "good.csv"]


def test_skip_replaces_existing_dataset_and_stale_rejections(tmp_path):
    catalogue = write(tmp_path / "catalogue.csv", CATALOGUE_CSV)
    do_import(TabularSource(write(tmp_path / "bad.csv", EVENTS_CSV + "4,1,100,like\n"), catalogue=catalogue),
              tmp_path / "ds", "skip")
    assert len(rejected(tmp_path / "ds")) == 1
    do_import(TabularSource(write(tmp_path / "good.csv", EVENTS_CSV), catalogue=catalogue), tmp_path / "ds")
    assert rejected(tmp_path / "ds") == []
    assert load_dataset(tmp_path / "ds").meta["rejected"] == {}


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path):
    precious = tmp_path / "home"
    write(precious / "notes.txt", "keep me")
    with pytest.raises(FileExistsError, match="not a genads dataset"):
        do_import(TabularSource(write(tmp_path / "e.csv", EVENTS_CSV)), precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_skip_counts_several_kinds(tmp_path):
    bad = ["4,1,100,like", "1e3,1,100,click", "4,99,100,click", "1,2,200,click", "4,1,100,click,1", "4,2,t,click"]
    events = write(tmp_path / "events.csv", EVENTS_CSV + "\n".join(bad) + "\n")
    report = do_import(TabularSource(events, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV)), tmp_path / "ds", "skip")
    assert report.issues.counts == {"bad_action": 1, "bad_id": 1, "unknown_ad": 1, "duplicate": 1,
                                    "malformed_row": 1, "bad_timestamp": 1}
    assert report.n_events == N_GOOD
    assert [r["line"] for r in rejected(tmp_path / "ds")] == list(range(9, 15))
    assert "skipped 6 malformed rows" in report.issues.summary()


def test_catalogue_lists_csv_and_parquet(tmp_path):
    events = write(tmp_path / "events.csv", EVENTS_CSV)
    csv_cat = write(tmp_path / "c.csv", "ad_id,title,selling_points,attributes\n1,a,light|cheap| blue |,x\n2,b,,\n3,c,,\n4,d,,\n")
    cat = load_dataset(do_import(TabularSource(events, catalogue=csv_cat), tmp_path / "a").path).catalogue
    assert cat["selling_points"].iloc[0].tolist() == ["light", "cheap", "blue"]
    assert cat["attributes"].iloc[0].tolist() == ["x"] and cat["selling_points"].iloc[1].tolist() == []
    pq_cat = tmp_path / "c.parquet"
    pd.DataFrame({"id": [1, 2, 3, 4], "name": ["a", "b", "c", "d"], "price": [1.5, None, 3.0, 4.0],
                  "selling_points": [["light", "cheap"], [], ["x"], []]}).to_parquet(pq_cat)
    source = TabularSource(events, catalogue=pq_cat, catalogue_map={"ad_id": "id", "title": "name"})
    cat = load_dataset(do_import(source, tmp_path / "b").path).catalogue
    assert cat["title"].tolist() == ["a", "b", "c", "d"]
    assert cat["selling_points"].iloc[0].tolist() == ["light", "cheap"]
    assert cat["price"].isna().tolist() == [False, True, False, False]


def test_csv_parser_errors_are_rows_with_their_line(tmp_path):
    big = "x" * 200_000  # over the csv module's field size limit
    events = write(tmp_path / "events.csv", f'user_id,ad_id,timestamp\n1,1,1\n"2",2,"{big}"\n1,2,3\n1,3,zz\n1,4,5\n')
    source = TabularSource(events, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV))
    assert_stops(source, tmp_path / "ds", events, 3, "row", "malformed_row")
    report = do_import(source, tmp_path / "ds", "skip")
    assert report.issues.counts == {"malformed_row": 1, "bad_timestamp": 1} and report.n_events == 3
    assert [(r["line"], r["kind"]) for r in rejected(tmp_path / "ds")] == [(3, "malformed_row"), (5, "bad_timestamp")]
    bad = write(tmp_path / "bad.csv", EVENTS_CSV.replace('1,3,300,impression', '"1",3,300,impression') + "1,4,zz,click\n")
    assert_stops(TabularSource(bad, catalogue=write(tmp_path / "c.csv", CATALOGUE_CSV)), tmp_path / "ds2", bad, 9,
                 "timestamp", "bad_timestamp")
