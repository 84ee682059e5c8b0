"""CSV as users export it: ISO 8601 datetimes as timestamps, and separators other than a comma."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genads.cli import main
from genads.data.dataset import load_dataset
from genads.data.loaders import TabularSource
from genads.data.loaders.tabular import parse_sep
from tests.data.datahelpers import do_import, frames_equal, write

DATED = """user_id,ad_id,timestamp,action
u1,ad-a,2024-05-01T12:00:00Z,click
u1,ad-b,2024-05-01 12:00:01,click
u1,ad-c,2024-05-01T14:00:02+02:00,click
u2,ad-a,2024-05-02,click
u2,ad-b,1714608000,click
u2,ad-c,2024-05-02T00:00:00.999,click
u3,ad-a,2024-13-40,click
"""


def test_iso_datetimes_are_seconds_since_1970_utc_on_both_paths(tmp_path):
    path = write(tmp_path / "events.csv", DATED)
    fast = do_import(TabularSource(path), tmp_path / "fast", "skip")
    general = do_import(TabularSource(path), tmp_path / "general", "skip", fast=False)
    a, b = load_dataset(fast.path), load_dataset(general.path)
    frames_equal(a.events, b.events)
    assert (fast.engine, general.engine) == ("fast", "general")
    pairs = zip(a.vocab.labels("user", a.events["user_id"]), a.vocab.labels("ad", a.events["ad_id"]), strict=True)
    stamps = dict(zip(pairs, a.events["timestamp"].tolist(), strict=True))
    noon = int(pd.Timestamp("2024-05-01T12:00:00Z").timestamp())
    assert stamps[("u1", "ad-a")] == noon and stamps[("u1", "ad-b")] == noon + 1  # naive = UTC
    assert stamps[("u1", "ad-c")] == noon + 2  # 14:00:02 at +02:00
    day = int(pd.Timestamp("2024-05-02T00:00:00Z").timestamp())
    assert stamps[("u2", "ad-a")] == day == 1714608000 == stamps[("u2", "ad-b")] == stamps[("u2", "ad-c")]  # floor
    assert fast.issues.counts == {"bad_timestamp": 1} == general.issues.counts  # month 13 is not a date


def test_parquet_timestamp_column(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 1], "ad_id": [2, 3], "action": ["click", "click"],
                          "timestamp": pd.to_datetime(["2024-05-01T12:00:00.7", "2024-05-01T12:00:01"], utc=True,
                                                        format="ISO8601")})
    frame.to_parquet(tmp_path / "events.parquet")
    report = do_import(TabularSource(tmp_path / "events.parquet"), tmp_path / "ds")
    noon = int(pd.Timestamp("2024-05-01T12:00:00Z").timestamp())
    assert load_dataset(report.path).events["timestamp"].tolist() == [noon, noon + 1]


@pytest.mark.parametrize("sep,name", [(";", "events.csv"), ("|", "events.txt"), ("\t", "events.csv")])
def test_separators_are_inferred_from_the_header(tmp_path, sep, name):
    text = "user_id,ad_id,timestamp,action\nu1,a1,1,click\nu1,a2,2,click\nu2,a1,3,click\n".replace(",", sep)
    fast = do_import(TabularSource(write(tmp_path / name, text)), tmp_path / "fast")
    general = do_import(TabularSource(write(tmp_path / name, text)), tmp_path / "general", fast=False)
    frames_equal(load_dataset(fast.path).events, load_dataset(general.path).events)
    assert fast.n_events == 3 and fast.n_users == 2


def test_sep_flag_overrides_the_inference_and_names_its_choices(tmp_path, capsys):
    # a header whose last name holds more commas than the file has semicolons: inference picks the comma
    text = "user_id;ad_id;timestamp;note, free, text, here, more\nu1;a1;1;x\nu1;a2;2;y\n"
    path = write(tmp_path / "events.csv", text)
    assert main(["data", "import", str(path), "--format", "csv", "--out", str(tmp_path / "guess"), "--quiet"]) == 2
    assert "header has no column" in capsys.readouterr().err
    assert main(["data", "import", str(path), "--format", "csv", "--sep", ";", "--out", str(tmp_path / "ds"),
                 "--quiet"]) == 0
    assert np.array_equal(load_dataset(tmp_path / "ds").events["timestamp"].to_numpy(), [1, 2])
    assert parse_sep("tab") == "\t" and parse_sep(None) is None
    with pytest.raises(ValueError, match="choose one of"):
        parse_sep(":")


PADDED = """user_id,ad_id,timestamp,action
0042,007,1,click
42,7,2,click
00123,007,3,click
+123,7,4,click
123,+7,5,click
"""


def test_zero_padded_and_signed_ids_are_kept_as_written_not_merged(tmp_path):
    """0042/42 and 00123/+123/123 were silently one id each (issue 27): now each is the id the user wrote."""
    path = write(tmp_path / "events.csv", PADDED)
    fast = do_import(TabularSource(path), tmp_path / "fast")
    general = do_import(TabularSource(path), tmp_path / "general", fast=False)
    a, b = load_dataset(fast.path), load_dataset(general.path)
    frames_equal(a.events, b.events)
    assert a.vocab.to_frame().equals(b.vocab.to_frame())
    assert fast.n_users == 5 and len(a.catalogue) == 3
    users = sorted(map(str, a.vocab.labels("user", a.events["user_id"].unique())))
    assert users == sorted(["+123", "0042", "00123", "123", "42"])
    assert a.vocab.index_of("user", "42") == 42 == a.vocab.index_of("user", 42)  # the integer id
    assert a.vocab.index_of("user", "0042") not in (None, 42)  # its own string id
    assert a.vocab.label("user", a.vocab.index_of("user", "+123")) == "+123"


def test_integer_only_mode_still_reads_padded_integers(tmp_path):
    report = do_import(TabularSource(write(tmp_path / "events.csv", PADDED)), tmp_path / "ds", string_ids=False)
    ds = load_dataset(report.path)
    assert sorted(ds.events["user_id"].unique().tolist()) == [42, 123]  # --integer-ids: numbers, as before
