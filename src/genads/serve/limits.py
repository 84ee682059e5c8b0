"""What the service accepts from a connection: body and header sizes, body read time, strict JSON, JSON 500s.

:class:`LimitsMiddleware` (plain ASGI) refuses a body whose ``Content-Length`` is over the limit
with 413 before reading a byte of it, counts the bytes of a body without one (chunked) and
stops at the limit with 413, answers 408 when the body stalls longer than ``body_timeout_s``
between chunks or is not complete ``body_deadline_s`` after its first read (a byte every few seconds
resets no timer: a slow drip ends at the deadline), 431 for oversized headers, and turns any unhandled error into a JSON 500 (the
connection stays usable). :class:`StrictJSONRoute` parses bodies refusing duplicate keys (422
naming the key). Every error body has the API's shape ``{"detail": [{"loc", "msg", "type"}]}``.

Under uvicorn (``genads serve``) :func:`genads.serve.protocol.guarded_protocol` adds what ASGI cannot see: head
deadlines and sizes, connection lifetimes and per-address counts, and ``GET /healthz`` answered by the protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

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
