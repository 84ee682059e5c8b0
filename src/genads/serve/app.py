"""The HTTP API: ``create_app(engine) -> FastAPI``. Routes only translate between schemas and the engine/ledger.

Auth: ``X-API-Key``. An advertiser's key reads and changes only that advertiser's campaigns
(another's gives 403); the admin key sees every campaign and issues advertiser keys. Ad requests
and events need no key (publishers and beacons send them); an event is charged by the signed
slot token it carries. Every 4xx body is ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``,
the ``loc`` naming the offending field, as FastAPI's own validation errors do.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve.creatives import BannerCache
from genads.serve.engine import AdEngine
from genads.serve.ledger import MICROS, Campaign, Event, LedgerError
from genads.serve.schemas import (
    AdRequest,
    AdResponse,
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    EventIn,
    EventOut,
    KeyOut,
)
from genads.serve.tokens import TokenError, verify

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An advertiser's key or the admin key")
CampaignId = Annotated[int, Path(ge=1, le=2**62)]


def _safe(x: object) -> object:
    """Text that encodes as UTF-8 (lone surrogates escaped); other values unchanged."""
    return x.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(x, str) else x


def field_error(status: int, loc: list, msg: str) -> HTTPException:
    return HTTPException(status, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("genads_http_requests_total", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("genads_http_request_seconds", "Request latency", ["route"], registry=r,
                                 buckets=(0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.events = Counter("genads_events_total", "Events", ["type", "outcome"], registry=r)
        self.charged = Counter("genads_charged_total", "Money charged (currency units)", registry=r)
        self.mechanism = Counter("genads_auctions_total", "Ad requests by pricing mechanism", ["mechanism"], registry=r)
        self.live_ads = Gauge("genads_live_ads", "Ads that can be served", registry=r)


class MetricsMiddleware:
    """Request counts and latency per route template (plain ASGI: no per-request task or body copy)."""

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


def campaign_out(c: Campaign) -> CampaignOut:
    return CampaignOut(campaign_id=c.campaign_id, advertiser_id=c.advertiser_id, name=c.name, ad_ids=list(c.ad_ids),
                       bid=c.bid_micros / MICROS, budget=c.budget_micros / MICROS, spent=c.spent_micros / MICROS,
                       remaining=c.remaining_micros / MICROS, status=c.status, serving=c.serving)


def create_app(engine: AdEngine, banners: BannerCache | None = None) -> FastAPI:
    ledger = engine.ledger
    metrics = Metrics()
    banners = banners or BannerCache(engine.bundle.ads)
    app = FastAPI(title="genads", version="1", description="Generative ads: slates, prices, creatives, budgets.")
    app.state.engine, app.state.metrics = engine, metrics

    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, err: LedgerError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": ["body", err.field], "msg": err.message, "type": "value_error"}]},
                            status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, which may not even encode (a lone surrogate): keep loc/msg/type only
        detail = [{"loc": [_safe(x) for x in e.get("loc", ())], "msg": _safe(e.get("msg", "")), "type": e.get("type", "")}
                  for e in err.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail
        if not isinstance(detail, list):  # Starlette's own (unparsable body, unknown route): name the part
            where = "body" if err.status_code in (400, 413, 415) else "path"
            detail = [{"loc": [where], "msg": str(detail), "type": "http_error"}]
        return JSONResponse({"detail": detail}, status_code=err.status_code, headers=getattr(err, "headers", None))

    def principal(key: str | None = Security(API_KEY)) -> tuple[bool, int | None]:
        if not key:
            raise field_error(401, ["header", "X-API-Key"], "missing API key")
        found = ledger.principal(key)
        if found is None:
            raise field_error(401, ["header", "X-API-Key"], "unknown API key")
        return found

    def owned(campaign_id: int, who: tuple[bool, int | None]) -> Campaign:
        c = ledger.campaign(campaign_id)
        if c is None:
            raise field_error(404, ["path", "campaign_id"], f"no campaign {campaign_id}")
        if not who[0] and c.advertiser_id != who[1]:
            raise field_error(403, ["path", "campaign_id"], "campaign belongs to another advertiser")
        return c

    def check_ads(ad_ids: list[int], advertiser_id: int) -> None:
        for i, ad in enumerate(ad_ids):
            if engine.advertiser_of.get(ad) != advertiser_id:
                why = "unknown ad" if ad not in engine.advertiser_of else f"ad belongs to advertiser {engine.advertiser_of[ad]}"
                raise field_error(422, ["body", "ad_ids", i], f"ad {ad}: {why}")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "ledger unreachable"}})
    def readyz() -> JSONResponse:
        ok = ledger.ping()
        return JSONResponse({"ready": ok, "live_ads": len(engine.live)}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        metrics.live_ads.set(len(engine.live))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/ads", response_model=AdResponse, tags=["ads"])
    async def ads(req: AdRequest, request: Request) -> JSONResponse:
        # async and answered as built JSON: one worker decodes one request at a time anyway (the engine
        # holds a lock), and a thread hop plus re-validating the response would cost more than the auction.
        if req.history is not None:
            items, bad = engine.history_items(req.history)
            if bad is not None:
                raise field_error(422, ["body", "history", bad], f"unknown ad_id {req.history[bad]}")
        else:
            items = engine.user_history(req.user_id) if req.user_id is not None else np.zeros(0, np.int64)
        result = engine.serve(items, req.slots, set(req.context.exclude))
        metrics.mechanism.labels(result.mechanism).inc()
        base = str(request.base_url).rstrip("/")
        slate = [{"ad_id": p.ad_id, "position": p.position, "campaign_id": p.campaign_id, "price": p.price,
                  "pctr": p.pctr, "creative": {"title": p.title, "image_url": f"{base}/v1/creatives/{p.ad_id}/banner.png"},
                  "token": p.token} for p in result.placements]
        return JSONResponse({"request_id": result.request_id, "mechanism": result.mechanism, "slate": slate})

    @app.get("/v1/creatives/{ad_id}/banner.png", tags=["ads"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown ad"}})
    def banner(ad_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
        if ad_id not in banners:
            raise field_error(404, ["path", "ad_id"], f"unknown ad {ad_id}")
        return Response(banners.png(ad_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/v1/events", response_model=EventOut, tags=["events"],
              responses={409: {"description": "idempotency key reused for another event"}})
    def events(ev: EventIn) -> EventOut:
        try:
            tok = verify(ev.token, engine.secret, time.time(), engine.config.token_ttl_s)
        except TokenError as err:
            raise field_error(422, ["body", "token"], str(err)) from None
        result = ledger.record_event(Event(ev.idempotency_key, ev.type, tok.campaign_id, tok.ad_id, tok.request_id,
                                           tok.price_micros))
        metrics.events.labels(ev.type, "duplicate" if result.duplicate else "recorded").inc()
        if not result.duplicate:
            metrics.charged.inc(result.charged_micros / MICROS)
        if result.exhausted and result.charged_micros and not result.duplicate:
            engine.refresh(force=True)  # the campaign stops serving
        return EventOut(idempotency_key=ev.idempotency_key, charged=result.charged_micros / MICROS,
                        duplicate=result.duplicate, campaign_exhausted=result.exhausted)

    @app.post("/v1/campaigns", response_model=CampaignOut, status_code=201, tags=["campaigns"])
    def create(body: CampaignIn, who: tuple = Depends(principal)) -> CampaignOut:
        is_admin, own = who
        if is_admin and body.advertiser_id is None:
            raise field_error(422, ["body", "advertiser_id"], "the admin key must name the advertiser")
        if not is_admin and body.advertiser_id not in (None, own):
            raise field_error(403, ["body", "advertiser_id"], "an advertiser key creates campaigns only for itself")
        advertiser = body.advertiser_id if is_admin else own
        check_ads(body.ad_ids, advertiser)
        c = ledger.create_campaign(advertiser, body.name, body.ad_ids, body.bid, body.budget, body.status)
        engine.refresh(force=True)
        return campaign_out(c)

    @app.get("/v1/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
    def list_campaigns(who: tuple = Depends(principal)) -> list[CampaignOut]:
        return [campaign_out(c) for c in ledger.campaigns(None if who[0] else who[1])]

    @app.get("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def get_campaign(campaign_id: CampaignId, who: tuple = Depends(principal)) -> CampaignOut:
        return campaign_out(owned(campaign_id, who))

    @app.patch("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def update(campaign_id: CampaignId, body: CampaignPatch, who: tuple = Depends(principal)) -> CampaignOut:
        c = owned(campaign_id, who)
        if body.ad_ids is not None:
            check_ads(body.ad_ids, c.advertiser_id)
        out = ledger.update_campaign(campaign_id, **body.model_dump(exclude_none=True))
        engine.refresh(force=True)
        return campaign_out(out)

    def set_status(campaign_id: int, who: tuple, status: str) -> CampaignOut:
        owned(campaign_id, who)
        out = ledger.update_campaign(campaign_id, status=status)
        engine.refresh(force=True)
        return campaign_out(out)

    @app.post("/v1/campaigns/{campaign_id}/pause", response_model=CampaignOut, tags=["campaigns"])
    def pause(campaign_id: CampaignId, who: tuple = Depends(principal)) -> CampaignOut:
        return set_status(campaign_id, who, "paused")

    @app.post("/v1/campaigns/{campaign_id}/resume", response_model=CampaignOut, tags=["campaigns"])
    def resume(campaign_id: CampaignId, who: tuple = Depends(principal)) -> CampaignOut:
        return set_status(campaign_id, who, "active")

    @app.post("/v1/advertisers/{advertiser_id}/keys", response_model=KeyOut, status_code=201, tags=["campaigns"])
    def new_key(advertiser_id: Annotated[int, Path(ge=0, le=2**62)], who: tuple = Depends(principal)) -> KeyOut:
        if not who[0]:
            raise field_error(403, ["header", "X-API-Key"], "only the admin key issues advertiser keys")
        return KeyOut(advertiser_id=advertiser_id, api_key=ledger.add_key(advertiser_id))

    return app
