"""Signed slot tokens: what an ad response hands out so that a later event can be charged.

The price of a click is decided by the auction when the slate is served; the event that reports
the click only carries the token. A token is ``base64url(JSON payload) + "." + HMAC-SHA256``
under the service's token secret, so a client can neither forge a price nor move a charge to
another campaign. The payload names the slot (``request_id``, ``ad_id``), the ``campaign_id``,
the per-click ``price_micros`` and the campaign's ``bid_micros`` when the slate was served,
``issued_at`` and, when the request named a user, ``user``: a hash of that user's id, so that the
per-user invalid-traffic rules can follow a click without the user's id travelling in the token.
Tokens without ``user`` (issued by older versions, or for a history) stay valid. :func:`verify` checks every field's type and range even under a valid signature
(integers, ``0 <= price <= bid <= MAX_BID_MICROS``), so a leaked secret cannot mint negative or
absurd prices either.

The secret lives in a file of mode 0600 (``state/token.secret``), never in the ledger: a JSON
object ``{"current": HEX, "previous": [{"secret": HEX, "retired_at": UNIX_TIME}]}``.
:meth:`TokenSecrets.rotate` makes a new current secret; the retired one still verifies the tokens
issued before it was retired, until they expire (``--drop-previous`` voids them at once). Servers
sharing a PostgreSQL ledger share this file (or ``$GENADS_TOKEN_SECRET``, hex) to accept each
other's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

MICROS = 1_000_000
MAX_BID_MICROS = 1_000_000 * MICROS
"""The highest bid a campaign can hold (1e6 per click), in micros."""
MAX_ID = 2**62
MAX_AD_ID = 2**63 - 1
"""Ads and advertisers with string ids have indices from 2**62 up (genads.data.vocab)."""
CLOCK_SKEW_S = 300.0
"""How far in the future a token's ``issued_at`` may lie (servers' clocks differ)."""
ROTATION_GRACE_S = 10.0
"""A retired secret still verifies tokens issued this long after it was retired: running servers pick up a
rotation within a second (:meth:`TokenSecrets.reload`) and sign with the old secret until then."""
FIELDS = ("ad_id", "bid_micros", "campaign_id", "issued_at", "price_micros", "request_id")
FIELDS_WITH_USER = tuple(sorted((*FIELDS, "user")))
REQUEST_ID = re.compile(r"^[0-9a-f]{1,64}$")
USER_HASH = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class SlotToken:
    request_id: str
    ad_id: int
    campaign_id: int
    price_micros: int
    """Price per click set by the auction."""
    bid_micros: int
    """The campaign's bid per click when the slate was served (price_micros <= bid_micros)."""
    issued_at: float
    user: str = ""
    """:func:`user_hash` of the request's user; "" when the request named none (a history)."""


def user_hash(user_id: int | str) -> str:
    """The 16 hex digits that stand for a user in tokens and invalid-traffic counters (never the id itself)."""
    return hashlib.sha256(f"{type(user_id).__name__}:{user_id}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


class TokenError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: bytes, payload: bytes) -> str:
    return _b64(hmac.digest(secret, payload, "sha256"))  # the one-shot C path: no HMAC object per token


_PLAIN = re.compile(r"^[A-Za-z0-9._:-]*$")
"""Strings JSON writes as they are (no escapes)."""


def payload_bytes(token: SlotToken) -> bytes:
    """The signed payload: compact JSON, keys in this order. Ten tokens per slate: the common case (integer ids,
    a finite float time, plain request id and user hash) is formatted directly, byte for byte what
    ``json.dumps(..., separators=(",", ":"))`` writes (tested), at a seventh of its cost; anything else goes
    through json.dumps."""
    ints = (token.ad_id, token.bid_micros, token.campaign_id, token.price_micros)
    if (all(type(x) is int for x in ints) and type(token.issued_at) is float and math.isfinite(token.issued_at)
            and _PLAIN.match(token.request_id) and _PLAIN.match(token.user)):
        user = f',"user":"{token.user}"' if token.user else ""
        return (f'{{"ad_id":{token.ad_id},"bid_micros":{token.bid_micros},"campaign_id":{token.campaign_id},'
                f'"issued_at":{token.issued_at!r},"price_micros":{token.price_micros},'
                f'"request_id":"{token.request_id}"{user}}}').encode()
    fields = {"ad_id": token.ad_id, "bid_micros": token.bid_micros, "campaign_id": token.campaign_id,
              "issued_at": token.issued_at, "price_micros": token.price_micros,
              "request_id": token.request_id}  # asdict() is slow per slot
    if token.user:
        fields["user"] = token.user
    return json.dumps(fields, separators=(",", ":")).encode()


def sign(token: SlotToken, secret: bytes) -> str:
    payload = payload_bytes(token)
    return _b64(payload) + "." + _mac(secret, payload)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise TokenError("malformed token (duplicate payload field)")
    return out


def _int(data: dict, name: str, low: int, high: int) -> int:
    value = data[name]
    if type(value) is not int or not low <= value <= high:  # bool is an int subclass: refused too
        raise TokenError(f"payload {name} must be an integer in [{low}, {high}]")
    return value


def parse_payload(payload: bytes) -> SlotToken:
    """The token's fields, every type and range checked (TokenError naming the payload field)."""
    try:
        data = json.loads(payload, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as err:
        raise TokenError(f"malformed token ({type(err).__name__})") from None
    if not isinstance(data, dict) or tuple(sorted(data)) not in (FIELDS, FIELDS_WITH_USER):
        raise TokenError(f"malformed token (payload fields must be exactly {list(FIELDS)}, optionally with user)")
    user = data.get("user", "")
    if "user" in data and (not isinstance(user, str) or not USER_HASH.match(user)):
        raise TokenError("payload user must be 16 lowercase hex digits")
    request_id, issued_at = data["request_id"], data["issued_at"]
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise TokenError("payload request_id must be 1-64 lowercase hex digits")
    if type(issued_at) not in (int, float) or not math.isfinite(issued_at):
        raise TokenError("payload issued_at must be a finite number")
    bid = _int(data, "bid_micros", 1, MAX_BID_MICROS)
    return SlotToken(request_id, _int(data, "ad_id", 0, MAX_AD_ID), _int(data, "campaign_id", 1, MAX_ID),
                     _int(data, "price_micros", 0, bid), bid, float(issued_at), user)


@dataclass
class TokenSecrets:
    """The HMAC secret that signs slot tokens, and retired ones that still verify older tokens.

    ``previous``: (secret, retired_at) pairs; a token verified by a retired secret must have been
    issued before that secret was retired (give or take :data:`ROTATION_GRACE_S`). :meth:`reload` re-reads the file (at most once a second)
    so a running server follows a rotation made by the CLI.
    """

    current: bytes
    previous: tuple[tuple[bytes, float], ...] = ()
    path: Path | None = None
    _mtime: float = field(default=0.0, repr=False)
    _checked: float = field(default=0.0, repr=False)

    @classmethod
    def generate(cls, path: Path | None = None) -> TokenSecrets:
        return cls(secrets.token_bytes(32), (), path)

    @classmethod
    def load(cls, path: str | Path) -> TokenSecrets:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            previous = tuple((bytes.fromhex(p["secret"]), float(p["retired_at"])) for p in data.get("previous", []))
            out = cls(bytes.fromhex(data["current"]), previous, path)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a token secret file ({type(err).__name__}: {err})") from None
        if len(out.current) < 16:
            raise ValueError(f"{path}: current secret is shorter than 16 bytes")
        out._mtime = path.stat().st_mtime
        return out

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path or self.path)
        text = json.dumps({"current": self.current.hex(),
                           "previous": [{"secret": s.hex(), "retired_at": t} for s, t in self.previous]}, indent=1)
        write_secret(path, text + "\n")
        self.path, self._mtime = path, path.stat().st_mtime
        return path

    def rotate(self, keep_previous: bool = True, now: float | None = None) -> TokenSecrets:
        """A new current secret; the old one verifies tokens issued until now (unless ``keep_previous`` is False).
        Only the latest retired secret is kept: rotating twice within a token's lifetime voids the oldest tokens."""
        retired = ((self.current, time.time() if now is None else now),) if keep_previous else ()
        return TokenSecrets(secrets.token_bytes(32), retired, self.path)

    def reload(self, every_s: float = 1.0) -> None:
        """Re-read the file if it changed (checked at most every ``every_s`` seconds)."""
        now = time.monotonic()
        if self.path is None or now - self._checked < every_s:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return
        if mtime != self._mtime:
            fresh = TokenSecrets.load(self.path)
            self.current, self.previous, self._mtime = fresh.current, fresh.previous, fresh._mtime

    def sign(self, token: SlotToken) -> str:
        return sign(token, self.current)

    def verify(self, text: str, now: float, ttl_s: float) -> SlotToken:
        """The token's fields if a secret signed it and it is younger than ``ttl_s``; TokenError otherwise."""
        try:
            body, sig = text.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError) as err:
            raise TokenError(f"malformed token ({type(err).__name__})") from None
        retired_at = None
        if not hmac.compare_digest(_mac(self.current, payload), sig):
            retired_at = next((t for s, t in self.previous if hmac.compare_digest(_mac(s, payload), sig)), None)
            if retired_at is None:
                raise TokenError("bad signature")
        token = parse_payload(payload)
        if retired_at is not None and token.issued_at > retired_at + ROTATION_GRACE_S:
            raise TokenError("bad signature (a retired secret)")
        if now - token.issued_at > ttl_s:
            raise TokenError(f"expired ({now - token.issued_at:.0f}s old, ttl {ttl_s:.0f}s)")
        if token.issued_at - now > CLOCK_SKEW_S:
            raise TokenError("payload issued_at lies in the future")
        return token


def verify(text: str, secret: bytes, now: float, ttl_s: float) -> SlotToken:
    """:meth:`TokenSecrets.verify` with a single secret."""
    return TokenSecrets(secret).verify(text, now, ttl_s)


def write_secret(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 from the start (never readable by others)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
