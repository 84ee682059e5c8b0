"""The slow drip of issue 31 against a real `genads serve` (small limits, a few seconds): connections that send
one body byte at a time hold nothing past --body-deadline, one address holds at most
--max-connections-per-client connections, and GET /healthz is answered while every other route is full."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from genads.serve.server import spawn
from tests.serve.conftest import ADMIN, copy_bundle
from tests.serve.test_load import free_port

HEAD = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"


def drip_from(address: str, port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(address, 0))
        s.sendall(HEAD)
        out.append(s)
    return out


def status_of(s: socket.socket, timeout: float) -> int | None:
    """The status the server answered on this connection (None: nothing within ``timeout``, or reset)."""
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
    except (TimeoutError, OSError):
        return None
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def trickle(socks: list[socket.socket], seconds: float, answers: dict) -> None:
    """One byte per connection every 0.25 s (each within --body-timeout: no stall for the old timer to see), until
    the server answers it: ``answers[socket]`` = the status (read before the next byte, which a closed socket
    would answer with a reset that drops the answer)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([s for s in socks if s not in answers], [], [], 0)
        for s in ready:
            answers[s] = status_of(s, 0.1)
        for s in socks:
            if s not in answers:
                try:
                    s.sendall(b" ")
                except OSError:
                    answers[s] = None
        time.sleep(0.25)


@pytest.fixture
def server(bundle_dir, tmp_path):
    bundle = copy_bundle(bundle_dir, tmp_path / "b")
    port = free_port()
    proc = spawn(bundle, port, "--log-level", "critical", "--body-timeout", "2", "--body-deadline", "4",
                 "--max-connections", "30", "--max-connections-per-client", "20",
                 env={"GENADS_ADMIN_KEY": ADMIN, "OMP_NUM_THREADS": "1"})
    yield port
    proc.kill()
    proc.wait()


def test_a_slow_drip_is_cut_at_the_deadline_capped_per_address_and_healthz_answers(server):
    port = server
    crowd = drip_from("127.0.0.2", port, 30)  # 20 allowed from one address, 10 answered 503 at once
    refused, end = [], time.monotonic() + 1.5  # refused at once; the others wait for their bodies (--body-timeout 2)
    while len(refused) < 10 and time.monotonic() < end:
        ready, _, _ = select.select([s for s in crowd if s not in refused], [], [], 0.1)
        refused += [s for s in ready if status_of(s, 0.1) == 503]
    assert len(refused) == 10
    held = [s for s in crowd if s not in refused] + drip_from("127.0.0.3", port, 20)  # 40 > --max-connections 30
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        answers: dict = {}
        trickle(held, 1.0, answers)
        full = http.get("/readyz")
        assert full.status_code == 503  # every other route is full ...
        health = [http.get("/healthz") for _ in range(20)]
        assert all(r.status_code == 200 and r.json() == {"status": "ok"} for r in health)  # ... but not /healthz
        trickle(held, 4.5, answers)  # past --body-deadline: the trickle kept every per-chunk timer alive
        assert len(answers) == len(held) and list(answers.values()).count(408) >= 20, answers
        assert set(answers.values()) <= {408, 503}, answers
        assert http.get("/readyz").status_code == 200  # the service is free again
    for s in crowd + held:
        s.close()


def test_bytes_that_are_not_http_get_a_json_400(server):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        data = s.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["detail"][0]["loc"] == ["request"]
