"""Key and secret lifecycle through the server's start-up and the CLI: admin key replacement and rotation,
token secret hand-over and rotation, file modes; and the app's JSON 500 and 503 answers."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genads.cli import main
from genads.serve.app import create_app
from genads.serve.limits import Limits
from genads.serve.server import build_app, token_secrets
from genads.serve.tokens import SlotToken, TokenError, TokenSecrets
from tests.serve.conftest import NO_LIMITS, PUBLISHER, copy_bundle, publisher_head


@pytest.fixture
def run_dir(bundle_dir, tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("GENADS_ADMIN_KEY", raising=False)
    monkeypatch.delenv("GENADS_TOKEN_SECRET", raising=False)
    return copy_bundle(bundle_dir, tmp_path / "b")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def admin_of(run_dir: Path) -> dict:
    return {"X-API-Key": (run_dir / "state" / "admin.key").read_text().strip()}


def test_state_files_are_private_and_a_replaced_admin_key_dies(run_dir):
    first = TestClient(build_app(run_dir))
    state = run_dir / "state"
    assert mode(state) == 0o700  # the folder too: nobody else lists what it holds
    assert {p.name: mode(p) for p in state.iterdir()} == \
        {"admin.key": 0o600, "token.secret": 0o600, "served.jsonl": 0o600, "publisher.key": 0o600,
         **{f"ledger.sqlite{x}": 0o600 for x in ("", "-wal", "-shm")}}
    old = admin_of(run_dir)
    assert first.get("/v1/campaigns", headers=old).status_code == 200
    (state / "admin.key").write_text("a-brand-new-admin-key-0123456789\n")  # the operator replaces it ...
    second = TestClient(build_app(run_dir))  # ... and restarts
    assert mode(state / "admin.key") == 0o600  # closed up although written 0644
    for app in (first, second):  # the old key is dead on every server of this ledger
        assert app.get("/v1/campaigns", headers=old).status_code == 401
        assert app.get("/v1/campaigns", headers=admin_of(run_dir)).status_code == 200
    (state / "admin.key").write_text(old["X-API-Key"] + "\n")
    with pytest.raises(ValueError, match="revoked"):  # putting the old key back does not revive it
        build_app(run_dir)


def test_admin_rotation_by_endpoint_rewrites_admin_key(run_dir):
    app = TestClient(build_app(run_dir))
    old = admin_of(run_dir)
    r = app.post("/v1/keys/rotate", headers=old)
    assert r.status_code == 201 and r.json()["advertiser_id"] is None
    assert admin_of(run_dir)["X-API-Key"] == r.json()["api_key"] and mode(run_dir / "state" / "admin.key") == 0o600
    assert app.get("/v1/keys", headers=old).status_code == 401
    assert TestClient(build_app(run_dir)).get("/v1/keys", headers=admin_of(run_dir)).status_code == 200  # restart


def test_cli_lists_issues_revokes_and_rotates(run_dir, capsys):
    app = TestClient(build_app(run_dir))
    assert main(["keys", "issue", str(run_dir), "--advertiser", "2"]) == 0
    issued = json.loads(capsys.readouterr().out)
    adv = {"X-API-Key": issued["api_key"]}
    assert app.get("/v1/campaigns", headers=adv).status_code == 200
    assert main(["keys", "list", str(run_dir), "--advertiser", "2"]) == 0
    assert [json.loads(line)["key_id"] for line in capsys.readouterr().out.splitlines()] == [issued["key_id"]]
    assert main(["keys", "rotate", str(run_dir), issued["key_id"]]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["advertiser_id"] == 2 and app.get("/v1/campaigns", headers=adv).status_code == 401
    adv = {"X-API-Key": rotated["api_key"]}
    assert app.get("/v1/campaigns", headers=adv).status_code == 200
    assert main(["keys", "revoke", str(run_dir), rotated["key_id"]]) == 0
    assert app.get("/v1/campaigns", headers=adv).status_code == 401
    admin_id = app.get("/v1/keys", headers=admin_of(run_dir)).json()[0]["key_id"]
    assert main(["keys", "rotate", str(run_dir), admin_id]) == 2  # admin keys: rotate-admin (it writes the file)
    old = admin_of(run_dir)
    assert main(["keys", "rotate-admin", str(run_dir)]) == 0
    assert app.get("/v1/campaigns", headers=old).status_code == 401  # the running server follows at once
    assert app.get("/v1/campaigns", headers=admin_of(run_dir)).status_code == 200
    assert main(["keys", "revoke", str(run_dir), "0123456789abcdef"]) == 2  # unknown id: an error, not a crash


def test_token_secret_rotation_keeps_old_tokens_until_they_expire(run_dir, capsys):
    app = TestClient(build_app(run_dir, traffic=NO_LIMITS), headers=publisher_head(run_dir))
    slate = app.post("/v1/ads", json={"user_id": 2, "slots": 2}).json()["slate"]
    assert main(["keys", "rotate-secret", str(run_dir)]) == 0
    app.app.state.engine.secrets._checked = 0.0  # the server re-reads the file within a second; now
    app.post("/v1/events", json={"idempotency_key": "seen", "type": "impression", "token": slate[0]["token"]})
    r = app.post("/v1/events", json={"idempotency_key": "before", "type": "click", "token": slate[0]["token"]})
    assert r.status_code == 200  # issued before the rotation: still valid
    fresh = app.post("/v1/ads", json={"user_id": 2, "slots": 1}).json()["slate"][0]["token"]
    secrets = TokenSecrets.load(run_dir / "state" / "token.secret")
    assert secrets.verify(fresh, time.time(), 60) and len(secrets.previous) == 1
    assert main(["keys", "rotate-secret", str(run_dir), "--drop-previous"]) == 0  # a leaked secret
    app.app.state.engine.secrets._checked = 0.0
    r = app.post("/v1/events", json={"idempotency_key": "after", "type": "click", "token": slate[1]["token"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "token"]


def test_a_retired_secret_verifies_only_what_it_signed_before_retiring():
    old = TokenSecrets.generate()
    new = old.rotate(now=1000.0)
    before = old.sign(SlotToken("ab", 1, 1, 5, 10, 999.0))
    late = old.sign(SlotToken("ab", 1, 1, 5, 10, 1005.0))  # a server that had not re-read the file yet
    after = old.sign(SlotToken("ab", 1, 1, 5, 10, 1060.0))  # someone still holding the retired secret
    assert new.verify(before, 1061.0, 3600).price_micros == 5 and new.verify(late, 1061.0, 3600).issued_at == 1005.0
    with pytest.raises(TokenError, match="retired"):
        new.verify(after, 1061.0, 3600)


def test_a_ledger_holding_the_secret_hands_it_to_the_file(tmp_path):
    from genads.serve.ledger import SQLiteLedger

    led = SQLiteLedger(tmp_path / "l.sqlite")
    with led._tx() as cur:  # as every ledger written before secrets moved out
        led._run(cur, "INSERT INTO meta (name, value) VALUES ('token_secret', ?)", ("cd" * 32,))
    out = token_secrets(led, tmp_path / "state")
    assert out.current == bytes.fromhex("cd" * 32) and led.legacy_token_secret() is None
    assert mode(tmp_path / "state" / "token.secret") == 0o600
    assert token_secrets(led, tmp_path / "state").current == out.current  # and keeps using the file


def test_unhandled_errors_are_json_500s(engine, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "serve_batch", broken)
    with TestClient(create_app(engine), headers={"X-API-Key": PUBLISHER}) as client:
        r = client.post("/v1/ads", json={"slots": 1})
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json()["detail"][0]["loc"] == ["server"] and "boom" not in r.text
        assert client.get("/healthz").status_code == 200


def test_a_full_decoding_queue_answers_503_with_retry_after(engine, monkeypatch):
    gate, entered = threading.Event(), threading.Event()
    real = engine.serve_batch

    def slow(*args, **kwargs):
        entered.set()
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "serve_batch", slow)
    with TestClient(create_app(engine, limits=Limits(max_queue=1)), headers={"X-API-Key": PUBLISHER}) as client:
        first: list = []
        t = threading.Thread(target=lambda: first.append(client.post("/v1/ads", json={"slots": 1})))
        t.start()
        assert entered.wait(10)
        busy = client.post("/v1/ads", json={"slots": 1})
        assert client.get("/healthz").status_code == 200  # answered while a slate is being decoded
        gate.set()
        t.join(10)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["detail"][0]["loc"] == ["server", "queue"] and first[0].status_code == 200
