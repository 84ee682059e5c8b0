"""Operations: ``/healthz`` (alive), ``/readyz`` (the ledger answers), ``/metrics`` (Prometheus; the admin key
unless ``public_metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from genads.serve.actions import field_error
from genads.serve.api.deps import ApiKey, State, principal
from genads.serve.limits import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], responses={503: {"description": "ledger unreachable"}})
def readyz(api: State) -> JSONResponse:
    ok = api.engine.ledger.ping()
    return JSONResponse({"ready": ok, "live_ads": len(api.engine.live)}, status_code=200 if ok else 503)


def metrics_reader(request: Request, key: ApiKey = None) -> None:
    if request.app.state.api.public_metrics:
        return
    if not principal(request, key).is_admin:
        raise field_error(403, ["header", "X-API-Key"], "/metrics needs the admin key (or --public-metrics)")


@router.get("/metrics", tags=["ops"], response_class=Response, dependencies=[Depends(metrics_reader)])
def prometheus(api: State) -> Response:
    api.metrics.live_ads.set(len(api.engine.live))
    api.metrics.queue.set(api.decoder.batcher.pending)
    return Response(api.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
