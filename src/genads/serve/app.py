"""The HTTP API: ``create_app(engine) -> FastAPI``. Routes only translate between schemas and the engine/ledger.

Auth: ``X-API-Key``. An advertiser's key reads and changes only that advertiser's campaigns and
keys (another's campaign answers 404, exactly as a missing one: nothing is revealed); the admin key
sees everything and issues advertiser keys. Keys are listed, revoked and rotated under ``/v1/keys``.
Ad requests and events need no key (publishers and beacons send them); an event is charged by the
signed slot token it carries, at most once per slot. Every error body (5xx too) is ``{"detail":
[{"loc": [...], "msg": ..., "type": ...}]}``, the ``loc`` naming the offending field, as FastAPI's own
validation errors do.

Decoding runs in one worker thread beside the event loop (the engine decodes one request at a
time anyway), so /healthz and the event and campaign routes answer while slates are built; at
most ``Limits.max_queue`` ad requests wait, more get 503 with ``Retry-After``. Latency is measured
from the moment a request reaches the app, so queueing is included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve import actions
from genads.serve.access_log import RequestLogMiddleware
from genads.serve.actions import field_error
from genads.serve.console import mount_console
from genads.serve.creatives import BannerCache
from genads.serve.engine import AdEngine, AdResult
from genads.serve.keys import MAX_KEY_CHARS, KeyInfo, Principal, key_id
from genads.serve.ledger import MICROS, Campaign, Event, LedgerError
from genads.serve.limits import Limits, LimitsMiddleware, StrictJSONRoute
from genads.serve.schemas import (
    AdRequest,
    AdResponse,
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    EventIn,
    EventOut,
    KeyInfoOut,
    KeyOut,
)
from genads.serve.served_log import ServedLog
from genads.serve.tokens import TokenError

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An advertiser's key or the admin key")
CampaignId = Annotated[int, Path(ge=1, le=2**62)]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


def _safe(x: object) -> object:
    """Text that encodes as UTF-8 (lone surrogates escaped); other values unchanged."""
    return x.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(x, str) else x


def _message(e: dict) -> str:
    """The error's message; an unparsable body says what and where (its loc is ["body", character offset])."""
    if e.get("type") == "json_invalid" and isinstance(e.get("ctx"), dict):
        return f"invalid JSON at character {e['loc'][-1]}: {e['ctx'].get('error', '')}"
    return str(e.get("msg", ""))


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("genads_http_requests_total", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("genads_http_request_duration_seconds", "Request latency", ["route"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0))
        self.events = Counter("genads_events_total", "Events", ["type", "outcome"], registry=r)
        self.charged = Counter("genads_charged_micros", "Money charged, in micros (1e-6 currency units)", registry=r)
        self.mechanism = Counter("genads_auctions_total", "Ad requests by pricing mechanism", ["mechanism"], registry=r)
        self.slots = Counter("genads_slots_total", "Slots asked for by POST /v1/ads, and filled", ["outcome"], registry=r)
        self.live_ads = Gauge("genads_live_ads", "Ads that can be served", registry=r)
        self.queue = Gauge("genads_ads_queue", "POST /v1/ads requests decoding or waiting to", registry=r)
        self.queue_wait = Histogram("genads_ads_queue_wait_seconds", "Time an ad request waited for the decoder",
                                    registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0))
        self.started = time.time()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=r)


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


ApiKey = Annotated[str | None, Security(API_KEY)]


def principal(request: Request, key: ApiKey = None) -> Principal:
    """Who holds the X-API-Key (401 when missing, unknown, revoked or over-long)."""
    if not key:
        raise field_error(401, ["header", "X-API-Key"], "missing API key")
    found = request.app.state.engine.ledger.principal(key) if len(key) <= MAX_KEY_CHARS else None
    if found is None:
        raise field_error(401, ["header", "X-API-Key"], "unknown or revoked API key")
    return found


Who = Annotated[Principal, Depends(principal)]


def campaign_out(c: Campaign) -> CampaignOut:
    return CampaignOut(campaign_id=c.campaign_id, advertiser_id=c.advertiser_id, name=c.name, ad_ids=list(c.ad_ids),
                       bid=c.bid_micros / MICROS, budget=c.budget_micros / MICROS, spent=c.spent_micros / MICROS,
                       remaining=c.remaining_micros / MICROS, status=c.status, serving=c.serving)


def key_out(k: KeyInfo) -> KeyInfoOut:
    return KeyInfoOut(key_id=k.key_id, advertiser_id=k.advertiser_id, is_admin=k.is_admin, created_at=k.created_at,
                      revoked_at=k.revoked_at, live=k.revoked_at is None)


def create_app(engine: AdEngine, banners: BannerCache | None = None, *, limits: Limits | None = None,
               public_url: str | None = None, on_admin_rotate: Callable[[str], None] | None = None,
               clicks_need_impression: bool = True, served_log: ServedLog | None = None) -> FastAPI:
    """The API over an engine (and its ledger).

    Args:
        limits: body/header sizes, timeouts, the decoding queue (defaults: :class:`Limits`).
        public_url: the service's public base URL for creative links (``https://ads.example.com``); the
            request's Host header is never used. None: links are relative (``/v1/creatives/...``).
        on_admin_rotate: called with the new admin key after ``POST /v1/keys/rotate`` by the admin
            (the server writes it to ``state/admin.key``).
        clicks_need_impression: a click is charged only after its slot's impression was recorded (409
            before: send the impression, then retry the click).
        served_log: where answered slates and recorded events are appended (genads.serve.served_log).
    """
    ledger = engine.ledger
    metrics = Metrics()
    limits = limits or Limits()
    banners = banners or BannerCache(engine.bundle.ads)
    base = (public_url or "").rstrip("/")
    decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genads-decode")
    waiting = [0]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        decoder.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="genads", version="1", description="Generative ads: slates, prices, creatives, budgets.",
                  lifespan=lifespan)
    app.router.route_class = StrictJSONRoute
    app.state.engine, app.state.metrics, app.state.limits = engine, metrics, limits

    app.add_middleware(LimitsMiddleware, limits=limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # sees refusals and 500s too
    app.add_middleware(RequestLogMiddleware)  # outermost: every answer carries X-Request-ID and is logged

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, err: LedgerError) -> JSONResponse:
        where = {"X-API-Key": "header", "key_id": "path", "campaign_id": "path"}.get(err.field, "body")
        return JSONResponse({"detail": [{"loc": [where, err.field], "msg": err.message, "type": "value_error"}]},
                            status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, which may not even encode (a lone surrogate): keep loc/msg/type only
        detail = [{"loc": [_safe(x) for x in e.get("loc", ())], "msg": _safe(_message(e)), "type": e.get("type", "")}
                  for e in err.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail
        if not isinstance(detail, list):  # Starlette's own (unparsable body, unknown route): name the part
            where = "body" if err.status_code in (400, 413, 415) else "path"
            detail = [{"loc": [where], "msg": str(detail), "type": "http_error"}]
        return JSONResponse({"detail": detail}, status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "ledger unreachable"}})
    def readyz() -> JSONResponse:
        ok = ledger.ping()
        return JSONResponse({"ready": ok, "live_ads": len(engine.live)}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        metrics.live_ads.set(len(engine.live))
        metrics.queue.set(waiting[0])
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def decide(req: AdRequest, queued: float) -> AdResult:  # in the decoding thread
        metrics.queue_wait.observe(time.perf_counter() - queued)
        engine.secrets.reload()  # sign with the current secret within a second of a rotation
        if req.history is not None:
            items, bad = engine.history_items(req.history)
            if bad is not None:
                raise field_error(422, ["body", "history", bad], f"unknown ad_id {req.history[bad]}")
        else:
            items = engine.user_history(req.user_id) if req.user_id is not None else np.zeros(0, np.int64)
        exclude = {engine.ad_index(ad) for ad in req.context.exclude} - {None}
        return engine.serve(items, req.slots, exclude)

    async def decode(req: AdRequest) -> AdResult:
        """The slate for a request, built in the decoding thread (503 when ``limits.max_queue`` are waiting)."""
        if waiting[0] >= limits.max_queue:
            raise StarletteHTTPException(503, headers={"Retry-After": "1"}, detail=[
                {"loc": ["server", "queue"], "msg": f"{waiting[0]} ad requests are waiting; retry", "type": "busy"}])
        waiting[0] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(decoder, decide, req, time.perf_counter())
        finally:
            waiting[0] -= 1

    app.state.decode = decode  # the console's slate preview decodes through the same thread and queue bound

    @app.post("/v1/ads", response_model=AdResponse, tags=["ads"],
              responses={503: {"description": "too many requests waiting for decoding (see Retry-After)"}})
    async def ads(req: AdRequest) -> JSONResponse:
        # decoded in the worker thread, answered as built JSON (re-validating the response costs more than the auction)
        result = await decode(req)
        metrics.mechanism.labels(result.mechanism).inc()
        metrics.slots.labels("requested").inc(req.slots)
        metrics.slots.labels("filled").inc(len(result.placements))
        if served_log is not None:
            served_log.slate(result.request_id, req.user_id, result.placements, result.mechanism, req.history is not None)
        slate = [{"ad": engine.ad_label(p.ad_id), "ad_id": p.ad_id, "position": p.position, "campaign_id": p.campaign_id, "price": p.price,
                  "pctr": p.pctr, "creative": {"title": p.title, "image_url": f"{base}/v1/creatives/{p.ad_id}/banner.png"},
                  "token": p.token} for p in result.placements]
        return JSONResponse({"request_id": result.request_id, "mechanism": result.mechanism, "slate": slate})

    @app.get("/v1/creatives/{ad_id}/banner.png", tags=["ads"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown ad"}})
    def banner(ad_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
        if ad_id not in banners:
            raise field_error(404, ["path", "ad_id"], f"unknown ad {ad_id}")
        return Response(banners.png(ad_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/v1/events", response_model=EventOut, tags=["events"],
              responses={409: {"description": "idempotency key reused for another event, the slot's event "
                                              "already recorded under another key, or a click before its impression"}})
    def events(ev: EventIn) -> EventOut:
        engine.secrets.reload()
        try:
            tok = engine.secrets.verify(ev.token, time.time(), engine.config.token_ttl_s)
        except TokenError as err:
            raise field_error(422, ["body", "token"], str(err)) from None
        result = ledger.record_event(Event(ev.idempotency_key, ev.type, tok.campaign_id, tok.ad_id, tok.request_id,
                                           tok.price_micros, tok.bid_micros), require_impression=clicks_need_impression)
        metrics.events.labels(ev.type, "duplicate" if result.duplicate else "recorded").inc()
        if not result.duplicate:
            metrics.charged.inc(result.charged_micros)
            if served_log is not None:
                served_log.event(tok.request_id, ev.type, tok.ad_id, result.charged_micros / MICROS)
        if result.exhausted and result.charged_micros and not result.duplicate:
            engine.refresh(force=True)  # the campaign stops serving before this answer
        return EventOut(idempotency_key=ev.idempotency_key, charged=result.charged_micros / MICROS,
                        duplicate=result.duplicate, campaign_exhausted=result.exhausted)

    @app.post("/v1/campaigns", response_model=CampaignOut, status_code=201, tags=["campaigns"])
    def create(body: CampaignIn, who: Who) -> CampaignOut:
        return campaign_out(actions.create_campaign(engine, body, who))

    @app.get("/v1/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
    def list_campaigns(who: Who) -> list[CampaignOut]:
        return [campaign_out(c) for c in ledger.campaigns(None if who.is_admin else who.advertiser_id)]

    @app.get("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def get_campaign(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(actions.owned(ledger, campaign_id, who))

    @app.patch("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def update(campaign_id: CampaignId, body: CampaignPatch, who: Who) -> CampaignOut:
        return campaign_out(actions.update_campaign(engine, campaign_id, body, who))

    @app.post("/v1/campaigns/{campaign_id}/pause", response_model=CampaignOut, tags=["campaigns"])
    def pause(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(actions.set_status(engine, campaign_id, who, "paused"))

    @app.post("/v1/campaigns/{campaign_id}/resume", response_model=CampaignOut, tags=["campaigns"])
    def resume(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(actions.set_status(engine, campaign_id, who, "active"))

    @app.post("/v1/advertisers/{advertiser_id}/keys", response_model=KeyOut, status_code=201, tags=["keys"])
    def new_key(advertiser_id: Annotated[int, Path(ge=0, le=2**63 - 1)], who: Who) -> KeyOut:
        key = actions.issue_key(ledger, who, advertiser_id)
        return KeyOut(advertiser_id=advertiser_id, key_id=key_id(key), api_key=key)

    @app.get("/v1/keys", response_model=list[KeyInfoOut], tags=["keys"])
    def list_keys(who: Who) -> list[KeyInfoOut]:
        """The admin sees every key; an advertiser its own. Keys themselves are never shown again, only ids."""
        return [key_out(k) for k in ledger.list_keys(None if who.is_admin else who.advertiser_id)]

    @app.delete("/v1/keys/{key_id}", response_model=KeyInfoOut, tags=["keys"])
    def revoke(key_id: KeyId, who: Who) -> KeyInfoOut:
        """Revoke a key at once (an advertiser: only its own; another's answers 404 like an unknown id)."""
        return key_out(ledger.revoke_key(key_id, None if who.is_admin else who.advertiser_id))

    @app.post("/v1/keys/rotate", response_model=KeyOut, status_code=201, tags=["keys"])
    def rotate(who: Who, key: ApiKey = None) -> KeyOut:
        """A new key for the caller; the key that made this call stops working at once."""
        new = ledger.rotate_key(key)
        if who.is_admin and on_admin_rotate is not None:
            on_admin_rotate(new)
        return KeyOut(advertiser_id=who.advertiser_id, key_id=key_id(new), api_key=new)

    mount_console(app, public_url=public_url)
    return app
