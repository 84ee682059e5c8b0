"""uvicorn's HTTP protocol with the guards ASGI cannot see (``genads serve`` runs it: :func:`guarded_protocol`).

A deadline for each request head and a bound on its size while it arrives, a total lifetime per connection
(``connection_deadline_s``), at most ``max_connections_per_client`` connections per peer address (more are
answered 503 and closed at once), and ``GET /healthz`` answered even when uvicorn's ``max_connections`` bound
turns every other request away with 503; uvicorn itself closes idle keep-alive connections (see
:func:`genads.serve.server.run`). Even the 400 uvicorn sends for bytes that are not HTTP is JSON in the API's
shape. With ``on_healthz``, a plain ``GET /healthz`` (no body) is answered by the protocol itself, in the same
event-loop callback that read its head: it never queues behind the tasks of the requests in flight (ad requests
being parsed, validated and answered), so a probe stays fast while ``/v1/ads`` is saturated
(docs/serving_performance.md). ``on_healthz(request_id, seconds)`` counts and logs it as the app would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from genads.serve.access_log import request_id
from genads.serve.limits import Limits, error_body


class OneWrite:
    """A connection's transport that sends a response head together with the body part written right after it
    (uvicorn writes them separately: two sends and two TCP segments per answer, and two reads for the client). A
    head is held at most until the event loop's next step, when it is sent alone if nothing followed."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop, self._held = transport, loop, None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data[:9] == b"HTTP/1.1 " and data[-4:] == b"\r\n\r\n":  # a head alone: wait for its body
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


HEALTHY = b'{"status":"ok"}'
"""What ``GET /healthz`` answers (the app's route answers the same)."""


def _plain_probe(scope: dict) -> bool:
    """A ``GET /healthz`` without a body."""
    if scope.get("method") != "GET" or scope.get("path") != "/healthz":
        return False
    return not any(name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0"))
                   for name, value in scope.get("headers", ()))


def _canned_answers(limits: Limits) -> tuple[bytes, bytes, bytes]:
    """The whole responses the protocol writes itself: 431 (head too large), 503 (too many connections from one
    address), 400 (unparseable), each a JSON error body and ``connection: close``."""
    def response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
        return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n%scontent-length: %d\r\nconnection: close\r\n"
                b"\r\n%s" % (status, extra, len(body), body))

    too_large = error_body(["header"], f"request head exceeds {limits.max_header_bytes} bytes", "too_large")
    crowded = error_body(["client"], f"more than {limits.max_connections_per_client} connections from this "
                                     "address; retry", "busy")
    malformed = error_body(["request"], "malformed HTTP request", "bad_request")
    return (response(b"431 Request Header Fields Too Large", too_large),
            response(b"503 Service Unavailable", crowded, b"retry-after: 1\r\n"),
            response(b"400 Bad Request", malformed))


class _PeerCount:
    """Open connections by peer address, at most ``cap`` each (the event loop's thread only: no lock)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.open = cap, {}

    def admit(self, host: str) -> bool:
        if self.open.get(host, 0) >= self.cap:
            return False
        self.open[host] = self.open.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        left = self.open.get(host, 1) - 1
        if left > 0:
            self.open[host] = left
        else:
            self.open.pop(host, None)


@dataclass(frozen=True)
class _Guard:
    """What every connection of one server shares: its limits, the canned answers, the per-address counts."""

    limits: Limits
    too_large: bytes
    refuse: bytes
    bad_request: bytes
    peers: _PeerCount
    on_healthz: Callable[[str, float], None] | None


class _Guarded:
    """The guards of :func:`guarded_protocol`, mixed into uvicorn's protocol class (``guard``: its settings)."""

    guard: _Guard
    _timer, _open, _bytes, _peer, _lifetime = None, False, 0, None, None

    def _arm(self) -> None:  # a head is due
        self._disarm()
        self._open, self._bytes = True, 0
        self._timer = self.loop.call_later(self.guard.limits.head_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_done(self) -> None:
        self._open = False
        self._disarm()

    def _expire(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = OneWrite(transport, self.loop)  # what each request's cycle writes its answer to
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        if host is not None:
            if not self.guard.peers.admit(host):
                transport.write(self.guard.refuse)
                transport.close()
                return
            self._peer = host
        self._lifetime = self.loop.call_later(self.guard.limits.connection_deadline_s, self._too_old)
        self._arm()

    def on_headers_complete(self) -> None:  # httptools: /healthz is answered even over max_connections
        healthz = self.url == b"/healthz" or self.url.startswith(b"/healthz?")
        bound = self.limit_concurrency
        if healthz:
            self.limit_concurrency = None
        try:
            self._head_done()
            super().on_headers_complete()
        finally:
            self.limit_concurrency = bound

    def _start_asgi_task(self, cycle, app) -> None:  # httptools: a request (or a pipelined one) starts
        if self.guard.on_healthz is not None and _plain_probe(cycle.scope):
            self._answer_healthz(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def _answer_healthz(self, cycle) -> None:
        """Write the answer now, then finish the cycle as uvicorn's ``send`` does (keep-alive, pipelining)."""
        start = time.perf_counter()
        rid = request_id(cycle.scope.get("headers", []))
        headers = [*self.server_state.default_headers, (b"content-type", b"application/json"),
                   (b"content-length", b"%d" % len(HEALTHY)), (b"x-request-id", rid.encode("ascii"))]
        if not cycle.keep_alive:
            headers.append((b"connection", b"close"))
        self.transport.write(b"HTTP/1.1 200 OK\r\n" + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"
                             + HEALTHY)
        cycle.response_started = cycle.response_complete = True
        cycle.message_event.set()
        self.guard.on_healthz(rid, time.perf_counter() - start)
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()

    def send_400_response(self, msg: str) -> None:  # uvicorn's own answer to what it cannot parse: JSON too
        if not self.transport.is_closing():
            self.transport.write(self.guard.bad_request)
            self.transport.close()

    def _too_old(self) -> None:
        self._lifetime = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._open:
            self._bytes += len(data)
        super().data_received(data)  # a head completed in this read clears _open: its body bytes do not count
        if self._open and self._bytes > self.guard.limits.max_header_bytes and not self.transport.is_closing():
            self._disarm()
            self.transport.write(self.guard.too_large)
            self.transport.close()

    def handle_events(self) -> None:  # h11: a new cycle means a complete head
        cycle = getattr(self, "cycle", None)
        super().handle_events()
        if getattr(self, "cycle", None) is not cycle:
            self._head_done()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing() and not getattr(self, "pipeline", None):
            self._arm()  # unless a pipelined request's head is already in (httptools); h11 parses it next
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._lifetime is not None:
            self._lifetime.cancel()
        if self._peer is not None:
            self.guard.peers.release(self._peer)
            self._peer = None
        super().connection_lost(exc)



def guarded_protocol(limits: Limits, on_healthz: Callable[[str, float], None] | None = None) -> type:
    """uvicorn's HTTP protocol (httptools, the fast C parser, when installed; else h11) with two guards on each
    request head, which uvicorn lacks: it must be complete within ``head_timeout_s`` of the connection opening
    (or of the previous answer), or the connection is closed, however slowly the client trickles bytes; and
    while incomplete it may not grow past ``max_header_bytes`` (JSON 431, then closed), so nothing is buffered
    without bound before the app sees the request."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base
    guard = _Guard(limits, *_canned_answers(limits), _PeerCount(limits.max_connections_per_client), on_healthz)
    return type("GuardedProtocol", (_Guarded, Base), {"guard": guard})
