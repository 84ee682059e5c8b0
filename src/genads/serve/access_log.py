"""Structured JSON logs with a request id.

Every HTTP request gets an id: the caller's ``X-Request-ID`` when it is a plain token (letters,
digits, ``._:-``, at most 128), a new one otherwise. It is sent back in the ``X-Request-ID`` response
header and named in the request's log line, one JSON object per line on stderr::

    {"ts": 1733200000.123, "level": "info", "logger": "genads.access", "msg": "request",
     "request_id": "5f0c…", "method": "POST", "route": "/v1/ads", "status": 200, "duration_s": 0.0042, "pid": 4242}

``configure_json_logging`` installs the formatter on the ``genads`` loggers (``genads serve`` calls it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

from genads.serve.ids import new_id

ACCESS = logging.getLogger("genads.access")
_TOKEN = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg and the record's ``fields`` (extra={"fields": {...}})."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_json_logging(level: str = "info") -> None:
    """JSON lines on stderr for the ``genads`` loggers (idempotent)."""
    root = logging.getLogger("genads")
    root.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.propagate = False


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token, else a new one."""
    for name, value in headers:
        if name == b"x-request-id" and _TOKEN.match(value):
            return value.decode("ascii")
    return new_id()


class RequestLogMiddleware:
    """Gives each HTTP request an id (``scope["state"]["request_id"]``, the ``X-Request-ID`` response header)
    and logs it as one JSON line when the answer is sent."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = rid
        start, status = time.perf_counter(), [500]

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.info("request", extra={"fields": {
                    "request_id": rid, "method": scope.get("method"), "route": getattr(scope.get("route"), "path", scope.get("path")),
                    "status": status[0], "duration_s": round(time.perf_counter() - start, 6), "pid": os.getpid()}})
