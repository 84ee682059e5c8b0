"""The API's error bodies: every error (5xx too) is ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``, the
``loc`` naming the offending field, as FastAPI's own validation errors do; :class:`MetricsMiddleware` counts
every answer, refusals included."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve.ledger import LedgerError
from genads.serve.metrics import Metrics


def _safe(x: object) -> object:
    """Text that encodes as UTF-8 (lone surrogates escaped); other values unchanged."""
    return x.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(x, str) else x


def _message(e: dict) -> str:
    """The error's message; an unparsable body says what and where (its loc is ["body", character offset])."""
    if e.get("type") == "json_invalid" and isinstance(e.get("ctx"), dict):
        return f"invalid JSON at character {e['loc'][-1]}: {e['ctx'].get('error', '')}"
    return str(e.get("msg", ""))


async def ledger_error(request: Request, err: LedgerError) -> JSONResponse:
    where = {"X-API-Key": "header", "key_id": "path", "campaign_id": "path"}.get(err.field, "body")
    return JSONResponse({"detail": [{"loc": [where, err.field], "msg": err.message, "type": "value_error"}]},
                        status_code=err.status)


async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the input, which may not even encode (a lone surrogate): keep loc/msg/type only
    detail = [{"loc": [_safe(x) for x in e.get("loc", ())], "msg": _safe(_message(e)), "type": e.get("type", "")}
              for e in err.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    detail = err.detail
    if not isinstance(detail, list):  # Starlette's own (unparsable body, unknown route): name the part
        where = "body" if err.status_code in (400, 413, 415) else "path"
        detail = [{"loc": [where], "msg": str(detail), "type": "http_error"}]
    return JSONResponse({"detail": detail}, status_code=err.status_code, headers=getattr(err, "headers", None))


def add_error_handlers(app: FastAPI) -> None:
    """The ledger's refusals, validation errors and HTTP errors, each in the API's shape."""
    app.add_exception_handler(LedgerError, ledger_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


class MetricsMiddleware:
    """Request counts and latency per route template, from arrival at the app (plain ASGI: no per-request
    task or body copy). The outermost layer: refusals by the limits and queueing for decoding are counted."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
