"""The HTTP API: ``create_app(engine) -> FastAPI``. Routes only translate between schemas and the engine/ledger.

Auth: ``X-API-Key``. An advertiser's key reads and changes only that advertiser's campaigns and
keys (another's campaign answers 404, exactly as a missing one: nothing is revealed); the admin key
sees everything and issues advertiser and publisher keys. Keys are listed, revoked and rotated under
``/v1/keys``. Ad requests and events need a publisher key (or the admin key) unless the traffic
policy is open; they are rate-limited, frequency-capped and filtered for invalid clicks as
:mod:`genads.serve.traffic` describes. An event is charged by the signed slot token it carries, at
most once per slot; an invalid click is recorded and charged nothing, or refunded. Every error body (5xx too) is ``{"detail":
[{"loc": [...], "msg": ..., "type": ...}]}``, the ``loc`` naming the offending field, as FastAPI's own
validation errors do.

Decoding runs in one worker thread beside the event loop, micro-batched (:mod:`genads.serve.batching`):
ad requests that arrive together are scored in one batched forward (up to ``Limits.max_batch``; a batch's
first request waits at most ``Limits.batch_wait_ms`` for requests already arriving, a lone one not at all),
then auctioned, capped and signed one by one, each exactly as if it had come alone. /healthz and the event
and campaign routes answer while slates are built; at most ``Limits.max_queue`` ad requests are pending,
more get 503 with ``Retry-After``. Latency is measured from the moment a request reaches the app, so
queueing is included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Path, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve import actions
from genads.serve.access_log import RequestLogMiddleware
from genads.serve.actions import field_error
from genads.serve.batching import BatchConfig, MicroBatcher, Overloaded
from genads.serve.console import mount_console
from genads.serve.creatives import BannerCache
from genads.serve.engine import AdEngine, AdResult
from genads.serve.engine import AdRequest as SlateRequest
from genads.serve.group_commit import GroupWriter
from genads.serve.keys import MAX_KEY_CHARS, KeyInfo, Principal, key_id
from genads.serve.ledger import MICROS, Campaign, Event, EventResult, LedgerError
from genads.serve.limits import Limits, LimitsMiddleware, StrictJSONRoute
from genads.serve.metrics import Metrics
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
    RefundIn,
    RefundOut,
    TrafficOut,
)
from genads.serve.served_log import ServedLog
from genads.serve.tokens import TokenError, user_hash
from genads.serve.traffic import Caller, TrafficGuard, TrafficPolicy

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An advertiser's key or the admin key")
CampaignId = Annotated[int, Path(ge=1, le=2**62)]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
Publisher = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def _safe(x: object) -> object:
    """Text that encodes as UTF-8 (lone surrogates escaped); other values unchanged."""
    return x.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(x, str) else x


def _message(e: dict) -> str:
    """The error's message; an unparsable body says what and where (its loc is ["body", character offset])."""
    if e.get("type") == "json_invalid" and isinstance(e.get("ctx"), dict):
        return f"invalid JSON at character {e['loc'][-1]}: {e['ctx'].get('error', '')}"
    return str(e.get("msg", ""))


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


class ArrivingAds:
    """Counts the POST /v1/ads requests that reached the app and have not reached the decoder yet (being read,
    validated, checked): the batcher waits for these, and only these, before it decodes."""

    def __init__(self, app, arriving: list[int]) -> None:
        self.app, self.arriving = app, arriving

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != "/v1/ads":
            await self.app(scope, receive, send)
            return
        self.arriving[0] += 1
        scope.setdefault("state", {})["genads_arriving"] = True
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["state"].pop("genads_arriving", False):  # refused before it reached the decoder
                self.arriving[0] -= 1


@dataclass(frozen=True)
class Pending:
    """An ad request on its way through the batcher: the engine's request (before frequency caps), the user's
    hash (None: no user_id), when it was queued, what the served log records of it, and where its answer goes
    (an asyncio future of ``loop``: a batch's answers reach the event loop in one call)."""

    request: SlateRequest
    user: str | None
    queued: float
    log: bool
    """Append the answer to the served log (the console's previews are not served)."""
    user_id: int | str | None
    from_history: bool
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future


def _answer(batch: list[Pending], outcome: list[AdResult] | BaseException) -> None:
    """On the event loop: each waiting request gets its result (or the batch's error)."""
    for i, p in enumerate(batch):
        if p.done.done():  # the client went away
            continue
        if isinstance(outcome, BaseException):
            p.done.set_exception(outcome)
        else:
            p.done.set_result(outcome[i])


def pending_user(p: Pending) -> str | None:
    return p.user


ApiKey = Annotated[str | None, Security(API_KEY)]


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


def campaign_out(engine: AdEngine, c: Campaign) -> CampaignOut:
    return CampaignOut(campaign_id=c.campaign_id, advertiser=engine.advertiser_label(c.advertiser_id),
                       advertiser_id=c.advertiser_id, name=c.name, ads=[_label(engine, a) for a in c.ad_ids],
                       ad_ids=list(c.ad_ids),
                       bid=c.bid_micros / MICROS, budget=c.budget_micros / MICROS, spent=c.spent_micros / MICROS,
                       remaining=c.remaining_micros / MICROS, status=c.status, serving=c.serving,
                       invalid_clicks=c.invalid_clicks, refunded=c.refunded_micros / MICROS)


def _label(engine: AdEngine, ad_id: int) -> int | str:
    try:
        return engine.ad_label(ad_id)
    except KeyError:  # a campaign's ad the bundle's vocabulary does not hold (kept from an older bundle)
        return ad_id


def key_out(engine: AdEngine, k: KeyInfo) -> KeyInfoOut:
    return KeyInfoOut(key_id=k.key_id, advertiser_id=k.advertiser_id,
                      advertiser=None if k.advertiser_id is None else engine.advertiser_label(k.advertiser_id), is_admin=k.is_admin, created_at=k.created_at,
                      revoked_at=k.revoked_at, live=k.revoked_at is None, publisher=k.publisher)


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


def create_app(engine: AdEngine, banners: BannerCache | None = None, *, limits: Limits | None = None,
               public_url: str | None = None, on_admin_rotate: Callable[[str], None] | None = None,
               clicks_need_impression: bool = True, served_log: ServedLog | None = None,
               traffic: TrafficPolicy | None = None, clock: Callable[[], float] = time.time,
               public_metrics: bool = False, docs: bool = False, admin_rotation: bool = True) -> FastAPI:
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
        traffic: publisher keys, rate limits, frequency caps, invalid-click rules (defaults:
            :class:`~genads.serve.traffic.TrafficPolicy`, keys required).
        clock: the time those rules count in, and events are stored at (tests drive it).
        public_metrics: ``/metrics`` answers anyone (default: the admin key only).
        docs: serve ``/docs``, ``/redoc`` and ``/openapi.json`` (default: off; the schema maps every route).
        admin_rotation: the admin may rotate its key through the API (False when it comes from the environment,
            where only its owner can change it: a rotation would leave a server that cannot restart).
    """
    ledger = engine.ledger
    metrics = Metrics()
    limits = limits or Limits()
    banners = banners or BannerCache(engine.bundle.ads)
    base = (public_url or "").rstrip("/")
    arriving = [0]

    def decide(batch: list[Pending]) -> list[AdResult]:  # in the decoding thread, one batch at a time
        start = time.perf_counter()
        engine.secrets.reload()  # sign with the current secret within a second of a rotation
        requests = []
        for p in batch:  # caps as they stand now: a user is in one request of a batch at most (the batcher's key)
            metrics.queue_wait.observe(start - p.queued)
            capped_ads, campaign_room = guard.capped(p.user)
            requests.append(replace(p.request, exclude=p.request.exclude | capped_ads, campaign_room=campaign_room))
        results = engine.serve_batch(requests)
        metrics.batches.inc()
        metrics.batched.inc(len(requests))
        for p, result in zip(batch, results, strict=True):
            guard.served(p.user, [(s.ad_id, s.campaign_id) for s in result.placements])
        if served_log is not None:
            served_log.slates([(r.request_id, p.user_id, r.placements, r.mechanism, p.from_history)
                               for p, r in zip(batch, results, strict=True) if p.log])
        return results

    def decide_and_answer(batch: list[Pending]) -> list[AdResult]:
        try:
            outcome: list[AdResult] | BaseException = decide(batch)
        except BaseException as err:
            outcome = err
        loops: dict[asyncio.AbstractEventLoop, list[int]] = {}
        for i, p in enumerate(batch):
            loops.setdefault(p.loop, []).append(i)
        for loop, rows in loops.items():  # one wake-up of each event loop per batch, not one per request
            part = outcome if isinstance(outcome, BaseException) else [outcome[i] for i in rows]
            loop.call_soon_threadsafe(_answer, [batch[i] for i in rows], part)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    batcher: MicroBatcher[Pending, AdResult] = MicroBatcher(
        decide_and_answer, BatchConfig(max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms, max_queue=limits.max_queue),
        start=False, key=pending_user, arriving=lambda: arriving[0])
    app_started = [False]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close(timeout=1.0)
        writer.close(timeout=5.0)

    hidden = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="genads", version="1", description="Generative ads: slates, prices, creatives, budgets.",
                  lifespan=lifespan, **hidden)
    app.router.route_class = StrictJSONRoute
    app.state.engine, app.state.metrics, app.state.limits = engine, metrics, limits
    guard = app.state.traffic = TrafficGuard(traffic or TrafficPolicy(), clock)

    app.add_middleware(ArrivingAds, arriving=arriving)
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

    def metrics_reader(request: Request, key: ApiKey = None) -> None:
        if public_metrics:
            return
        if not principal(request, key).is_admin:
            raise field_error(403, ["header", "X-API-Key"], "/metrics needs the admin key (or --public-metrics)")

    @app.get("/metrics", tags=["ops"], response_class=Response, dependencies=[Depends(metrics_reader)])
    def prometheus() -> Response:
        metrics.live_ads.set(len(engine.live))
        metrics.queue.set(batcher.pending)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def slate_request(req: AdRequest, user: str | None) -> SlateRequest:
        """The engine's request: history as items (422 naming an unknown ad), exclusions as ad ids."""
        if req.history is not None:
            items, bad = engine.history_items(req.history)
            if bad is not None:
                raise field_error(422, ["body", "history", bad], f"unknown ad_id {req.history[bad]}")
        else:
            items = engine.user_history(req.user_id) if req.user_id is not None else np.zeros(0, np.int64)
        exclude = frozenset({engine.ad_index(ad) for ad in req.context.exclude} - {None})
        return SlateRequest(items, req.slots, exclude, None, user or "")

    async def decode(req: AdRequest, user: str | None = None, scope: dict | None = None, log: bool = False) -> AdResult:
        """The slate for a request, built by the batcher's thread (503 when ``limits.max_queue`` are pending)."""
        return (await decode_request(req, user, scope, log))[0]

    async def decode_request(req: AdRequest, user: str | None, scope: dict | None,
                             log: bool) -> tuple[AdResult, SlateRequest]:
        """:func:`decode`, also returning the engine's request (the history it ranked by)."""
        if scope is not None and scope.get("state", {}).pop("genads_arriving", False):
            arriving[0] -= 1  # it reaches the decoder now (or is refused)
        loop = asyncio.get_running_loop()
        pending = Pending(slate_request(req, user), user, time.perf_counter(), log, req.user_id, req.history is not None,
                          loop, loop.create_future())
        if not app_started[0]:
            app_started[0] = True
            batcher.start()
        try:
            batcher.submit(pending)
        except Overloaded:
            raise StarletteHTTPException(503, headers={"Retry-After": "1"}, detail=[
                {"loc": ["server", "queue"], "msg": f"{batcher.pending} ad requests are waiting; retry",
                 "type": "busy"}]) from None
        return await pending.done, pending.request

    app.state.decode = decode  # the console's slate preview decodes through the same thread and queue bound
    app.state.batcher = batcher

    @app.post("/v1/ads", response_model=AdResponse, tags=["ads"],
              responses={503: {"description": "too many requests waiting for decoding (see Retry-After)"}})
    async def ads(req: AdRequest, caller: AdsCaller, request: Request) -> JSONResponse:
        # decoded in the worker thread, answered as built JSON (re-validating the response costs more than the auction)
        result, ranked = await decode_request(req, None if req.user_id is None else user_hash(req.user_id),
                                              request.scope, log=True)
        metrics.mechanism.labels(result.mechanism).inc()
        metrics.slots.labels("requested").inc(req.slots)
        metrics.slots.labels("filled").inc(len(result.placements))
        slate = [{"ad": engine.ad_label(p.ad_id), "ad_id": p.ad_id, "position": p.position, "campaign_id": p.campaign_id, "price": p.price,
                  "pctr": p.pctr, "creative": {"title": p.title, "image_url": f"{base}/v1/creatives/{p.ad_id}/banner.png"},
                  "token": p.token} for p in result.placements]
        return JSONResponse({"request_id": result.request_id, "mechanism": result.mechanism, "slate": slate,
                             "cold_start": len(ranked.history) == 0})  # ranked without any history

    @app.get("/v1/creatives/{ad_id}/banner.png", tags=["ads"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown ad"}})
    def banner(ad_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> Response:
        if ad_id not in banners:
            raise field_error(404, ["path", "ad_id"], f"unknown ad {ad_id}")
        return Response(banners.png(ad_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/v1/events", response_model=EventOut, tags=["events"],
              responses={409: {"description": "idempotency key reused for another event, the slot's event "
                                              "already recorded under another key, or a click before its impression"}})
    async def events(ev: EventIn, caller: EventsCaller) -> JSONResponse:
        # async: the token is checked on the loop, the ledger is written by the group writer's thread (one
        # transaction for the events that arrive together), and the answer is built JSON
        engine.secrets.reload()
        try:
            tok = engine.secrets.verify(ev.token, time.time(), engine.config.token_ttl_s)
        except TokenError as err:
            raise field_error(422, ["body", "token"], str(err)) from None
        judged = guard.judge_click(caller, tok.user) if ev.type == "click" else None
        event = Event(ev.idempotency_key, ev.type, tok.campaign_id, tok.ad_id, tok.request_id, tok.price_micros,
                      tok.bid_micros, clock(), judged)
        return JSONResponse(await writer.submit((event, caller, tok.user)))

    def write_events(group: list[tuple[Event, Caller, str]]) -> list[dict | BaseException]:
        """In the group writer's thread: the group's events in one ledger transaction, then what follows each
        (metrics, the served log, click caps and their refunds); a campaign that ran out stops serving before
        any of the group is answered."""
        metrics.event_groups.inc()
        metrics.event_grouped.inc(len(group))
        results = ledger.record_events([e for e, _, _ in group], require_impression=clicks_need_impression,
                                       min_click_delay_s=guard.policy.min_click_delay_s if guard.policy.limits else 0.0)
        out: list[dict | BaseException] = []
        stop = False
        for (event, caller, user), result in zip(group, results, strict=True):
            if isinstance(result, BaseException):
                out.append(result)
                continue
            try:
                recorded(event, caller, user, result)
            except Exception as err:  # this event's answer (a 500); the others stand
                out.append(err)
                continue
            stop = stop or (result.exhausted and bool(result.charged_micros) and not result.duplicate)
            out.append({"idempotency_key": event.idempotency_key, "charged": result.charged_micros / MICROS,
                        "duplicate": result.duplicate, "campaign_exhausted": result.exhausted})
        if stop:
            engine.refresh(force=True)  # the campaign stops serving before these answers
        return out

    def recorded(event: Event, caller: Caller, user: str, result: EventResult) -> None:
        outcome = "duplicate" if result.duplicate else "invalid" if result.invalid else "recorded"
        metrics.events.labels(event.type, outcome).inc()
        if result.duplicate:
            return
        metrics.charged.inc(result.charged_micros)
        if served_log is not None:
            served_log.event(event.request_id, event.type, event.ad_id, result.charged_micros / MICROS,
                             invalid=result.invalid)
        if event.type == "click":
            slot = (event.request_id, event.idempotency_key)
            for (request_id, key), reason in guard.clicked(caller, user, slot, result.charged_micros, result.invalid):
                refund(request_id, key, reason)

    writer: GroupWriter[tuple[Event, Caller, str], dict] = GroupWriter(write_events)

    def refund(request_id: str, key: str, reason: str) -> int:
        amount = ledger.refund(request_id, key, reason, at=clock())
        if amount:
            metrics.refunded.inc(amount)
            engine.mark_stale()  # a campaign that had run out serves again
            found = ledger.refund_of(request_id, key)
            if served_log is not None and found is not None:
                served_log.refund(request_id, found.ad_id, amount / MICROS, reason)
        return amount

    @app.post("/v1/campaigns", response_model=CampaignOut, status_code=201, tags=["campaigns"])
    def create(body: CampaignIn, who: Who) -> CampaignOut:
        return campaign_out(engine, actions.create_campaign(engine, body, who))

    @app.get("/v1/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
    def list_campaigns(who: Who) -> list[CampaignOut]:
        return [campaign_out(engine, c) for c in ledger.campaigns(None if who.is_admin else who.advertiser_id)]

    @app.get("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def get_campaign(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(engine, actions.owned(ledger, campaign_id, who))

    @app.patch("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
    def update(campaign_id: CampaignId, body: CampaignPatch, who: Who) -> CampaignOut:
        return campaign_out(engine, actions.update_campaign(engine, campaign_id, body, who))

    @app.post("/v1/campaigns/{campaign_id}/pause", response_model=CampaignOut, tags=["campaigns"])
    def pause(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(engine, actions.set_status(engine, campaign_id, who, "paused"))

    @app.post("/v1/campaigns/{campaign_id}/resume", response_model=CampaignOut, tags=["campaigns"])
    def resume(campaign_id: CampaignId, who: Who) -> CampaignOut:
        return campaign_out(engine, actions.set_status(engine, campaign_id, who, "active"))

    @app.get("/v1/campaigns/{campaign_id}/traffic", response_model=TrafficOut, tags=["campaigns"])
    def traffic_report(campaign_id: CampaignId, who: Who) -> TrafficOut:
        """Invalid clicks and refunds of a campaign (by reason), and its latest refunds (at most 1,000)."""
        c = actions.owned(ledger, campaign_id, who)
        refunds = [RefundOut(request_id=r.request_id, idempotency_key=r.idempotency_key, ad_id=r.ad_id,
                             amount=r.amount_micros / MICROS, reason=r.reason, created_at=r.created_at)
                   for r in ledger.refunds(campaign_id)]
        return TrafficOut(campaign_id=campaign_id, invalid_clicks=c.invalid_clicks, refunded=c.refunded_micros / MICROS,
                          invalid_by_reason=ledger.invalid_counts(campaign_id), refunds=refunds)

    @app.post("/v1/refunds", response_model=RefundOut, status_code=201, tags=["campaigns"])
    def refund_event(body: RefundIn, who: Who) -> RefundOut:
        """The admin refunds one charged event (a click found invalid on review); idempotent."""
        if not who.is_admin:
            raise field_error(403, ["header", "X-API-Key"], "only the admin key refunds events")
        refund(body.request_id, body.idempotency_key, body.reason)
        found = ledger.refund_of(body.request_id, body.idempotency_key)
        if found is None:
            raise field_error(409, ["body", "idempotency_key"], "this event was charged nothing: there is nothing to refund")
        return RefundOut(request_id=found.request_id, idempotency_key=found.idempotency_key, ad_id=found.ad_id,
                         amount=found.amount_micros / MICROS, reason=found.reason, created_at=found.created_at)

    @app.post("/v1/publishers/{publisher}/keys", response_model=KeyOut, status_code=201, tags=["keys"])
    def new_publisher_key(publisher: Publisher, who: Who) -> KeyOut:
        """A publisher (placement) key: it asks for ads and reports events, nothing else (the admin only)."""
        if not who.is_admin:
            raise field_error(403, ["header", "X-API-Key"], "only the admin key issues publisher keys")
        key = ledger.add_key(None, publisher=publisher)
        return KeyOut(advertiser_id=None, key_id=key_id(key), api_key=key, publisher=publisher)

    @app.post("/v1/advertisers/{advertiser}/keys", response_model=KeyOut, status_code=201, tags=["keys"])
    def new_key(advertiser: Annotated[str, Path(min_length=1, max_length=256)], who: Who) -> KeyOut:
        """A key for the advertiser named by the dataset's id (``shop-3``) or the service's integer id."""
        named: int | str = int(advertiser) if advertiser.isascii() and advertiser.isdigit() else advertiser
        if isinstance(named, int) and named > 2**63 - 1:
            raise field_error(422, ["path", "advertiser"], "an integer advertiser id is below 2**63")
        advertiser_id = actions.advertiser(engine, named, ["path", "advertiser"])
        key = actions.issue_key(ledger, who, advertiser_id)
        return KeyOut(advertiser=engine.advertiser_label(advertiser_id), advertiser_id=advertiser_id,
                      key_id=key_id(key), api_key=key)

    @app.get("/v1/keys", response_model=list[KeyInfoOut], tags=["keys"])
    def list_keys(who: Who) -> list[KeyInfoOut]:
        """The admin sees every key; an advertiser its own. Keys themselves are never shown again, only ids."""
        return [key_out(engine, k) for k in ledger.list_keys(None if who.is_admin else who.advertiser_id)]

    @app.delete("/v1/keys/{key_id}", response_model=KeyInfoOut, tags=["keys"])
    def revoke(key_id: KeyId, who: Who) -> KeyInfoOut:
        """Revoke a key at once (an advertiser: only its own; another's answers 404 like an unknown id)."""
        return key_out(engine, ledger.revoke_key(key_id, None if who.is_admin else who.advertiser_id))

    @app.post("/v1/keys/rotate", response_model=KeyOut, status_code=201, tags=["keys"])
    def rotate(who: Who, key: ApiKey = None) -> KeyOut:
        """A new key for the caller; the key that made this call stops working at once."""
        if who.is_admin and not admin_rotation:
            raise field_error(409, ["header", "X-API-Key"], "the admin key comes from $GENADS_ADMIN_KEY: change it "
                                                            "there and restart (a rotation here would void it)")
        new = ledger.rotate_key(key)
        if who.is_admin and on_admin_rotate is not None:
            on_admin_rotate(new)
        label = None if who.advertiser_id is None else engine.advertiser_label(who.advertiser_id)
        return KeyOut(advertiser=label, advertiser_id=who.advertiser_id, key_id=key_id(new), api_key=new)

    mount_console(app, public_url=public_url)
    return app
