"""Micro-batching of ad requests: concurrent requests share one decoder forward.

Scoring a batch of histories costs little more than scoring one (the exact scores of every live ad are one
matrix product per batch; beam search runs its levels for all rows at once), so under concurrency the engine's
cost per request falls with the batch. :class:`MicroBatcher` holds a request for at most ``max_wait_ms`` while
others arrive (never longer, so a lone request pays at most that wait), then runs up to ``max_batch`` of them
through :meth:`genads.serve.engine.AdEngine.serve_batch` on one worker thread; torch releases the GIL while
it computes, so the event loop and the other handler threads keep running. A full queue is refused at once
(:class:`Overloaded`), which the service answers with 503 + Retry-After as before.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from genads.serve.engine import AdEngine, AdRequest, AdResult


class Overloaded(RuntimeError):
    """The batcher's queue is full: answer 503 and let the client retry."""


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 32
    """Requests decoded together at most."""
    max_wait_ms: float = 2.0
    """How long the first request of a batch waits for others (0: decode whatever is queued, no waiting)."""
    max_queue: int = 1024
    """Requests waiting at most; more are refused (Overloaded)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1:
            raise ValueError(f"max_batch={self.max_batch} and max_queue={self.max_queue} must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms} must be >= 0")


class MicroBatcher:
    """Collects :class:`AdRequest` s from many threads and serves them in batches on one worker thread."""

    def __init__(self, engine: AdEngine, config: BatchConfig | None = None, start: bool = True) -> None:
        self.engine, self.config = engine, config or BatchConfig()
        self._queue: queue.Queue[tuple[AdRequest, Future]] = queue.Queue(self.config.max_queue)
        self._stop = threading.Event()
        self.batches = 0
        """Batches decoded so far (with :attr:`requests`, the mean batch size)."""
        self.requests = 0
        self._worker = threading.Thread(target=self._run, name="genads-batcher", daemon=True)
        if start:
            self._worker.start()

    def start(self) -> None:
        """Start the worker (when made with ``start=False``: requests queued before are then served together)."""
        self._worker.start()

    def submit(self, request: AdRequest) -> Future:
        """Queue ``request``; its :class:`AdResult` (or the engine's exception) arrives in the returned future."""
        if self._stop.is_set():
            raise RuntimeError("the batcher is closed")
        future: Future = Future()
        try:
            self._queue.put_nowait((request, future))
        except queue.Full:
            raise Overloaded(f"{self.config.max_queue} ad requests already waiting") from None
        return future

    def serve(self, request: AdRequest, timeout: float | None = 30.0) -> AdResult:
        """:meth:`submit` and wait for the result."""
        return self.submit(request).result(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking requests; those already queued are still served."""
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _take(self) -> list[tuple[AdRequest, Future]]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
        while len(batch) < self.config.max_batch:
            left = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._take()
            if not batch:
                continue
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self.engine.serve_batch([r for r, _ in live])
            except BaseException as exc:  # every waiter learns of it; the worker goes on
                for _, f in live:
                    f.set_exception(exc)
                continue
            self.batches += 1
            self.requests += len(live)
            for (_, f), result in zip(live, results, strict=True):
                f.set_result(result)
