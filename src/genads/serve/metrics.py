"""Prometheus metrics of the ad service, for one server process or several (``genads serve --workers N``).

With one process the metrics live in the process's own registry, with its CPU and memory
(``process_*``). With several, :func:`enable_multiprocess` runs in the supervisor before the workers
fork: every worker then writes its counters and histograms to files in one folder (Prometheus'
multiprocess mode) and ``/metrics``, whichever worker answers it, sums them over all workers, the
dead ones' counts included (a counter never goes back). Per-process collectors cannot be summed, so
``process_*`` and ``python_*`` are left out in that mode; the two gauges are the answering worker's
values (all workers serve the same live set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The folder of the workers' metric files (prometheus_client's own variable)."""
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0)


def enable_multiprocess(folder: str | Path) -> Path:
    """Metrics created from now on (in this process and in processes forked from it) are written to files in
    ``folder``, emptied first; returns the folder. Call it in the supervisor before forking the workers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # a previous run's counts must not be summed into this one's
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    values.ValueClass = values.MultiProcessValue()  # read when a metric is created, not at import
    return folder


def multiprocess_dir() -> Path | None:
    """The metric files' folder when multiprocess mode is on, else None."""
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder and values.ValueClass is not values.MutexValue else None


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


class Metrics:
    """The service's metrics, in this process's registry; :meth:`exposition` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.folder = multiprocess_dir()
        self.requests = Counter("genads_http_requests_total", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("genads_http_request_duration_seconds", "Request latency", ["route"], registry=r,
                                 buckets=LATENCY_BUCKETS)
        self.events = Counter("genads_events_total", "Events", ["type", "outcome"], registry=r)
        self.charged = Counter("genads_charged_micros", "Money charged, in micros (1e-6 currency units)", registry=r)
        self.refunded = Counter("genads_refunded_micros", "Charges refunded for invalid clicks, in micros", registry=r)
        self.mechanism = Counter("genads_auctions_total", "Ad requests by pricing mechanism", ["mechanism"], registry=r)
        self.slots = Counter("genads_slots_total", "Slots asked for by POST /v1/ads, and filled", ["outcome"], registry=r)
        self.live_ads = Gauge("genads_live_ads", "Ads that can be served", registry=r,
                              multiprocess_mode="livemostrecent")
        self.queue = Gauge("genads_ads_queue", "POST /v1/ads requests decoding or waiting to (the answering worker's)",
                           registry=r, multiprocess_mode="livemostrecent")
        self.queue_wait = Histogram("genads_ads_queue_wait_seconds", "Time an ad request waited for the decoder",
                                    registry=r, buckets=WAIT_BUCKETS)
        self.batches = Counter("genads_ads_batches", "Micro-batches decoded (ad requests per batch: "
                               "genads_ads_batched_requests / this)", registry=r)
        self.batched = Counter("genads_ads_batched_requests", "Ad requests decoded in micro-batches", registry=r)
        self.event_groups = Counter("genads_event_groups", "Ledger transactions of the group writer (events per "
                                    "group: genads_event_group_events / this)", registry=r)
        self.event_grouped = Counter("genads_event_group_events", "Events written by the group writer", registry=r)
        self.started = time.time()
        if self.folder is None:  # per-process figures: meaningless as a sum over workers
            ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
            PlatformCollector(registry=r)

    def view(self) -> CollectorRegistry:
        """The registry to read: this process's, or one that sums every worker's files (made anew per call)."""
        if self.folder is None:
            return self.registry
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(self.folder))
        return merged

    def exposition(self) -> bytes:
        """The ``/metrics`` body: the text format of :meth:`view`."""
        return generate_latest(self.view())
