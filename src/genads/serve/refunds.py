"""Refunds: charges given back for clicks judged invalid after they were charged.

Invalid-traffic rules that can only be decided later (a client's burst of clicks crosses its cap,
an operator's review) refund clicks already charged. A refund is one transaction: lock the
campaign row, insert one ``refunds`` row for the event (its primary key is the event's, so an
event is refunded at most once, whatever the retries), take the amount off ``spent_micros``, add it
to ``refunded_micros``, and mark the event invalid (counted in ``invalid_clicks`` if it was not
already). So ``spent = sum of charges - sum of refunds <= budget`` holds at every commit, and a
campaign that had run out of budget serves again (the change counter is bumped).

:class:`RefundStore` is a mixin of :class:`~genads.serve.ledger.SQLLedger` (it uses its ``_tx``,
``_run``, ``_bump`` and ``lock_suffix``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from genads.serve.keys import LedgerError

REASON_CHARS = 64


@dataclass(frozen=True)
class Refund:
    request_id: str
    idempotency_key: str
    campaign_id: int
    ad_id: int
    amount_micros: int
    reason: str
    created_at: float


class RefundStore:
    def refund(self, request_id: str, idempotency_key: str, reason: str, at: float | None = None) -> int:
        """Give back the charge of the click stored under (request_id, idempotency_key); the micros refunded.

        0 when the event charged nothing or was refunded before (idempotent). LedgerError (404, field
        ``idempotency_key``) when there is no such event, (422, ``reason``) for an empty or over-long reason.
        """
        if not isinstance(reason, str) or not 0 < len(reason) <= REASON_CHARS:
            raise LedgerError("reason", f"must be 1-{REASON_CHARS} characters")
        at = time.time() if at is None else float(at)
        with self._tx() as cur:
            event = self._run(cur, "SELECT campaign_id, charged_micros, invalid, type FROM events "
                                   "WHERE request_id = ? AND idempotency_key = ?", (request_id, idempotency_key)).fetchone()
            if event is None:
                raise LedgerError("idempotency_key", f"no event {idempotency_key!r} in request {request_id!r}", status=404)
            campaign_id, charged = int(event[0]), int(event[1])
            row = self._run(cur, f"SELECT budget_micros, spent_micros FROM campaigns WHERE campaign_id = ?{self.lock_suffix}",
                            (campaign_id,)).fetchone()
            if charged <= 0:
                return 0
            inserted = self._run(cur, "INSERT INTO refunds (request_id, idempotency_key, campaign_id, amount_micros, reason, "
                                      "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, idempotency_key) "
                                      "DO NOTHING RETURNING amount_micros",
                                 (request_id, idempotency_key, campaign_id, charged, reason, at)).fetchone()
            if inserted is None:
                return 0
            newly_invalid = int(event[2] is None and event[3] == "click")
            self._run(cur, "UPDATE campaigns SET spent_micros = spent_micros - ?, refunded_micros = refunded_micros + ?, "
                           "invalid_clicks = invalid_clicks + ? WHERE campaign_id = ?",
                      (charged, charged, newly_invalid, campaign_id))
            self._run(cur, "UPDATE events SET invalid = ? WHERE request_id = ? AND idempotency_key = ? AND invalid IS NULL",
                      (reason, request_id, idempotency_key))
            if int(row[1]) >= int(row[0]):
                self._bump(cur)  # it had run out of budget: it serves again
            return charged

    def refunds(self, campaign_id: int, limit: int = 1000) -> list[Refund]:
        """A campaign's refunds, newest first (at most ``limit``)."""
        with self._tx(write=False) as cur:
            rows = self._run(cur, "SELECT r.request_id, r.idempotency_key, r.campaign_id, e.ad_id, r.amount_micros, r.reason, "
                                  "r.created_at FROM refunds r JOIN events e ON e.request_id = r.request_id AND "
                                  "e.idempotency_key = r.idempotency_key WHERE r.campaign_id = ? "
                                  "ORDER BY r.created_at DESC, r.request_id LIMIT ?", (campaign_id, int(limit))).fetchall()
        return [Refund(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5], float(r[6])) for r in rows]

    def refund_of(self, request_id: str, idempotency_key: str) -> Refund | None:
        """The refund of one event, or None."""
        with self._tx(write=False) as cur:
            r = self._run(cur, "SELECT r.request_id, r.idempotency_key, r.campaign_id, e.ad_id, r.amount_micros, r.reason, "
                               "r.created_at FROM refunds r JOIN events e ON e.request_id = r.request_id AND "
                               "e.idempotency_key = r.idempotency_key WHERE r.request_id = ? AND r.idempotency_key = ?",
                          (request_id, idempotency_key)).fetchone()
        return None if r is None else Refund(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), r[5], float(r[6]))

    def invalid_counts(self, campaign_id: int) -> dict[str, int]:
        """reason -> number of the campaign's events recorded (or later marked) invalid for it."""
        with self._tx(write=False) as cur:
            rows = self._run(cur, "SELECT invalid, COUNT(*) FROM events WHERE campaign_id = ? AND invalid IS NOT NULL "
                                  "GROUP BY invalid ORDER BY invalid", (campaign_id,)).fetchall()
        return {str(reason): int(n) for reason, n in rows}
