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
    assert [(r["line"], r["field"], r["kind"]) for r in rejected(tmp_path / "ds")] == [
        (3, "line", "malformed_row"), (4, "request_id", "bad_value")]
    assert report.meta["source"]["events_without_user"] == 1
    assert report.meta["source"]["positions"] == {"2": {"click": 1}}


def test_workers_need_postgresql(bundle_dir, capsys):
    assert main(["serve", str(bundle_dir), "--workers", "2"]) == 2
    assert "needs --ledger postgresql://" in capsys.readouterr().err
