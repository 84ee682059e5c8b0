"""The ledger's read-only queries for the console, the reports and the audit: counts, series and totals.

A mixin of :class:`~genads.serve.ledger.SQLLedger` (it uses the ledger's ``_tx`` and ``_run``); nothing here
writes.
"""

from __future__ import annotations


class LedgerReads:
    """Read-only queries over campaigns, events and refunds."""

    def totals(self, campaign_id: int) -> tuple[int, int, int]:
        """(spent_micros, sum of charged_micros over its events, number of events) of a campaign."""
        with self._tx(write=False) as cur:
            spent = self._run(cur, "SELECT spent_micros FROM campaigns WHERE campaign_id = ?", (campaign_id,)).fetchone()
            charged, n = self._run(cur, "SELECT COALESCE(SUM(charged_micros), 0), COUNT(*) FROM events WHERE campaign_id = ?",
                                   (campaign_id,)).fetchone()
        return int(spent[0]) if spent else 0, int(charged), int(n)

    def event_counts(self, advertiser_id: int | None = None) -> dict[int, dict[str, tuple[int, int]]]:
        """campaign_id -> event type -> (events, charged_micros) over every campaign, or one advertiser's."""
        where, params = ("", ()) if advertiser_id is None else (" WHERE c.advertiser_id = ?", (advertiser_id,))
        with self._tx(write=False) as cur:
            rows = self._run(cur, "SELECT e.campaign_id, e.type, COUNT(*), COALESCE(SUM(e.charged_micros), 0) FROM events e "
                                  f"JOIN campaigns c ON c.campaign_id = e.campaign_id{where} GROUP BY e.campaign_id, e.type",
                             params).fetchall()
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for cid, kind, n, charged in rows:
            out.setdefault(int(cid), {})[kind] = (int(n), int(charged))
        return out

    def event_span(self, campaign_id: int) -> tuple[float, float] | None:
        """(first, last) ``created_at`` of a campaign's events; None when it has none."""
        with self._tx(write=False) as cur:
            row = self._run(cur, "SELECT MIN(created_at), MAX(created_at) FROM events WHERE campaign_id = ?",
                            (campaign_id,)).fetchone()
        return None if row is None or row[0] is None else (float(row[0]), float(row[1]))

    def event_series(self, campaign_id: int, start: float, bucket_s: float) -> list[tuple[int, str, int, int]]:
        """A campaign's events from ``start`` in buckets of ``bucket_s`` seconds: (bucket index, type, events,
        charged_micros) per non-empty bucket and type, oldest first."""
        with self._tx(write=False) as cur:
            rows = self._run(cur, "SELECT FLOOR((created_at - ?) / ?) AS b, type, COUNT(*), COALESCE(SUM(charged_micros), 0) "
                                  "FROM events WHERE campaign_id = ? AND created_at >= ? GROUP BY b, type ORDER BY b",
                             (start, bucket_s, campaign_id, start)).fetchall()
        return [(int(b), kind, int(n), int(charged)) for b, kind, n, charged in rows]

    def event_charges(self) -> dict[tuple[str, str], int]:
        """(request_id, idempotency_key) -> charged_micros of every stored event."""
        with self._tx(write=False) as cur:
            rows = self._run(cur, "SELECT request_id, idempotency_key, charged_micros FROM events").fetchall()
        return {(r, k): int(c) for r, k, c in rows}

    def audit(self) -> dict[str, int]:
        """The money invariants over the whole ledger: each count should be 0 (``campaigns``/``charged_micros``/
        ``refunded_micros``: totals). spent_mismatch: campaigns whose spent differs from the sum of their charged
        events minus the sum of their refunds; refund_mismatch: campaigns whose refunded total differs from the
        sum of their refunds; refunds_over_charge: refunds larger than their event's charge (or of no event);
        over_budget: campaigns that spent more than their budget; slots_charged_twice: (request, ad) slots
        with more than one charged click."""
        with self._tx(write=False) as cur:
            q = lambda sql: int(self._run(cur, sql).fetchone()[0])  # noqa: E731
            return {
                "campaigns": q("SELECT COUNT(*) FROM campaigns"),
                "charged_micros": q("SELECT COALESCE(SUM(charged_micros), 0) FROM events"),
                "refunded_micros": q("SELECT COALESCE(SUM(amount_micros), 0) FROM refunds"),
                "spent_mismatch": q("SELECT COUNT(*) FROM campaigns c WHERE c.spent_micros <> (SELECT "
                                    "COALESCE(SUM(e.charged_micros), 0) FROM events e WHERE e.campaign_id = c.campaign_id) "
                                    "- (SELECT COALESCE(SUM(r.amount_micros), 0) FROM refunds r "
                                    "WHERE r.campaign_id = c.campaign_id)"),
                "refund_mismatch": q("SELECT COUNT(*) FROM campaigns c WHERE c.refunded_micros <> (SELECT "
                                     "COALESCE(SUM(r.amount_micros), 0) FROM refunds r WHERE r.campaign_id = c.campaign_id)"),
                "refunds_over_charge": q("SELECT COUNT(*) FROM refunds r LEFT JOIN events e ON e.request_id = r.request_id "
                                         "AND e.idempotency_key = r.idempotency_key WHERE e.charged_micros IS NULL "
                                         "OR r.amount_micros > e.charged_micros"),
                "over_budget": q("SELECT COUNT(*) FROM campaigns WHERE spent_micros > budget_micros"),
                "slots_charged_twice": q("SELECT COUNT(*) FROM (SELECT request_id, ad_id FROM events WHERE type = 'click' "
                                         "AND charged_micros > 0 GROUP BY request_id, ad_id HAVING COUNT(*) > 1) AS twice"),
            }
