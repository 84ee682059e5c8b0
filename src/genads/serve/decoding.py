"""Ad requests on their way to the decoder: micro-batched in one worker thread beside the event loop.

Ad requests that arrive together are scored in one batched forward (:mod:`genads.serve.batching`; up to
``Limits.max_batch``; a batch's first request waits at most ``Limits.batch_wait_ms`` for requests already
arriving, a lone one not at all), then auctioned, capped and signed one by one, each exactly as if it had come
alone. At most ``Limits.max_queue`` ad requests are pending; more get 503 with ``Retry-After``.
:class:`ArrivingAds` counts the requests read and validated but not yet submitted: only those are worth waiting
for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import numpy as np
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve.actions import field_error
from genads.serve.batching import BatchConfig, MicroBatcher, Overloaded
from genads.serve.engine import AdEngine, AdResult
from genads.serve.engine import AdRequest as SlateRequest
from genads.serve.limits import Limits
from genads.serve.metrics import Metrics
from genads.serve.schemas import AdRequest
from genads.serve.served_log import ServedLog
from genads.serve.traffic import TrafficGuard


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


class Decoder:
    """The app's way to the engine: requests are queued (503 when ``limits.max_queue`` are pending), decoded in
    batches by the batcher's thread (started by the first request), capped and logged there, and answered on
    the event loop they came from."""

    def __init__(self, engine: AdEngine, metrics: Metrics, guard: TrafficGuard, limits: Limits,
                 served_log: ServedLog | None) -> None:
        self.engine, self.metrics, self.guard, self.served_log = engine, metrics, guard, served_log
        self.arriving = [0]
        """POST /v1/ads requests between arrival and the decoder (:class:`ArrivingAds` counts them)."""
        self.batcher: MicroBatcher[Pending, AdResult] = MicroBatcher(
            self.decide_and_answer, BatchConfig(max_batch=limits.max_batch, max_wait_ms=limits.batch_wait_ms,
                                                max_queue=limits.max_queue),
            start=False, key=pending_user, arriving=lambda: self.arriving[0])
        self._started = False

    def decide(self, batch: list[Pending]) -> list[AdResult]:  # in the decoding thread, one batch at a time
        start = time.perf_counter()
        self.engine.secrets.reload()  # sign with the current secret within a second of a rotation
        requests = []
        for p in batch:  # caps as they stand now: a user is in one request of a batch at most (the batcher's key)
            self.metrics.queue_wait.observe(start - p.queued)
            capped_ads, campaign_room = self.guard.capped(p.user)
            requests.append(replace(p.request, exclude=p.request.exclude | capped_ads, campaign_room=campaign_room))
        results = self.engine.serve_batch(requests)
        self.metrics.batches.inc()
        self.metrics.batched.inc(len(requests))
        for p, result in zip(batch, results, strict=True):
            self.guard.served(p.user, [(s.ad_id, s.campaign_id) for s in result.placements])
        if self.served_log is not None:
            self.served_log.slates([(r.request_id, p.user_id, r.placements, r.mechanism, p.from_history)
                                    for p, r in zip(batch, results, strict=True) if p.log])
        return results

    def decide_and_answer(self, batch: list[Pending]) -> list[AdResult]:
        try:
            outcome: list[AdResult] | BaseException = self.decide(batch)
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

    def slate_request(self, req: AdRequest, user: str | None) -> SlateRequest:
        """The engine's request: history as items (422 naming an unknown ad), exclusions as ad ids."""
        engine = self.engine
        if req.history is not None:
            items, bad = engine.history_items(req.history)
            if bad is not None:
                raise field_error(422, ["body", "history", bad], f"unknown ad_id {req.history[bad]}")
        else:
            items = engine.user_history(req.user_id) if req.user_id is not None else np.zeros(0, np.int64)
        exclude = frozenset({engine.ad_index(ad) for ad in req.context.exclude} - {None})
        return SlateRequest(items, req.slots, exclude, None, user or "")

    async def decode(self, req: AdRequest, user: str | None = None, scope: dict | None = None,
                     log: bool = False) -> AdResult:
        """The slate for a request, built by the batcher's thread (503 when ``limits.max_queue`` are pending)."""
        return (await self.decode_request(req, user, scope, log))[0]

    async def decode_request(self, req: AdRequest, user: str | None, scope: dict | None,
                             log: bool) -> tuple[AdResult, SlateRequest]:
        """:meth:`decode`, also returning the engine's request (the history it ranked by)."""
        if scope is not None and scope.get("state", {}).pop("genads_arriving", False):
            self.arriving[0] -= 1  # it reaches the decoder now (or is refused)
        loop = asyncio.get_running_loop()
        pending = Pending(self.slate_request(req, user), user, time.perf_counter(), log, req.user_id,
                          req.history is not None, loop, loop.create_future())
        if not self._started:
            self._started = True
            self.batcher.start()
        try:
            self.batcher.submit(pending)
        except Overloaded:
            raise StarletteHTTPException(503, headers={"Retry-After": "1"}, detail=[
                {"loc": ["server", "queue"], "msg": f"{self.batcher.pending} ad requests are waiting; retry",
                 "type": "busy"}]) from None
        return await pending.done, pending.request
