"""Signed slot tokens: what an ad response hands out so that a later event can be charged.

The price of a click is decided by the auction when the slate is served; the event that reports
the click only carries the token. A token is ``base64url(JSON payload) + "." + HMAC-SHA256``
under the ledger's secret, so a client can neither forge a price nor move a charge to another
campaign, and servers sharing a ledger accept each other's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotToken:
    request_id: str
    ad_id: int
    campaign_id: int
    price_micros: int
    issued_at: float


class TokenError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(token: SlotToken, secret: bytes) -> str:
    fields = {"ad_id": token.ad_id, "campaign_id": token.campaign_id, "issued_at": token.issued_at,
              "price_micros": token.price_micros, "request_id": token.request_id}  # asdict() is slow per slot
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return _b64(payload) + "." + _b64(hmac.new(secret, payload, hashlib.sha256).digest())


def verify(text: str, secret: bytes, now: float, ttl_s: float) -> SlotToken:
    """The token's fields if the signature holds and it is younger than ``ttl_s``; TokenError otherwise."""
    try:
        body, sig = text.split(".")
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        expected = _b64(hmac.new(secret, payload, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            raise TokenError("bad signature")
        token = SlotToken(**json.loads(payload))
    except TokenError:
        raise
    except (ValueError, TypeError) as err:
        raise TokenError(f"malformed token ({type(err).__name__})") from err
    if now - token.issued_at > ttl_s:
        raise TokenError(f"expired ({now - token.issued_at:.0f}s old, ttl {ttl_s:.0f}s)")
    return token
