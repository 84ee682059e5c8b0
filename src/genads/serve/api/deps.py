"""What the API's handlers get as dependencies: the app's state, the caller behind the X-API-Key, the traffic gate.

Auth: ``X-API-Key``. An advertiser's key reads and changes only that advertiser's campaigns and keys; the admin
key sees everything. Ad requests and events need a publisher key (or the admin key) unless the traffic policy is
open, and are rate-limited per client and per key (:mod:`genads.serve.traffic`). The dependencies that only read
the app's state are ``async``: no thread hand-off per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve.actions import field_error
from genads.serve.creatives import BannerCache
from genads.serve.decoding import Decoder
from genads.serve.engine import AdEngine
from genads.serve.keys import MAX_KEY_CHARS, Principal
from genads.serve.metrics import Metrics
from genads.serve.recording import Recorder
from genads.serve.traffic import Caller, TrafficGuard

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An advertiser's key or the admin key")
CampaignId = Annotated[int, Path(ge=1, le=2**62)]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
Publisher = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ApiKey = Annotated[str | None, Security(API_KEY)]


@dataclass(frozen=True)
class ApiState:
    """What the API's handlers share (``app.state.api``); :func:`genads.serve.app.create_app` documents the
    options."""

    engine: AdEngine
    metrics: Metrics
    guard: TrafficGuard
    decoder: Decoder
    recorder: Recorder
    banners: BannerCache
    base: str
    """The public base URL of creative links, without a trailing slash ("": links are relative)."""
    clock: Callable[[], float]
    public_metrics: bool
    admin_rotation: bool
    on_admin_rotate: Callable[[str], None] | None


async def api_state(request: Request) -> ApiState:
    return request.app.state.api


async def app_engine(request: Request) -> AdEngine:
    return request.app.state.engine


State = Annotated[ApiState, Depends(api_state)]
Engine = Annotated[AdEngine, Depends(app_engine)]


def principal(request: Request, key: ApiKey = None) -> Principal:
    """Who holds the X-API-Key (401 when missing, unknown, revoked or over-long)."""
    if not key:
        raise field_error(401, ["header", "X-API-Key"], "missing API key")
    found = request.app.state.engine.ledger.principal(key) if len(key) <= MAX_KEY_CHARS else None
    if found is None:
        raise field_error(401, ["header", "X-API-Key"], "unknown or revoked API key")
    if found.publisher is not None:
        raise field_error(403, ["header", "X-API-Key"], "a publisher key opens /v1/ads and /v1/events only")
    return found


Who = Annotated[Principal, Depends(principal)]


def traffic_gate(kind: str) -> Callable[..., Caller]:
    """The dependency guarding ``kind`` ("ads" or "events"): the publisher key (unless the policy is open),
    then the rate limits per client and per key (429 with Retry-After)."""

    async def gate(request: Request, key: ApiKey = None) -> Caller:  # async: no thread hand-off per request
        guard: TrafficGuard = request.app.state.traffic
        client = request.client.host if request.client is not None else "unknown"
        caller = Caller(client)
        if guard.policy.require_keys:
            if not key:
                raise field_error(401, ["header", "X-API-Key"], "missing API key: a publisher key (genads keys issue "
                                                                "--publisher NAME) or the admin key")
            who = request.app.state.engine.ledger.principal_cached(key)  # a live key: no ledger read for 1 s
            if who is None:
                raise field_error(401, ["header", "X-API-Key"], "unknown or revoked API key")
            if not (who.is_admin or who.publisher is not None):
                raise field_error(403, ["header", "X-API-Key"], "an advertiser key cannot ask for ads or report events: "
                                                                "use a publisher key")
            caller = Caller(client, who.key_id, who.publisher)
        over = guard.rate(kind, caller)
        if over is not None:
            what, wait = over
            loc = ["client"] if what == "client" else ["header", "X-API-Key"]
            raise StarletteHTTPException(429, headers={"Retry-After": str(max(1, round(wait + 0.5)))}, detail=[
                {"loc": loc, "msg": f"too many {kind} requests from this {what}; retry in {wait:.2f} s",
                 "type": "rate_limited"}])
        return caller

    return gate


AdsCaller = Annotated[Caller, Depends(traffic_gate("ads"))]
EventsCaller = Annotated[Caller, Depends(traffic_gate("events"))]
