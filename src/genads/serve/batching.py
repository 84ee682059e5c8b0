"""Micro-batching of ad requests: concurrent requests share one decoder forward.

Scoring a batch of histories costs little more than scoring one (the exact scores of every live ad are one
matrix product per batch; beam search runs its levels for all rows at once), so under concurrency the engine's
cost per request falls with the batch. :class:`MicroBatcher` holds a request for at most ``max_wait_ms`` while
others arrive (never longer, so a lone request pays at most that wait), then runs up to ``max_batch`` of them
through one call of its ``serve`` function (:meth:`genads.serve.engine.AdEngine.serve_batch`, or the app's
wrapper that adds the frequency caps) on one worker thread; torch releases the GIL while it computes, so the
event loop and the other handler threads keep running. At most ``max_queue`` requests are pending (waiting or
in the batch being decoded): more are refused at once (:class:`Overloaded`), which the service answers with
503 + Retry-After as before.

Requests that share a key (the user's hash: what the frequency caps count by) never share a batch: the later
one waits for the next batch, so that it sees the caps after the earlier one was served, exactly as one by one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from genads.serve.engine import AdRequest

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(RuntimeError):
    """The batcher's queue is full: answer 503 and let the client retry."""


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 32
    """Requests decoded together at most."""
    max_wait_ms: float = 2.0
    """How long the first request of a batch waits for others (0: decode whatever is queued, no waiting)."""
    max_queue: int = 1024
    """Requests pending at most (waiting, or in the batch being decoded); more are refused (Overloaded)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1:
            raise ValueError(f"max_batch={self.max_batch} and max_queue={self.max_queue} must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms} must be >= 0")


def user_key(request: AdRequest) -> str | None:
    """Requests for the same user (its hash) go to different batches; anonymous ones (history only) never clash."""
    return request.user or None


class MicroBatcher(Generic[T, R]):
    """Collects requests from many threads (or an event loop) and serves them in batches on one worker thread.

    Args:
        serve: a batch of requests -> one result each, in order (an exception fails every request of the batch).
        key: requests with the same non-None key are never in one batch (arrival order is kept per key).
        arriving: how many requests are on their way (arrived at the service, not submitted yet): a batch waits
            for more only while this is above 0 (and ``max_wait_ms`` has not passed). None: it always waits.
    """

    def __init__(self, serve: Callable[[list[T]], Sequence[R]], config: BatchConfig | None = None, start: bool = True,
                 key: Callable[[T], str | None] = user_key, arriving: Callable[[], int] | None = None) -> None:
        self.serve_batch, self.config, self.key, self.arriving = serve, config or BatchConfig(), key, arriving
        self._waiting: deque[tuple[T, Future]] = deque()
        self._ready = threading.Condition()
        self._stop = False
        self.pending = 0
        """Requests submitted and not yet answered (the queue bound counts these)."""
        self.batches = 0
        """Batches taken so far, the one decoding included (with :attr:`requests`, the mean batch size)."""
        self.requests = 0
        self._worker = threading.Thread(target=self._run, name="genads-batcher", daemon=True)
        if start:
            self._worker.start()

    def start(self) -> None:
        """Start the worker (when made with ``start=False``: requests queued before are then served together)."""
        self._worker.start()

    def submit(self, request: T) -> Future:
        """Queue ``request``; its result (or the exception of its batch) arrives in the returned future."""
        future: Future = Future()
        with self._ready:
            if self._stop:
                raise RuntimeError("the batcher is closed")
            if self.pending >= self.config.max_queue:
                raise Overloaded(f"{self.pending} ad requests are waiting")
            self.pending += 1
            self._waiting.append((request, future))
            self._ready.notify()
        return future

    def serve(self, request: T, timeout: float | None = 30.0) -> R:
        """:meth:`submit` and wait for the result."""
        return self.submit(request).result(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking requests; those already queued are still served."""
        with self._ready:
            self._stop = True
            self._ready.notify()
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _take(self) -> list[tuple[T, Future]]:
        """The next batch: the oldest requests, waiting at most ``max_wait_ms`` after the first for more, one
        per key (a request whose key is taken stays queued, in order, for the next batch)."""
        with self._ready:
            while not self._waiting:
                if self._stop:
                    return []
                self._ready.wait(0.1)
            deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
            batch, keys, looked = [], set(), 0
            while len(batch) < self.config.max_batch:
                if looked == len(self._waiting):  # everything queued was looked at: wait for more, or go
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stop or (self.arriving is not None and self.arriving() <= 0):
                        break
                    self._ready.wait(left if self.arriving is None else min(left, 0.0005))
                    continue
                request, future = self._waiting[looked]
                k = self.key(request)
                if k is not None and k in keys:
                    looked += 1
                    continue
                del self._waiting[looked]
                keys.add(k)
                batch.append((request, future))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return  # stopped, nothing left
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            if live:
                with self._ready:
                    self.batches += 1
                    self.requests += len(live)
            try:
                results = self.serve_batch([r for r, _ in live]) if live else []
            except BaseException as exc:  # every waiter learns of it; the worker goes on
                results, error = None, exc
            with self._ready:
                self.pending -= len(batch)
            for i, (_, f) in enumerate(live):
                if results is None:
                    f.set_exception(error)
                else:
                    f.set_result(results[i])
