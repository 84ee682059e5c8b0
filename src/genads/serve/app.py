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

Decoding runs in one worker thread beside the event loop, micro-batched (:mod:`genads.serve.decoding`):
ad requests that arrive together are scored in one batched forward (up to ``Limits.max_batch``; a batch's
first request waits at most ``Limits.batch_wait_ms`` for requests already arriving, a lone one not at all),
then auctioned, capped and signed one by one, each exactly as if it had come alone. /healthz and the event
and campaign routes answer while slates are built; at most ``Limits.max_queue`` ad requests are pending,
more get 503 with ``Retry-After``. Latency is measured from the moment a request reaches the app, so
queueing is included.

The routes are FastAPI routers in :mod:`genads.serve.api` (``ops``, ``ads``, ``campaigns``, ``keys``) whose handlers
get the app's :class:`~genads.serve.api.deps.ApiState`, the engine and the caller as dependencies;
:func:`create_app` only builds that state, includes the routers (and the console's) and adds the middleware.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from genads.serve.access_log import RequestLogMiddleware
from genads.serve.api import ads, campaigns, keys, ops
from genads.serve.api.deps import ApiState
from genads.serve.api.errors import MetricsMiddleware, add_error_handlers
from genads.serve.console import mount_console
from genads.serve.creatives import BannerCache
from genads.serve.decoding import ArrivingAds, Decoder
from genads.serve.engine import AdEngine
from genads.serve.limits import Limits, LimitsMiddleware, StrictJSONRoute
from genads.serve.metrics import Metrics
from genads.serve.recording import Recorder
from genads.serve.served_log import ServedLog
from genads.serve.traffic import TrafficGuard, TrafficPolicy


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
    metrics = Metrics()
    limits = limits or Limits()
    guard = TrafficGuard(traffic or TrafficPolicy(), clock)
    decoder = Decoder(engine, metrics, guard, limits, served_log)
    recorder = Recorder(engine, metrics, guard, served_log, clicks_need_impression=clicks_need_impression, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        decoder.batcher.close(timeout=1.0)
        recorder.writer.close(timeout=5.0)

    hidden = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="genads", version="1", description="Generative ads: slates, prices, creatives, budgets.",
                  lifespan=lifespan, **hidden)
    app.router.route_class = StrictJSONRoute
    app.state.engine, app.state.metrics, app.state.limits, app.state.traffic = engine, metrics, limits, guard
    app.state.api = ApiState(engine, metrics, guard, decoder, recorder, banners or BannerCache(engine.bundle.ads),
                             (public_url or "").rstrip("/"), clock, public_metrics, admin_rotation, on_admin_rotate)
    app.state.decode = decoder.decode  # the console's slate preview decodes through the same thread and queue bound
    app.state.batcher = decoder.batcher

    app.add_middleware(ArrivingAds, arriving=decoder.arriving)
    app.add_middleware(LimitsMiddleware, limits=limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # sees refusals and 500s too
    app.add_middleware(RequestLogMiddleware)  # outermost: every answer carries X-Request-ID and is logged
    add_error_handlers(app)
    for part in (ops, ads, campaigns, keys):
        app.include_router(part.router)
    mount_console(app, public_url=public_url)
    return app
