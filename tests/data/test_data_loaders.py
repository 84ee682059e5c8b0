"""S3-Rec, RecBole and TencentGR loaders on committed fixtures, and their malformed inputs."""

from __future__ import annotations

import shutil

import pytest

from genads.data.dataset import load_dataset
from genads.data.loaders import RecBoleSource, S3RecSource, TabularSource, TencentGRSource
from genads.data.schema import ACTION_CODE
from tests.data.datahelpers import FIXTURES, assert_skips, assert_stops, do_import, frames_equal, write

S3REC = FIXTURES / "s3rec"
RECBOLE = FIXTURES / "recbole"
TENCENT = FIXTURES / "tencentgr"


def _copy(src_dir, tmp_path):
    dst = tmp_path / src_dir.name
    shutil.copytree(src_dir, dst)
    return dst


# --- S3-Rec ------------------------------------------------------------------------------------

def test_s3rec_fixture(tmp_path):
    report = do_import(S3RecSource(S3REC / "Tiny.txt"), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert (report.n_users, report.n_events, report.n_ads) == (4, 14, 6)
    u3 = ds.events[ds.events.user_id == 3]
    assert u3["ad_id"].tolist() == [1, 4, 5, 6, 2] and u3["timestamp"].tolist() == [0, 1, 2, 3, 4]
    assert set(ds.events["action"]) == {ACTION_CODE["click"]}
    assert ds.meta["source"]["timestamps"] == "ordinal"
    cat = ds.catalogue.set_index("ad_id")
    assert cat.loc[5, "attributes"].tolist() == ["attr:1", "attr:2", "attr:5"]
    # the advertiser is the rarest attribute: attr:5 (once) for item 5; attr:1/attr:3 tie-break for item 2
    assert cat.loc[5, "brand"] == "attr:5"
    assert cat.loc[2, "brand"] == "attr:3"  # attr:1 appears 3 times, attr:3 twice
    assert cat.loc[2, "advertiser_id"] == cat.loc[4, "advertiser_id"]  # both attr:3


def test_s3rec_without_attributes_builds_a_bare_catalogue(tmp_path):
    seq = write(tmp_path / "X.txt", (S3REC / "Tiny.txt").read_text())
    report = do_import(S3RecSource(seq), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert ds.catalogue["ad_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert ds.catalogue["advertiser_id"].nunique() == 6  # each ad is its own advertiser


@pytest.mark.parametrize("line_text, line, field, kind, kept", [
    ("5 1 -3 3", 5, "item_id", "bad_id", 16),          # the good items of the line stay
    ("5 1 2 99", 5, "item_id", "unknown_ad", 16),
    ("u5 1 2", 5, "user_id (first token)", "bad_id", 14),  # one issue for the line
    ("2 4 5", 5, "user_id (first token)", "duplicate", 14),
])
def test_s3rec_bad_sequence_line(tmp_path, line_text, line, field, kind, kept):
    d = _copy(S3REC, tmp_path)
    seq = write(d / "Tiny.txt", (S3REC / "Tiny.txt").read_text() + line_text + "\n")
    assert_stops(S3RecSource(seq), tmp_path / "ds", seq, line, field, kind)
    row = assert_skips(S3RecSource(seq), tmp_path / "ds", seq, line, field, kind, kept)
    if kind == "duplicate":
        assert "line 2" in row["message"]


@pytest.mark.parametrize("extra, field, kind", [
    ('"3": [9]', "item_id (key)", "duplicate"),
    ('"7.5": [1]', "item_id (key)", "bad_id"),
    ('"7": "brand"', "attributes", "bad_value"),
])
def test_s3rec_bad_attributes(tmp_path, extra, field, kind):
    d = _copy(S3REC, tmp_path)
    text = (S3REC / "Tiny_item2attributes.json").read_text().rstrip().removesuffix("}") + f",\n {extra}}}\n"
    attrs = write(d / "Tiny_item2attributes.json", text)
    assert_stops(S3RecSource(d / "Tiny.txt"), tmp_path / "ds", attrs, 4, field, kind)
    assert_skips(S3RecSource(d / "Tiny.txt"), tmp_path / "ds", attrs, 4, field, kind, 14)


def test_s3rec_invalid_json_names_the_line(tmp_path):
    d = _copy(S3REC, tmp_path)
    write(d / "Tiny_item2attributes.json", '{"1": [1],\n "2": [1,,]}\n')
    with pytest.raises(ValueError, match=r"Tiny_item2attributes\.json:2: not valid JSON"):
        do_import(S3RecSource(d / "Tiny.txt"), tmp_path / "ds", "skip")


# --- RecBole -----------------------------------------------------------------------------------

def test_recbole_fixture(tmp_path):
    report = do_import(RecBoleSource(RECBOLE / "tiny.inter"), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert (report.n_users, report.n_events, report.n_ads) == (3, 7, 4)
    # user 11's rows are out of time order in the file: sorted by timestamp on import
    assert ds.events[ds.events.user_id == 11]["ad_id"].tolist() == [103, 101, 104]
    cat = ds.catalogue.set_index("ad_id")
    assert cat.loc[101, "title"] == "Toy Story"
    assert cat.loc[101, "category"] == "Animation"
    assert cat.loc[101, "attributes"].tolist() == ["Animation", "Children's", "Comedy", "year:1995"]
    assert cat.loc[104, "attributes"].tolist() == ["Action", "Comedy", "Drama"]  # no release year
    assert cat.loc[101, "description"] == "Toy Story (1995). Animation, Children's, Comedy"


@pytest.mark.parametrize("line_text, field, kind", [
    ("12\t101\t3\tlater", "timestamp", "bad_timestamp"),
    ("12\t101\t3", "row", "malformed_row"),
    ("12\t1.5\t3\t881260001", "item_id", "bad_id"),
    ("12\t999\t3\t881260001", "item_id", "unknown_ad"),
    ("10\t101\t1\t881250949", "event", "duplicate"),
])
def test_recbole_bad_inter_row(tmp_path, line_text, field, kind):
    d = _copy(RECBOLE, tmp_path)
    inter = write(d / "tiny.inter", (RECBOLE / "tiny.inter").read_text() + line_text + "\n")
    assert_stops(RecBoleSource(inter), tmp_path / "ds", inter, 9, field, kind)
    assert_skips(RecBoleSource(inter), tmp_path / "ds", inter, 9, field, kind, 7)


def test_recbole_duplicate_item(tmp_path):
    d = _copy(RECBOLE, tmp_path)
    item = write(d / "tiny.item", (RECBOLE / "tiny.item").read_text() + "103\tFour Rooms again\t1996\tDrama\n")
    assert_stops(RecBoleSource(d / "tiny.inter"), tmp_path / "ds", item, 6, "item_id", "duplicate")
    assert_skips(RecBoleSource(d / "tiny.inter"), tmp_path / "ds", item, 6, "item_id", "duplicate", 7)
    assert load_dataset(tmp_path / "ds").catalogue.set_index("ad_id").loc[103, "title"] == "Four Rooms"


def test_recbole_header_without_timestamp(tmp_path):
    inter = write(tmp_path / "x.inter", "user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"x\.inter:1: header has no timestamp column"):
        RecBoleSource(inter)


# --- TencentGR / TAAC 2025 ---------------------------------------------------------------------

def test_tencentgr_fixture(tmp_path):
    report = do_import(TencentGRSource(TENCENT / "seq.jsonl", advertiser_feature="101"), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert (report.n_users, report.n_events, report.n_ads) == (3, 9, 6)  # profile records are not events
    u480 = ds.events[ds.events.user_id == 480]
    assert u480["ad_id"].tolist() == [53961, 50654, 23149, 53961]
    assert u480["action"].tolist() == [0, 1, 0, 2]  # action_type 0/1/2 = impression/click/conversion
    assert ds.meta["actions"] == {"impression": 3, "click": 5, "conversion": 1}
    cat = ds.catalogue.set_index("ad_id")
    assert cat.loc[53961, "attributes"].tolist() == ["101=40", "112=19", "130=1", "130=2"]
    assert cat.loc[53961, "advertiser_id"] == cat.loc[1001, "advertiser_id"]  # same feature 101 value
    assert cat.loc[53961, "advertiser_id"] != cat.loc[50654, "advertiser_id"]
    assert 1003 in cat.index  # in the item table, never seen in events
    profiles = ds.users.set_index("user_id")["features"]  # user_feat: stored, not only counted
    assert profiles.loc[480].tolist() == ["103=2", "104=1", "106=3", "106=7"] and profiles.loc[481].tolist() == ["103=1"]
    assert ds.meta["user_profiles"] == len(profiles) and profiles.index.is_monotonic_increasing


def test_tencentgr_user_id_inherited_from_the_line(tmp_path):
    d = _copy(TENCENT, tmp_path)
    seq = write(d / "seq.jsonl", '[[7, null, {"1": 1}, null, null, 5], [null, 1001, null, {}, 1, 10]]\n')
    report = do_import(TencentGRSource(seq), tmp_path / "ds")
    ds = load_dataset(report.path)
    assert ds.events["user_id"].tolist() == [7]
    assert ds.users["user_id"].tolist() == [7] and ds.users["features"][0].tolist() == ["1=1"]


TENCENT_CASES = [
    ('[[483, 1001, null, {}, 1, 1746300000', "line", "malformed_row", 0),
    ('{"user": 483}', "line", "malformed_row", 0),
    ('[[483, 1001, null, {}, 1]]', "line", "malformed_row", 0),
    ('[[483, 1001, null, {}, 7, 1746300000], [483, 1002, null, {}, 1, 1746300001]]', "action_type (record[4])", "bad_action", 1),
    ('[[483, 1001, null, {}, null, 1746300000]]', "action_type (record[4])", "missing_field", 0),
    ('[[483, 4242, null, {}, 1, 1746300000]]', "item_id (record[1])", "unknown_ad", 0),
    ('[[483, "-4", null, {}, 1, 1746300000]]', "item_id (record[1])", "bad_id", 0),
    ('[[483, 1001, null, {}, 1, "noon"]]', "timestamp (record[5])", "bad_timestamp", 0),
    ('[[483, 1001, null, {}, 1, true]]', "timestamp (record[5])", "bad_timestamp", 0),
    ('[[482, 1001, null, {}, 1, 1746300050]]', "event", "duplicate", 0),
]


@pytest.mark.parametrize("line_text, field, kind, kept", TENCENT_CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(TENCENT_CASES)])
def test_tencentgr_bad_line(tmp_path, line_text, field, kind, kept):
    d = _copy(TENCENT, tmp_path)
    seq = write(d / "seq.jsonl", (TENCENT / "seq.jsonl").read_text() + line_text + "\n")
    assert_stops(TencentGRSource(seq), tmp_path / "ds", seq, 5, field, kind)
    assert_skips(TencentGRSource(seq), tmp_path / "ds", seq, 5, field, kind, 9 + kept)


@pytest.mark.parametrize("extra, field, kind", [
    ('"1001": {"112": 9}', "item_id (key)", "duplicate"),
    ('"2000": [1, 2]', "item_feat", "bad_value"),
    ('"-5": {}', "item_id (key)", "bad_id"),
])
def test_tencentgr_bad_item_feat(tmp_path, extra, field, kind):
    d = _copy(TENCENT, tmp_path)
    text = (TENCENT / "item_feat_dict.json").read_text().rstrip().removesuffix("}").rstrip() + f",\n  {extra}\n}}\n"
    feats = write(d / "item_feat_dict.json", text)
    assert_stops(TencentGRSource(d / "seq.jsonl"), tmp_path / "ds", feats, 8, field, kind)
    assert_skips(TencentGRSource(d / "seq.jsonl"), tmp_path / "ds", feats, 8, field, kind, 9)


# --- the same input twice gives the same dataset -------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: S3RecSource(S3REC / "Tiny.txt"),
    lambda: RecBoleSource(RECBOLE / "tiny.inter"),
    lambda: TencentGRSource(TENCENT / "seq.jsonl", advertiser_feature="101"),
    lambda: TabularSource(FIXTURES.parent.parent / "data" / "demo" / "events.csv.gz",
                          column_map={"user_id": "user", "ad_id": "item", "timestamp": "ts"}),
], ids=["s3rec", "recbole", "tencentgr", "csv.gz"])
def test_import_twice_gives_the_same_dataset(tmp_path, make):
    a = load_dataset(do_import(make(), tmp_path / "a", "skip").path)
    b = load_dataset(do_import(make(), tmp_path / "b", "skip").path)
    frames_equal(a.events, b.events)
    frames_equal(a.catalogue, b.catalogue)
    assert a.meta == b.meta
    assert (tmp_path / "a" / "events.parquet").read_bytes() == (tmp_path / "b" / "events.parquet").read_bytes()


def test_bundled_demo_data_imports_cleanly(tmp_path):
    demo = FIXTURES.parent.parent / "data" / "demo"
    source = TabularSource(demo / "events.csv.gz", catalogue=demo / "catalogue.csv.gz",
                           column_map={"user_id": "user", "ad_id": "item", "timestamp": "ts"})
    report = do_import(source, tmp_path / "ds")
    assert (report.n_users, report.n_ads, report.n_events) == (3285, 3686, 22743)
    ds = load_dataset(report.path)
    titles = ds.catalogue["title"]
    assert (titles.str.len() > 0).mean() > 0.99  # 27 titles were scraping debris and are left empty
    assert not titles.str.contains('" />', regex=False).any()
    assert not titles.str.contains("&uuml;", regex=False).any()
