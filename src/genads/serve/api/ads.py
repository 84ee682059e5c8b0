"""Ads and events: ``POST /v1/ads`` (a slate: decoded in the batcher's thread, auctioned, signed),
``GET /v1/creatives/{ad_id}/banner.png``, ``POST /v1/events`` (charged by the signed slot token it carries, at most
once per slot; an invalid click is recorded and charged nothing, or refunded)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from genads.serve.actions import field_error
from genads.serve.api.deps import AdsCaller, EventsCaller, State
from genads.serve.ledger import Event
from genads.serve.limits import StrictJSONRoute
from genads.serve.schemas import AdRequest, AdResponse, EventIn, EventOut
from genads.serve.tokens import TokenError, user_hash

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/ads", response_model=AdResponse, tags=["ads"],
             responses={503: {"description": "too many requests waiting for decoding (see Retry-After)"}})
async def ads(req: AdRequest, caller: AdsCaller, request: Request, api: State) -> JSONResponse:
    # decoded in the worker thread, answered as built JSON (re-validating the response costs more than the auction)
    result, ranked = await api.decoder.decode_request(req, None if req.user_id is None else user_hash(req.user_id),
                                                      request.scope, log=True)
    metrics, engine, base = api.metrics, api.engine, api.base
    metrics.mechanism.labels(result.mechanism).inc()
    metrics.slots.labels("requested").inc(req.slots)
    metrics.slots.labels("filled").inc(len(result.placements))
    slate = [{"ad": engine.ad_label(p.ad_id), "ad_id": p.ad_id, "position": p.position, "campaign_id": p.campaign_id, "price": p.price,
              "pctr": p.pctr, "creative": {"title": p.title, "image_url": f"{base}/v1/creatives/{p.ad_id}/banner.png"},
              "token": p.token} for p in result.placements]
    return JSONResponse({"request_id": result.request_id, "mechanism": result.mechanism, "slate": slate,
                         "cold_start": len(ranked.history) == 0})  # ranked without any history


@router.get("/v1/creatives/{ad_id}/banner.png", tags=["ads"], response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown ad"}})
def banner(ad_id: Annotated[int, Path(ge=0, le=2**63 - 1)], api: State) -> Response:
    if ad_id not in api.banners:
        raise field_error(404, ["path", "ad_id"], f"unknown ad {ad_id}")
    return Response(api.banners.png(ad_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.post("/v1/events", response_model=EventOut, tags=["events"],
             responses={409: {"description": "idempotency key reused for another event, the slot's event "
                                             "already recorded under another key, or a click before its impression"}})
async def events(ev: EventIn, caller: EventsCaller, api: State) -> JSONResponse:
    # async: the token is checked on the loop, the ledger is written by the group writer's thread (one
    # transaction for the events that arrive together), and the answer is built JSON
    engine = api.engine
    engine.secrets.reload()
    try:
        tok = engine.secrets.verify(ev.token, time.time(), engine.config.token_ttl_s)
    except TokenError as err:
        raise field_error(422, ["body", "token"], str(err)) from None
    judged = api.guard.judge_click(caller, tok.user) if ev.type == "click" else None
    event = Event(ev.idempotency_key, ev.type, tok.campaign_id, tok.ad_id, tok.request_id, tok.price_micros,
                  tok.bid_micros, api.clock(), judged)
    return JSONResponse(await api.recorder.writer.submit((event, caller, tok.user)))
