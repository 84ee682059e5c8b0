"""What the service accepts from a connection: body and header sizes, body read time, strict JSON, JSON 500s.

:class:`LimitsMiddleware` (plain ASGI) refuses a body whose ``Content-Length`` is over the limit
with 413 before reading a byte of it, counts the bytes of a body without one (chunked) and
stops at the limit with 413, answers 408 when the body stalls longer than ``body_timeout_s``
between chunks or is not complete ``body_deadline_s`` after its first read (a byte every few seconds
resets no timer: a slow drip ends at the deadline), 431 for oversized headers, and turns any unhandled error into a JSON 500 (the
connection stays usable). :class:`StrictJSONRoute` parses bodies refusing duplicate keys (422
naming the key). Every error body has the API's shape ``{"detail": [{"loc", "msg", "type"}]}``.

Under uvicorn (``genads serve``) :func:`guarded_protocol` adds what ASGI cannot see: a deadline for
each request head and a bound on its size while it arrives, a total lifetime per connection
(``connection_deadline_s``), at most ``max_connections_per_client`` connections per peer address
(more are answered 503 and closed at once), and ``GET /healthz`` answered even when uvicorn's
``max_connections`` bound turns every other request away with 503; uvicorn itself closes idle
keep-alive connections (see :func:`genads.serve.server.run`). Even the 400 uvicorn sends for bytes
that are not HTTP is JSON in the API's shape. With ``on_healthz``, a plain ``GET /healthz`` (no body) is answered by
the protocol itself, in the same event-loop callback that read its head: it never queues behind the tasks of the
requests in flight (ad requests being parsed, validated and answered), which is what kept its p99 near 10 ms while
``/v1/ads`` was saturated (issue 29). ``on_healthz(request_id, seconds)`` counts and logs it as the app would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from genads.serve.access_log import request_id

log = logging.getLogger("genads.serve")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    """Request bodies over this get 413 (the largest legal one, a campaign with 10,000 ads, is ~200 KB)."""
    max_header_bytes: int = 16 << 10
    """Request headers (names + values) over this get 431."""
    body_timeout_s: float = 10.0
    """A body that sends nothing for this long gets 408."""
    body_deadline_s: float = 30.0
    """A body not complete this long after the app first reads it gets 408, however it trickles."""
    head_timeout_s: float = 10.0
    """uvicorn: a connection that has not sent a complete request line and headers this long after connecting
    (or after its previous answer) is closed, however slowly it trickles bytes."""
    max_queue: int = 64
    """POST /v1/ads requests decoding or waiting to: more get 503 with Retry-After."""
    max_batch: int = 16
    """POST /v1/ads requests decoded together at most (one batched forward, then an auction each). Half of 32
    clients: one batch decodes (torch without the GIL) while the event loop answers the one before."""
    batch_wait_ms: float = 2.0
    """How long a batch's first ad request may wait for others that have arrived and are still being read (a
    lone request does not wait: nothing else is on its way)."""
    keep_alive_s: int = 5
    """uvicorn: an idle keep-alive connection is closed after this."""
    max_connections: int = 1024
    """uvicorn: connections + requests in flight beyond this get 503 (``GET /healthz`` is still answered)."""
    max_connections_per_client: int = 128
    """uvicorn: open connections per peer address; more are answered 503 and closed (behind a reverse proxy
    every client is the proxy: raise it, or let the proxy enforce it)."""
    connection_deadline_s: float = 300.0
    """uvicorn: a connection is closed this long after it opened, whatever it is doing (clients reconnect)."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_header_bytes", "max_queue", "max_batch", "keep_alive_s", "max_connections",
                     "max_connections_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms={self.batch_wait_ms} must be >= 0")
        for name in ("body_timeout_s", "head_timeout_s", "body_deadline_s", "connection_deadline_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")


def error_body(loc: list, msg: str, kind: str = "value_error") -> bytes:
    return json.dumps({"detail": [{"loc": loc, "msg": msg, "type": kind}]}).encode()


async def send_json(send, status: int, body: bytes, headers: tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    def __init__(self, app, limits: Limits) -> None:
        self.app, self.limits = app, limits

    def _refusal(self, scope) -> tuple[int, bytes] | None:
        lim = self.limits
        headers = scope.get("headers", [])
        if sum(len(k) + len(v) for k, v in headers) > lim.max_header_bytes:
            return 431, error_body(["header"], f"request headers exceed {lim.max_header_bytes} bytes", "too_large")
        lengths = [v for k, v in headers if k == b"content-length"]
        if lengths:
            if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
                return 400, error_body(["header", "Content-Length"], "must be one non-negative integer")
            if int(lengths[0]) > lim.max_body_bytes:
                return 413, error_body(["body"], f"body of {int(lengths[0])} bytes exceeds the limit of "
                                                 f"{lim.max_body_bytes}", "too_large")
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refusal(scope)
        if refused is not None:  # before reading a byte of the body; uvicorn closes the connection after
            await send_json(send, *refused, headers=((b"connection", b"close"),))
            return
        lim, received, started, deadline = self.limits, 0, False, None

        async def limited_receive() -> dict:
            nonlocal received, deadline
            now = asyncio.get_running_loop().time()
            deadline = deadline or now + lim.body_deadline_s
            try:
                async with asyncio.timeout_at(min(now + lim.body_timeout_s, deadline)):  # no task per call
                    message = await receive()
            except TimeoutError:
                late = asyncio.get_running_loop().time() >= deadline
                msg = (f"body not complete within {lim.body_deadline_s:g} s" if late
                       else f"no body data for {lim.body_timeout_s:g} s")
                raise HTTPException(408, detail=[{"loc": ["body"], "msg": msg, "type": "timeout"}],
                                    headers={"Connection": "close"}) from None  # the rest of the body is not read
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > lim.max_body_bytes:
                    raise HTTPException(413, detail=[{"loc": ["body"], "msg": f"body exceeds the limit of "
                                                                              f"{lim.max_body_bytes} bytes",
                                                      "type": "too_large"}])
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, error_body(["server"], "internal error (logged)", "server_error"))


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


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k)).encode("utf-8", "backslashreplace").decode("utf-8")
        raise HTTPException(422, detail=[{"loc": ["body", dup], "msg": f"duplicate key {dup!r}",
                                          "type": "duplicate_key"}])
    return out


class StrictJSONRequest(Request):
    async def json(self) -> object:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_no_duplicates)
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body may not repeat a key (``{"bid": 1, "bid": 1000}`` is refused, not resolved)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return route
