"""genads export on a parallel-family run with a payment network; the served-log loader's errors."""

from __future__ import annotations

import json

import pytest

from genads.cli import main
from genads.data.loaders import ServedLogSource
from genads.data.validate import ImportValidationError
from genads.serve.bundle import load_bundle
from tests.data.datahelpers import do_import, rejected, write
from tests.serve.conftest import publisher_head


def genads(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


def test_export_parallel_run_with_payment_net(tmp_path):
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    genads("data", "example", "--out", tmp_path / "csv", "--users", "80")
    genads("data", "import", tmp_path / "csv/events.csv", "--format", "csv", "--items", tmp_path / "csv/catalogue.csv",
           "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
           "--action-map", "purchase=conversion", "--out", tmp_path / "data", "--quiet")
    genads("train", tmp_path / "data", "--family", "parallel", "--sources", "attributes,collab", "--out",
           tmp_path / "run", "--epochs", "1", "--quiet")
    genads("auction", "train-payments", "--out", tmp_path / "pay", "--iterations", "5", "--samples", "64",
           "--restarts", "1", "--steps", "1")
    genads("export", tmp_path / "run", "--out", tmp_path / "bundle", "--payment", tmp_path / "pay")
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.family == "parallel" and bundle.payment_net is not None and bundle.reward is None
    assert len(bundle.ads) == 48 and bundle.vocab.size("ad") == 48
    with TestClient(build_app(tmp_path / "bundle", served_log=None), headers=publisher_head(tmp_path / "bundle")) as client:
        r = client.post("/v1/ads", json={"user_id": "u0001", "slots": 2})
        assert r.status_code == 200 and [s["ad"][:3] for s in r.json()["slate"]] == ["ad-", "ad-"]
    assert not (tmp_path / "bundle/state/served.jsonl").exists()  # --no-served-log


def test_export_names_a_missing_payment_folder(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")]) == 2
    assert "config.json not found" in capsys.readouterr().err


def _log(tmp_path, records: list) -> object:
    return write(tmp_path / "served.jsonl", "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


SLATE = {"type": "slate", "ts": 1.7e9, "request_id": "r1", "user_id": "u1", "model_version": "m", "mechanism": "gsp",
         "ads": ["ad-a", "ad-b"], "ad_index": [1, 2], "positions": [1, 2], "prices": [0.1, 0.05], "history": False}


def test_served_log_bad_lines_are_named(tmp_path):
    event = {"type": "event", "ts": 1.7e9 + 5, "request_id": "r1", "event": "click", "ad_id": "ad-b"}
    orphan = {**event, "request_id": "r9"}
    log = _log(tmp_path, [SLATE, event, "{not json", orphan, {**SLATE, "request_id": "r2", "user_id": None},
                          {**event, "request_id": "r2"}])
    with pytest.raises(ImportValidationError, match=r"served\.jsonl:3: field 'line': malformed_row"):
        do_import(ServedLogSource(log), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    report = do_import(ServedLogSource(log), tmp_path / "ds", on_error="skip")
    assert report.n_events == 1
    assert [(r["line"], r["field"], r["kind"]) for r in rejected(tmp_path / "ds")] == [(3, "line", "malformed_row")]
    assert report.meta["source"]["events_without_user"] == 1
    assert report.meta["source"]["events_without_slate"] == 1  # a rotated log's events: counted, not errors
    assert report.meta["source"]["positions"] == {"2": {"click": 1}}


def test_a_served_log_with_bad_lines_a_rotated_start_and_invalid_traffic_imports_by_default(tmp_path, capsys):
    """`genads data import --format served-log` with no --on-error: bad lines, poisoned ids from older servers,
    events of slates rotated away, invalid events and refunded clicks are counted, never a stop."""
    click = {"type": "event", "ts": 1.7e9 + 5, "event": "click"}
    log = _log(tmp_path, [
        {**click, "request_id": "gone", "ad_id": "ad-a"},  # rotated: its slate is in the previous file
        SLATE, {**click, "request_id": "r1", "ad_id": "ad-a", "event": "impression"},
        {**click, "request_id": "r1", "ad_id": "ad-a"},
        "{half a line", "[1, 2]", {"type": "mystery"},
        {**SLATE, "request_id": "r2", "user_id": "\u00a0"}, {**click, "request_id": "r2", "ad_id": "ad-a"},
        {**SLATE, "request_id": "r3", "user_id": 2**62}, {**click, "request_id": "r3", "ad_id": "ad-a"},
        {**SLATE, "request_id": "r4", "user_id": "u4"}, {**click, "request_id": "r4", "ad_id": "ad-a", "invalid": "fast_click"},
        {**click, "request_id": "r4", "ad_id": "ad-b"},
        {"type": "refund", "ts": 1.7e9 + 9, "request_id": "r4", "ad_id": "ad-b", "amount": 0.05, "reason": "client_clicks"}])
    assert main(["data", "import", str(log), "--format", "served-log", "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())["source"]
    assert (meta["events_without_slate"], meta["invalid_events"], meta["refunded_clicks"], meta["refunds"]) == (1, 1, 1, 1)
    bad = [(r["line"], r["kind"]) for r in rejected(tmp_path / "ds")]
    assert [line for line, _ in bad] == [5, 6, 7, 9, 11]  # 3 malformed lines, 2 poisoned user ids
    from genads.data.dataset import load_dataset

    ds = load_dataset(tmp_path / "ds")
    assert ds.vocab.labels("user", ds.events["user_id"]) == ["u1", "u1"]  # the impression and the click of r1


def test_workers_need_postgresql(bundle_dir, capsys):
    assert main(["serve", str(bundle_dir), "--workers", "2"]) == 2
    assert "needs --ledger postgresql://" in capsys.readouterr().err
