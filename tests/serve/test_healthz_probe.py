"""GET /healthz answered by the HTTP protocol itself under `genads serve` (issue 29: it must not queue behind the
ad requests in flight): the same answer as the app's route, keep-alive and pipelining intact, X-Request-ID, counted
in /metrics; a /healthz with a body goes to the app."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from genads.serve.server import spawn
from tests.serve.conftest import ADMIN, copy_bundle
from tests.serve.test_load import free_port


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    bundle = copy_bundle(bundle_dir, tmp_path_factory.mktemp("probe") / "b")
    port = free_port()
    proc = spawn(bundle, port, "--log-level", "warning", "--open-traffic", "--no-traffic-limits",
                 env={"GENADS_ADMIN_KEY": ADMIN, "OMP_NUM_THREADS": "1"})
    yield port
    proc.kill()
    proc.wait()


def _answers(sock: socket.socket, n: int) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Read ``n`` complete HTTP answers (status, lower-cased headers, body) from ``sock``."""
    data, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(out)} answers"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = dict((k.strip().lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines[1:]))
        size = int(headers[b"content-length"])
        while len(data) < size:
            data += sock.recv(65536)
        out.append((int(lines[0].split()[1]), headers, data[:size]))
        data = data[size:]
    return out


def test_pipelined_probes_and_requests_are_answered_in_order_on_one_connection(server):
    body = b'{"slots": 2}'
    ads = b"POST /v1/ads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: probe-%d\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(probe % 1 + ads + probe % 2 + probe % 3)
        got = _answers(s, 4)
        s.sendall(probe % 4)  # the connection stays open after them
        got += _answers(s, 1)
    assert [status for status, _, _ in got] == [200] * 5
    assert [json.loads(b) == {"status": "ok"} for _, _, b in got] == [True, False, True, True, True]
    assert len(json.loads(got[1][2])["slate"]) == 2
    assert [h[b"x-request-id"] for i, (_, h, _) in enumerate(got) if i != 1] == [b"probe-1", b"probe-2", b"probe-3",
                                                                                 b"probe-4"]
    assert all(h[b"content-type"] == b"application/json" for _, h, _ in got)


def test_a_closing_probe_closes_and_a_probe_with_a_body_goes_to_the_app(server):
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        (status, headers, body), = _answers(s, 1)
        assert (status, body, headers[b"connection"]) == (200, b'{"status":"ok"}', b"close")
        assert s.recv(1024) == b""  # closed
    with socket.create_connection(("127.0.0.1", server), timeout=20) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        (status, headers, body), = _answers(s, 1)
        assert (status, json.loads(body)) == (200, {"status": "ok"}) and len(headers[b"x-request-id"]) == 32


def test_probes_answered_by_the_protocol_are_counted(server):
    url = f"http://127.0.0.1:{server}"

    def count() -> float:
        text = httpx.get(f"{url}/metrics", headers={"X-API-Key": ADMIN}, timeout=10).text
        line = next((x for x in text.splitlines()
                     if x.startswith('genads_http_requests_total{route="/healthz",status="200"}')), None)
        return 0.0 if line is None else float(line.rsplit(" ", 1)[1])

    before = count()
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(7):
            assert c.get("/healthz").json() == {"status": "ok"}
    assert count() - before == 7


def test_a_response_head_is_sent_with_its_body_in_one_write():
    import asyncio

    from genads.serve.protocol import OneWrite

    class Transport:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name: str) -> str:
            return f"info:{name}"

    async def main() -> list[list[bytes]]:
        t = Transport()
        w = OneWrite(t, asyncio.get_running_loop())
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        held = list(t.writes)
        w.write(b"{}")  # the body: one write with its head
        together = list(t.writes)
        w.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # a head nothing follows: sent at the loop's next step
        await asyncio.sleep(0)
        alone = list(t.writes)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        w.close()  # closing sends what is held first
        assert t.closed and w.get_extra_info("peername") == "info:peername"
        return [held, together, alone, t.writes]

    held, together, alone, final = asyncio.run(main())
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
    assert held == [] and together == [head + b"{}"]
    assert alone == [head + b"{}", b"HTTP/1.1 204 No Content\r\n\r\n"] and final == [*alone, head]
