"""``genads data import|info`` through the command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

import pytest

from genads.commands import data as data_command
from genads.data.dataset import load_dataset
from tests.data.datahelpers import CATALOGUE_CSV, EVENTS_CSV, FIXTURES, rejected, write


def _cli():
    """genads.cli.main when every command module imports; else the same dispatch over the data command only."""
    try:
        from genads import cli

        for name in cli.command_modules():
            importlib.import_module(name)
        return cli.main
    except ImportError:  # another part's command module is not there yet
        def main(argv):
            parser = argparse.ArgumentParser(prog="genads")
            data_command.register(parser.add_subparsers(dest="command", required=True))
            args = parser.parse_args(argv)
            try:
                return int(args.func(args) or 0)
            except (ValueError, FileNotFoundError) as e:
                print(f"genads {args.command}: error: {e}", file=sys.stderr)
                return 2
        return main


def test_import_and_info_csv(tmp_path, capsys):
    events = write(tmp_path / "log.csv", EVENTS_CSV.replace("user_id,ad_id,timestamp", "uid,item,ts"))
    cat = write(tmp_path / "items.csv", CATALOGUE_CSV.replace("ad_id,title", "id,name"))
    out = tmp_path / "ds"
    rc = _cli()(["data", "import", str(events), "--format", "csv", "--out", str(out), "--quiet",
                 "--items", str(cat), "--map", "user_id=uid,ad_id=item,timestamp=ts", "--items-map", "ad_id=id,title=name",
                 "--seed", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "4 ads, 3 users, 7 events" in printed and "no malformed rows" in printed
    ds = load_dataset(out)
    assert ds.catalogue["title"].tolist()[:2] == ["Red kettle", "Blue kettle"]
    assert ds.meta["market"]["bid"]["seed"] == 3
    assert _cli()(["data", "info", str(out), "--max-history", "5"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["meta"]["n_events"] == 7 and info["split"]["users"] == 3


def test_import_stop_and_skip(tmp_path, capsys):
    events = write(tmp_path / "e.csv", EVENTS_CSV + "4,1,100,like\n")
    out = tmp_path / "ds"
    rc = _cli()(["data", "import", str(events), "--format", "csv", "--out", str(out), "--quiet"])
    assert rc == 2
    err = capsys.readouterr()
    assert f"{events}:9: field 'action': bad_action" in err.out + err.err
    assert not out.exists()
    rc = _cli()(["data", "import", str(events), "--format", "csv", "--out", str(out), "--quiet", "--on-error", "skip"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skipped 1 malformed rows (bad_action=1)" in printed and "rejected.jsonl" in printed
    assert rejected(out)[0]["line"] == 9


@pytest.mark.parametrize("argv, n_events", [
    (["tencentgr/seq.jsonl", "--format", "tencentgr", "--advertiser-feature", "101"], 9),
    (["s3rec/Tiny.txt", "--format", "s3rec"], 14),
    (["recbole/tiny.inter", "--format", "recbole"], 7),
])
def test_import_each_format(tmp_path, capsys, argv, n_events):
    out = tmp_path / "ds"
    assert _cli()(["data", "import", str(FIXTURES / argv[0]), *argv[1:], "--out", str(out), "--quiet"]) == 0
    assert load_dataset(out).meta["n_events"] == n_events


def test_refusing_a_non_dataset_folder_is_a_clean_error(tmp_path, capsys):
    write(tmp_path / "home" / "notes.txt", "keep")
    events = write(tmp_path / "e.csv", EVENTS_CSV)
    rc = _cli()(["data", "import", str(events), "--format", "csv", "--out", str(tmp_path / "home"), "--quiet"])
    assert rc == 2
    assert "not a genads dataset" in capsys.readouterr().err + ""
    assert (tmp_path / "home" / "notes.txt").exists()


def test_info_on_a_missing_dataset(tmp_path, capsys):
    assert _cli()(["data", "info", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
