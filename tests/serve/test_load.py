"""A real server process on loopback: 64 concurrent clients charging one campaign, and kill -9 under load."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from genads.serve.ledger import MICROS, open_ledger
from genads.serve.server import spawn
from genads.serve.tokens import SlotToken, TokenSecrets, sign
from tests.serve.conftest import ADMIN, copy_bundle, pg_dsn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bundle: Path, ledger_url: str) -> None:
        self.bundle, self.ledger_url, self.port = bundle, ledger_url, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        # money under concurrency and kill -9, not traffic rules: open, unlimited (tests/serve/test_traffic.py)
        self.proc = spawn(self.bundle, self.port, "--ledger", self.ledger_url, "--log-level", "warning",
                          "--open-traffic", "--no-traffic-limits", env={"GENADS_ADMIN_KEY": ADMIN, "OMP_NUM_THREADS": "1"})
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    from genads.serve.ledger_pg import PostgresLedger

    dsn = pg_dsn()
    PostgresLedger(dsn).drop_all()
    yield dsn
    PostgresLedger(dsn).drop_all()


def new_campaign(url: str, budget: float) -> int:
    camps = httpx.get(f"{url}/v1/campaigns", headers={"X-API-Key": ADMIN}).json()
    c = camps[0]
    r = httpx.post(f"{url}/v1/campaigns", headers={"X-API-Key": ADMIN},
                   json={"name": "load", "ad_ids": c["ad_ids"][:1], "bid": 1.0, "budget": budget,
                         "advertiser_id": c["advertiser_id"]})
    assert r.status_code == 201, r.text
    return r.json()["campaign_id"], c["ad_ids"][0]


def fire(url: str, tokens: list[tuple[str, str]], accepted: dict, sent: set, lock: threading.Lock) -> None:
    """POST each slot's impression, then its click (key, token), in order; record what the server answered to
    the clicks, by (request id, key)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for key, token in tokens:
            with lock:
                sent.add((key, token))
            try:
                client.post("/v1/events", json={"idempotency_key": f"{key}-imp", "type": "impression", "token": token})
                r = client.post("/v1/events", json={"idempotency_key": key, "type": "click", "token": token})
            except httpx.HTTPError:
                return  # the server died
            if r.status_code == 200:
                with lock:
                    accepted[(request_of(key), key)] = round(r.json()["charged"] * MICROS)


def secret_of(server: Server) -> bytes:
    """The token secret the server signs with (its state/token.secret, mode 0600)."""
    return TokenSecrets.load(server.bundle / "state" / "token.secret").current


def request_of(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def clicks(secret: bytes, campaign: int, ad: int, prefix: str, n: int) -> list[tuple[str, str]]:
    """n clicks on n different slots (each its own request id) of a campaign bidding 1.0."""
    return [(f"{prefix}-{i}", sign(SlotToken(request_of(f"{prefix}-{i}"), ad, campaign, 300_000 + 1_000 * (i % 7),
                                             1_000_000, time.time()), secret))
            for i in range(n)]


def test_64_clients_charge_one_campaign_exactly(bundle_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    server = Server(copy_bundle(bundle_dir, tmp_path / "b"), url).start()
    try:
        campaign, ad = new_campaign(server.url, budget=40.0)
        secret = secret_of(server)
        accepted, sent, lock = {}, set(), threading.Lock()
        threads = [threading.Thread(target=fire, args=(server.url, clicks(secret, campaign, ad, f"c{t}", 4), accepted, sent, lock))
                   for t in range(64)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        state = httpx.get(f"{server.url}/v1/campaigns/{campaign}", headers={"X-API-Key": ADMIN}).json()
    finally:
        server.kill()
    assert len(accepted) == 256  # every event answered
    spent, charged, n = open_ledger(url).totals(campaign)
    assert spent == charged == sum(accepted.values()) == 40 * MICROS  # ~77 s of clicks on a 40 budget: capped exactly
    assert n == 2 * 256 and round(state["spent"] * MICROS) == spent and not state["serving"]  # impressions + clicks


def test_kill_9_under_load_then_restart(bundle_dir, tmp_path, ledger_url):
    bundle = copy_bundle(bundle_dir, tmp_path / "b")
    server = Server(bundle, ledger_url).start()
    campaign, ad = new_campaign(server.url, budget=1000.0)
    secret = secret_of(server)
    accepted, sent, lock = {}, set(), threading.Lock()
    batches = [clicks(secret, campaign, ad, f"k{t}", 200) for t in range(16)]
    threads = [threading.Thread(target=fire, args=(server.url, b, accepted, sent, lock)) for b in batches]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while len(accepted) < 100 and time.monotonic() < deadline:  # under load
        time.sleep(0.01)
    server.kill()
    for th in threads:
        th.join()
    assert 100 <= len(accepted) < len(sent) <= 3200
    ledger = open_ledger(ledger_url)
    stored = ledger.event_charges()
    assert all(stored.get(k) == c for k, c in accepted.items())  # nothing accepted is lost or changed
    spent, charged, n = ledger.totals(campaign)
    assert spent == charged == sum(stored.values()) and n == len(stored)  # nothing charged without its event, nor twice
    server = Server(bundle, ledger_url).start()  # restart; the clients retry everything they sent
    try:
        replay: dict[str, int] = {}
        todo = sorted(sent)
        retry = [threading.Thread(target=fire, args=(server.url, todo[i::16], replay, set(), lock)) for i in range(16)]
        for th in retry:
            th.start()
        for th in retry:
            th.join()
    finally:
        server.kill()
    assert all(replay[k] == c for k, c in accepted.items())  # replays answered from the ledger
    spent2, charged2, n2 = open_ledger(ledger_url).totals(campaign)
    assert spent2 == charged2 == sum(replay.values()) and n2 == 2 * len(sent) and spent2 <= 1000 * MICROS
