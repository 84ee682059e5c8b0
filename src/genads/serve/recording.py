"""Recording events and refunds: what follows POST /v1/events and POST /v1/refunds in the ledger.

Events are written by the group writer's thread (:mod:`genads.serve.group_commit`: one transaction for the events
that arrive together); then each recorded event is counted, appended to the served log, and, for a click, handed
to the click caps, whose verdicts may refund earlier clicks. A campaign that ran out stops serving before any of
the group is answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from genads.serve.engine import AdEngine
from genads.serve.group_commit import GroupWriter
from genads.serve.ledger import MICROS, Event, EventResult
from genads.serve.metrics import Metrics
from genads.serve.served_log import ServedLog
from genads.serve.traffic import Caller, TrafficGuard


class Recorder:
    """Writes events (grouped) and refunds to the engine's ledger, with their metrics and served-log lines.

    Args:
        clicks_need_impression: a click is charged only after its slot's impression was recorded (409 before).
        clock: the time events are stored at and refunds dated by.
    """

    def __init__(self, engine: AdEngine, metrics: Metrics, guard: TrafficGuard, served_log: ServedLog | None, *,
                 clicks_need_impression: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.ledger, self.metrics, self.guard = engine, engine.ledger, metrics, guard
        self.served_log, self.clicks_need_impression, self.clock = served_log, clicks_need_impression, clock
        self.writer: GroupWriter[tuple[Event, Caller, str], dict] = GroupWriter(self.write_events)

    def write_events(self, group: list[tuple[Event, Caller, str]]) -> list[dict | BaseException]:
        """In the group writer's thread: the group's events in one ledger transaction, then what follows each
        (metrics, the served log, click caps and their refunds); a campaign that ran out stops serving before
        any of the group is answered."""
        self.metrics.event_groups.inc()
        self.metrics.event_grouped.inc(len(group))
        policy = self.guard.policy
        results = self.ledger.record_events([e for e, _, _ in group], require_impression=self.clicks_need_impression,
                                            min_click_delay_s=policy.min_click_delay_s if policy.limits else 0.0)
        out: list[dict | BaseException] = []
        stop = False
        for (event, caller, user), result in zip(group, results, strict=True):
            if isinstance(result, BaseException):
                out.append(result)
                continue
            try:
                self.recorded(event, caller, user, result)
            except Exception as err:  # this event's answer (a 500); the others stand
                out.append(err)
                continue
            stop = stop or (result.exhausted and bool(result.charged_micros) and not result.duplicate)
            out.append({"idempotency_key": event.idempotency_key, "charged": result.charged_micros / MICROS,
                        "duplicate": result.duplicate, "campaign_exhausted": result.exhausted})
        if stop:
            self.engine.refresh(force=True)  # the campaign stops serving before these answers
        return out

    def recorded(self, event: Event, caller: Caller, user: str, result: EventResult) -> None:
        outcome = "duplicate" if result.duplicate else "invalid" if result.invalid else "recorded"
        self.metrics.events.labels(event.type, outcome).inc()
        if result.duplicate:
            return
        self.metrics.charged.inc(result.charged_micros)
        if self.served_log is not None:
            self.served_log.event(event.request_id, event.type, event.ad_id, result.charged_micros / MICROS,
                                  invalid=result.invalid)
        if event.type == "click":
            slot = (event.request_id, event.idempotency_key)
            for (request_id, key), reason in self.guard.clicked(caller, user, slot, result.charged_micros,
                                                                result.invalid):
                self.refund(request_id, key, reason)

    def refund(self, request_id: str, key: str, reason: str) -> int:
        amount = self.ledger.refund(request_id, key, reason, at=self.clock())
        if amount:
            self.metrics.refunded.inc(amount)
            self.engine.mark_stale()  # a campaign that had run out serves again
            found = self.ledger.refund_of(request_id, key)
            if self.served_log is not None and found is not None:
                self.served_log.refund(request_id, found.ad_id, amount / MICROS, reason)
        return amount
