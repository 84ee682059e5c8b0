"""Charging events: the ledger's event log, one transaction per event (or per group of events).

Charging an event is one transaction: lock the campaign row, insert the event under its idempotency key
(a replayed key inserts nothing and returns the stored outcome), charge ``min(price, bid now, budget - spent)``
(nothing while the campaign is paused) and write the charge beside the event. So the spent total always equals
the sum of the charged events, and never exceeds the budget, whatever the concurrency. A slot (``request_id``,
``ad_id``) is charged at most once per event type whatever the idempotency key: ``slot_events`` holds the one
key each slot's click (impression, conversion) was recorded under, and another key is refused (409).
Idempotency keys are scoped to the token's request: the same key under another request is another event, so
one client cannot squat the keys of another.

Invalid traffic: an event may be recorded as invalid (``events.invalid`` holds the reason: a click sooner than
``min_click_delay_s`` after its slot's impression, a conversion whose slot has no click, or a reason the caller
passes, e.g. a client over its click cap); an invalid click is charged nothing and counted in the campaign's
``invalid_clicks``.

:class:`EventStore` is a mixin of :class:`~genads.serve.ledger.SQLLedger` (it uses its ``_tx``, ``_run``,
``_bump`` and ``lock_suffix``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from genads.serve.keys import LedgerError
from genads.serve.tokens import MAX_AD_ID, MAX_BID_MICROS, MAX_ID

log = logging.getLogger("genads.serve")
EVENT_TYPES = ("impression", "click", "conversion")


@dataclass(frozen=True)
class Event:
    idempotency_key: str
    type: str
    campaign_id: int
    ad_id: int
    request_id: str
    price_micros: int
    """Price per click; only clicks are charged."""
    bid_micros: int | None = None
    """The campaign's bid when the slot was served (the price may not exceed it); None: not checked."""
    at: float | None = None
    """When it arrived (seconds since the epoch); None: now."""
    invalid: str | None = None
    """Why the caller judged it invalid (recorded, never charged); None: valid unless the ledger's rules say not."""


@dataclass(frozen=True)
class EventResult:
    idempotency_key: str
    charged_micros: int
    duplicate: bool
    """True when the key was seen before: nothing new was charged; the stored outcome is returned."""
    exhausted: bool
    """The campaign has no budget left after this event."""
    invalid: str | None = None
    """Why the event was recorded as invalid (charged nothing); None when valid."""


class EventStore:
    """Recording (and charging) events; a mixin of :class:`~genads.serve.ledger.SQLLedger`."""

    def record_event(self, event: Event, require_impression: bool = False, min_click_delay_s: float = 0.0) -> EventResult:
        """Insert the event and charge its campaign (clicks only) in one transaction; idempotent by key.

        Checked before anything is written (LedgerError naming the field; nothing written on failure):
        the type, integer micros with ``0 <= price <= bid at serving``, the campaign exists and holds
        the ad, the slot has no event of this type under another key (409), and with
        ``require_impression`` a click's slot has its impression recorded (409 otherwise: send the
        impression, then retry the click). A click is charged ``min(price, bid now, budget left)``,
        and nothing while the campaign is paused.

        Recorded as invalid and charged nothing: an event the caller judged invalid (``event.invalid``), a
        click sooner than ``min_click_delay_s`` after its slot's impression ("fast_click"), a conversion whose
        slot has no click ("no_click") or only an invalid one ("invalid_click").
        """
        _check_event(event)
        with self._tx() as cur:
            return self._record(cur, event, require_impression, min_click_delay_s)

    def record_events(self, events: list[Event], require_impression: bool = False,
                      min_click_delay_s: float = 0.0) -> list[EventResult | LedgerError]:
        """:meth:`record_event` for each event, all in one transaction (group commit: one commit, and on SQLite
        one fsync, for the group), each event under its own savepoint, so a refused event (its LedgerError in
        its place of the answer) writes nothing and leaves the others as they were.

        The outcome of each is what :meth:`record_event` gives for the events one after another in
        :func:`group_order` (by campaign, slot, then impression < click < conversion): the events of a group
        arrived together, so any order is one they could have arrived in, and this one takes the locks of
        campaign rows and slots in one global order, so that two servers' groups do not deadlock. Should the
        database fail the group anyway (a deadlock on a key reused across slots, a lost connection), each event is
        written again in a transaction of its own."""
        out: list[EventResult | LedgerError | None] = [None] * len(events)
        todo = []
        for i in group_order(events):
            try:
                _check_event(events[i])
                todo.append(i)
            except LedgerError as err:
                out[i] = err
        try:
            if len(todo) > 1:
                with self._tx() as cur:
                    for i in todo:
                        self._run(cur, "SAVEPOINT event")
                        try:
                            out[i] = self._record(cur, events[i], require_impression, min_click_delay_s)
                        except LedgerError as err:
                            self._run(cur, "ROLLBACK TO SAVEPOINT event")
                            out[i] = err
                        self._run(cur, "RELEASE SAVEPOINT event")
                return out  # type: ignore[return-value]
        except Exception as err:  # a database error rolled the whole group back: one by one below
            log.warning("a group of %d events failed (%s: %s); writing them one by one", len(todo),
                        type(err).__name__, err)
        for i in todo:  # alone (its transaction is its savepoint), or the group failed
            try:
                out[i] = self.record_event(events[i], require_impression, min_click_delay_s)
            except LedgerError as err:
                out[i] = err
        return out  # type: ignore[return-value]

    def _record(self, cur, event: Event, require_impression: bool, min_click_delay_s: float) -> EventResult:
        """One checked event inside the caller's transaction (see :meth:`record_event`)."""
        at = time.time() if event.at is None else float(event.at)
        lock = self.lock_suffix if event.type == "click" else ""  # only a charge locks the campaign row
        row = self._run(cur, "SELECT budget_micros, spent_micros, status, bid_micros FROM campaigns "
                             f"WHERE campaign_id = ?{lock}", (event.campaign_id,)).fetchone()
        stored = self._stored(cur, event)
        if stored is not None:
            return self._replay(cur, event, stored)
        if row is None or self._run(cur, "SELECT 1 FROM campaign_ads WHERE campaign_id = ? AND ad_id = ?",
                                    (event.campaign_id, event.ad_id)).fetchone() is None:
            raise LedgerError("token", f"ad {event.ad_id} is not in campaign {event.campaign_id}")
        seen = self._slot_event(cur, event, "impression") if event.type == "click" else None
        if require_impression and event.type == "click" and seen is None:
            raise LedgerError("token", "no impression was recorded for this slot: send it, then retry the click",
                              status=409)
        invalid = event.invalid or self._judge(cur, event, at, seen, min_click_delay_s)
        claimed = self._run(cur, "INSERT INTO slot_events (request_id, ad_id, type, idempotency_key) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (request_id, ad_id, type) DO NOTHING RETURNING idempotency_key",
                            (event.request_id, event.ad_id, event.type, event.idempotency_key)).fetchone()
        if claimed is None:
            return self._slot_taken(cur, event)
        budget, spent, status, bid_now = (int(row[0]), int(row[1]), row[2], int(row[3]))
        valid_click = event.type == "click" and status == "active" and invalid is None
        charge = min(event.price_micros, bid_now, budget - spent) if valid_click else 0
        inserted = self._run(cur, "INSERT INTO events (idempotency_key, type, campaign_id, ad_id, request_id, price_micros, "
                                  "charged_micros, created_at, invalid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                  "ON CONFLICT (request_id, idempotency_key) DO NOTHING RETURNING idempotency_key",
                             (event.idempotency_key, event.type, event.campaign_id, event.ad_id, event.request_id,
                              event.price_micros, charge, at, invalid)).fetchone()
        if inserted is None:  # the key was taken meanwhile for another ad of this request: undo the slot claim
            raise LedgerError("idempotency_key", "already used for a different event", status=409)
        if charge:
            self._run(cur, "UPDATE campaigns SET spent_micros = spent_micros + ? WHERE campaign_id = ?",
                      (charge, event.campaign_id))
        if invalid is not None and event.type == "click":
            self._run(cur, "UPDATE campaigns SET invalid_clicks = invalid_clicks + 1 WHERE campaign_id = ?",
                      (event.campaign_id,))
        exhausted = spent + charge >= budget
        if charge and exhausted:
            self._bump(cur)  # the campaign stops serving
        return EventResult(event.idempotency_key, charge, False, exhausted, invalid)

    def _slot_event(self, cur, event: Event, kind: str) -> tuple | None:
        """(created_at, invalid) of the slot's recorded event of this type, or None."""
        return self._run(cur, "SELECT created_at, invalid FROM events WHERE request_id = ? AND ad_id = ? AND type = ?",
                         (event.request_id, event.ad_id, kind)).fetchone()

    def _judge(self, cur, event: Event, at: float, impression: tuple | None, min_click_delay_s: float) -> str | None:
        """The ledger's own invalid-traffic rules (None: valid)."""
        if event.type == "click" and impression is not None and at - float(impression[0]) < min_click_delay_s:
            return "fast_click"
        if event.type == "conversion":
            click = self._slot_event(cur, event, "click")
            if click is None:
                return "no_click"
            if click[1] is not None:
                return "invalid_click"
        return None

    def _stored(self, cur, event: Event) -> tuple | None:
        """The event stored under this key for this request (keys are scoped to the token's request)."""
        return self._run(cur, "SELECT type, campaign_id, ad_id, request_id, charged_micros, invalid FROM events "
                              "WHERE request_id = ? AND idempotency_key = ?", (event.request_id, event.idempotency_key)).fetchone()

    def _slot_taken(self, cur, event: Event) -> EventResult:
        owner = self._run(cur, "SELECT idempotency_key FROM slot_events WHERE request_id = ? AND ad_id = ? AND type = ?",
                          (event.request_id, event.ad_id, event.type)).fetchone()
        stored = self._stored(cur, event) if owner and owner[0] == event.idempotency_key else None
        if stored is not None:  # the same event committed meanwhile by another server (PostgreSQL)
            return self._replay(cur, event, stored)
        raise LedgerError("token", f"this slot's {event.type} was already recorded under another idempotency_key",
                          status=409)

    def _replay(self, cur, event: Event, stored: tuple) -> EventResult:
        if tuple(stored[:4]) != (event.type, event.campaign_id, event.ad_id, event.request_id):
            raise LedgerError("idempotency_key", "already used for a different event", status=409)
        row = self._run(cur, "SELECT budget_micros, spent_micros FROM campaigns WHERE campaign_id = ?",
                        (event.campaign_id,)).fetchone()
        return EventResult(event.idempotency_key, int(stored[4]), True, row is None or int(row[1]) >= int(row[0]),
                           stored[5])


def group_order(events: list[Event]) -> list[int]:
    """The order :meth:`SQLLedger.record_events` applies a group in: by campaign, request, ad, then type
    (impression, click, conversion), then idempotency key; stable."""
    def key(i: int) -> tuple:
        e = events[i]
        ids = tuple(x if type(x) is int else -1 for x in (e.campaign_id, e.ad_id))
        kind = EVENT_TYPES.index(e.type) if e.type in EVENT_TYPES else -1
        return ids[0], str(e.request_id), ids[1], kind, str(e.idempotency_key)

    return sorted(range(len(events)), key=key)


def _check_event(event: Event) -> None:
    if event.type not in EVENT_TYPES:
        raise LedgerError("type", f"{event.type!r} is not one of {EVENT_TYPES}")
    bid = MAX_BID_MICROS if event.bid_micros is None else event.bid_micros
    for name, value, high in (("campaign_id", event.campaign_id, MAX_ID), ("ad_id", event.ad_id, MAX_AD_ID),
                              ("bid_micros", bid, MAX_BID_MICROS), ("price_micros", event.price_micros, bid)):
        low = 0 if name in ("price_micros", "ad_id") else 1
        if type(value) is not int or not low <= value <= high:
            raise LedgerError("token", f"{name} must be an integer in [{low}, {high}]")
