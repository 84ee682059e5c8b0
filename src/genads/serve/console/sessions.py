"""Console sign-in sessions, CSRF tokens and form bodies.

A session is a random id in an HttpOnly, SameSite=Strict cookie scoped to ``/console``; the server
keeps, under the SHA-256 of that id, the principal, the SHA-256 of the API key that signed in (never
the key) and the session's CSRF token. Every request re-reads the key by its hash, so revoking or
rotating the key ends its console sessions at once. Sessions expire after ``idle_s`` without a
request and ``max_age_s`` after sign-in; at most ``max_sessions`` are kept (the oldest go first).
Every state-changing form carries the CSRF token, compared in constant time. The sign-in form
itself carries a token bound to a pre-session cookie, so no other site can sign a browser in.
Sessions live in the server process: servers sharing a ledger do not share them (route a browser to
one server, or sign in on each), and a restart signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl

from genads.serve.keys import Principal, hash_key
from genads.serve.ledger import SQLLedger

COOKIE = "genads_console"
SIGNIN_COOKIE = "genads_console_signin"
MAX_FIELDS = 64


class FormError(ValueError):
    """A form body the console refuses (status 400 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Session:
    principal: Principal
    key_hash: str
    csrf: str
    created: float
    seen: float


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    def __init__(self, ledger: SQLLedger, idle_s: float = 8 * 3600, max_age_s: float = 24 * 3600,
                 max_sessions: int = 10_000) -> None:
        self.ledger, self.idle_s, self.max_age_s, self.max_sessions = ledger, idle_s, max_age_s, max_sessions
        self._by_digest: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal: Principal, key: str) -> str:
        """A new session for the holder of ``key``; returns the session id (for the cookie only)."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._by_digest[_digest(sid)] = Session(principal, hash_key(key), secrets.token_urlsafe(32), now, now)
            while len(self._by_digest) > self.max_sessions:
                self._by_digest.popitem(last=False)
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The live session of this id: None when unknown, expired, or its key was revoked."""
        if not sid or len(sid) > 100:
            return None
        digest, now = _digest(sid), time.time()
        with self._lock:
            s = self._by_digest.get(digest)
        if s is None:
            return None
        if now - s.seen > self.idle_s or now - s.created > self.max_age_s:
            self.close(sid)
            return None
        principal = self.ledger.principal_by_hash(s.key_hash)
        if principal is None:  # revoked or rotated: the console follows the API at once
            self.close(sid)
            return None
        s.seen = now
        return s

    def close(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._by_digest.pop(_digest(sid), None)


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def parse_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict; a repeated field, another content type, more
    than ``MAX_FIELDS`` fields or bytes that are not UTF-8 are refused (the body's size is bounded by
    the app's limits before this reads it). An empty body is an empty form."""
    if not body:
        return {}
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise FormError(415, "forms must be sent as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as err:
        raise FormError(400, f"unreadable form: {type(err).__name__}") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise FormError(400, f"field {name!r} is repeated")
        out[name] = value
    return out
