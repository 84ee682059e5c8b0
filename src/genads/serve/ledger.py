"""The budget ledger: campaigns, API keys and charged events behind one interface.

Money is stored in integer micro-units (1e-6 of the currency) so sums are exact. Charging an event is one
transaction (:mod:`genads.serve.ledger_events`): the spent total always equals the sum of the charged events,
and never exceeds the budget, whatever the concurrency; a slot is charged at most once per event type. A click
charged before it was judged invalid is refunded (:class:`~genads.serve.refunds.RefundStore`): one ``refunds``
row per event, so ``spent = sum of charges - sum of refunds <= budget`` always holds (:meth:`SQLLedger.audit`).

Schema changes are numbered migrations (:data:`~genads.serve.ledger_schema.MIGRATIONS`, the number in
``meta.schema``) run at start-up on both backends, so an existing ``ledger.sqlite`` (or PostgreSQL database) is
upgraded in place. The token secret is kept in a file (see :mod:`genads.serve.tokens`); a ledger written when
it was kept here hands it over once (:meth:`SQLLedger.legacy_token_secret`) and forgets it. The SQLite file is
mode 0600.

:class:`SQLLedger` holds the SQL, written once with ``?`` placeholders, in mixins by concept: campaigns and the
change counter here, events (:class:`~genads.serve.ledger_events.EventStore`), keys
(:class:`~genads.serve.keys.KeyStore`), refunds (:class:`~genads.serve.refunds.RefundStore`) and the console's
read-only queries (:class:`~genads.serve.ledger_reads.LedgerReads`).
:class:`SQLiteLedger` (WAL, the embedded default, one connection per thread, writers serialised
by ``BEGIN IMMEDIATE``) and :class:`~genads.serve.ledger_pg.PostgresLedger` (``SELECT ... FOR
UPDATE``; several processes or machines) supply connections (``_tx``) and dialect. ``version()`` is a
counter bumped by every change of what may serve (campaign edits, a budget running out), so
servers sharing a ledger notice each other's changes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from genads.serve.keys import KeyStore, LedgerError
from genads.serve.ledger_events import EVENT_TYPES, Event, EventResult, EventStore, group_order
from genads.serve.ledger_reads import LedgerReads
from genads.serve.ledger_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION
from genads.serve.refunds import RefundStore
from genads.serve.tokens import MAX_BID_MICROS

__all__ = ["EVENT_TYPES", "MICROS", "MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "STATUSES", "Campaign", "Event",
           "EventResult", "LedgerError", "SQLLedger", "group_order", "open_ledger", "to_micros"]
MICROS = 1_000_000
STATUSES = ("active", "paused")


def to_micros(amount: float) -> int:
    return round(float(amount) * MICROS)


@dataclass(frozen=True)
class Campaign:
    campaign_id: int
    advertiser_id: int
    name: str
    ad_ids: tuple[int, ...]
    bid_micros: int
    """Bid per click."""
    budget_micros: int
    spent_micros: int
    status: str
    refunded_micros: int = 0
    """Charges given back for clicks judged invalid after they were charged (already out of spent)."""
    invalid_clicks: int = 0
    """Clicks recorded as invalid: charged nothing, or refunded."""

    @property
    def remaining_micros(self) -> int:
        return max(self.budget_micros - self.spent_micros, 0)

    @property
    def serving(self) -> bool:
        """Active and with budget left."""
        return self.status == "active" and self.remaining_micros > 0


class SQLLedger(EventStore, KeyStore, RefundStore, LedgerReads, ABC):
    """The ledger's logic over a DB-API connection; subclasses give ``_tx`` and the dialect."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    lock_suffix = ""
    """Appended to the campaign SELECT that precedes a charge (``FOR UPDATE`` on PostgreSQL)."""

    @abstractmethod
    def _tx(self, write: bool = True) -> AbstractContextManager[Any]:
        """A context manager yielding a cursor inside one transaction (committed on exit, rolled back on an
        error); ``write=False``: a read-only one, which takes no write lock."""

    def _sql(self, query: str) -> str:
        return query

    def _run(self, cur, query: str, params: tuple = ()) -> Any:
        cur.execute(self._sql(query), params)
        return cur

    def _init_schema(self) -> None:
        with self._tx() as cur:
            for stmt in SCHEMA.format(serial=self.serial).split(";"):
                if stmt.strip():
                    self._run(cur, stmt)
            self._run(cur, "INSERT INTO meta (name, value) VALUES ('version', '0') ON CONFLICT (name) DO NOTHING")
        for version in range(2, SCHEMA_VERSION + 1):
            with self._tx() as cur:  # read inside the write transaction: two servers starting at once migrate once
                row = self._run(cur, "SELECT value FROM meta WHERE name = 'schema'").fetchone()
                if (1 if row is None else int(row[0])) >= version:
                    continue
                for stmt in MIGRATIONS[version - 2]:
                    self._run(cur, stmt)
                self._run(cur, "INSERT INTO meta (name, value) VALUES ('schema', ?) ON CONFLICT (name) "
                               "DO UPDATE SET value = excluded.value", (str(version),))

    def schema_version(self) -> int:
        with self._tx(write=False) as cur:
            row = self._run(cur, "SELECT value FROM meta WHERE name = 'schema'").fetchone()
        return 1 if row is None else int(row[0])

    # --- meta ---------------------------------------------------------------------------------
    def version(self) -> int:
        with self._tx(write=False) as cur:
            return int(self._run(cur, "SELECT value FROM meta WHERE name = 'version'").fetchone()[0])

    def legacy_token_secret(self) -> bytes | None:
        """The token secret a ledger written before secrets moved to a file still holds (else None)."""
        with self._tx(write=False) as cur:
            row = self._run(cur, "SELECT value FROM meta WHERE name = 'token_secret'").fetchone()
        return None if row is None else bytes.fromhex(row[0])

    def forget_legacy_token_secret(self) -> None:
        """Delete it from the ledger (after it was written to the secret file)."""
        with self._tx() as cur:
            self._run(cur, "DELETE FROM meta WHERE name = 'token_secret'")

    def _bump(self, cur) -> None:
        self._run(cur, "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'version'")

    def ping(self) -> bool:
        try:
            self.version()
            return True
        except Exception:
            return False

    # --- campaigns ----------------------------------------------------------------------------
    def _load(self, cur, where: str = "", params: tuple = ()) -> list[Campaign]:
        rows = self._run(cur, "SELECT campaign_id, advertiser_id, name, bid_micros, budget_micros, spent_micros, status, "
                              f"refunded_micros, invalid_clicks FROM campaigns {where} ORDER BY campaign_id",
                         params).fetchall()
        if not rows:
            return []
        ads: dict[int, list[int]] = {}
        for cid, ad in self._run(cur, "SELECT campaign_id, ad_id FROM campaign_ads ORDER BY ad_id").fetchall():
            ads.setdefault(int(cid), []).append(int(ad))
        return [Campaign(int(r[0]), int(r[1]), r[2], tuple(ads.get(int(r[0]), ())), int(r[3]), int(r[4]), int(r[5]), r[6],
                         int(r[7]), int(r[8])) for r in rows]

    def campaigns(self, advertiser_id: int | None = None) -> list[Campaign]:
        """Every campaign, or one advertiser's."""
        with self._tx(write=False) as cur:
            if advertiser_id is None:
                return self._load(cur)
            return self._load(cur, "WHERE advertiser_id = ?", (advertiser_id,))

    def campaign(self, campaign_id: int) -> Campaign | None:
        with self._tx(write=False) as cur:
            found = self._load(cur, "WHERE campaign_id = ?", (campaign_id,))
        return found[0] if found else None

    def create_campaign(self, advertiser_id: int, name: str, ad_ids: list[int], bid: float, budget: float,
                        status: str = "active") -> Campaign:
        _check_status(status)
        with self._tx() as cur:
            cid = self._run(cur, "INSERT INTO campaigns (advertiser_id, name, bid_micros, budget_micros, spent_micros, status) "
                                 "VALUES (?, ?, ?, ?, 0, ?) RETURNING campaign_id",
                            (advertiser_id, name, _bid_micros(bid), to_micros(budget), status)).fetchone()[0]
            self._set_ads(cur, int(cid), ad_ids)
            self._bump(cur)
            return self._load(cur, "WHERE campaign_id = ?", (cid,))[0]

    def create_campaigns(self, rows: list[tuple[int, str, list[int], float, float]]) -> None:
        """Bulk seeding: (advertiser_id, name, ad_ids, bid, budget) per campaign, all active, one transaction."""
        with self._tx() as cur:
            for advertiser_id, name, ad_ids, bid, budget in rows:
                cid = self._run(cur, "INSERT INTO campaigns (advertiser_id, name, bid_micros, budget_micros, spent_micros, "
                                     "status) VALUES (?, ?, ?, ?, 0, 'active') RETURNING campaign_id",
                                (advertiser_id, name, _bid_micros(bid), to_micros(budget))).fetchone()[0]
                self._set_ads(cur, int(cid), ad_ids)
            self._bump(cur)

    def _set_ads(self, cur, campaign_id: int, ad_ids: list[int]) -> None:
        self._run(cur, "DELETE FROM campaign_ads WHERE campaign_id = ?", (campaign_id,))
        for ad in sorted(set(ad_ids)):
            self._run(cur, "INSERT INTO campaign_ads (campaign_id, ad_id) VALUES (?, ?)", (campaign_id, int(ad)))

    def update_campaign(self, campaign_id: int, *, name: str | None = None, ad_ids: list[int] | None = None,
                        bid: float | None = None, budget: float | None = None, status: str | None = None,
                        min_pause_s: float = 0.0) -> Campaign:
        """Change the given fields; a budget below what is already spent is refused (field ``budget``), and so
        is resuming a campaign paused less than ``min_pause_s`` ago (field ``status``, 429): clicks on a paused
        campaign are free, so flapping pause around the clicks would take impressions and dodge their charges."""
        if status is not None:
            _check_status(status)
        with self._tx() as cur:
            row = self._run(cur, "SELECT spent_micros, status, status_changed_at FROM campaigns WHERE campaign_id = ?"
                                 f"{self.lock_suffix}", (campaign_id,)).fetchone()
            if row is None:
                raise LedgerError("campaign_id", f"no campaign {campaign_id}", status=404)
            if budget is not None and to_micros(budget) < int(row[0]):
                raise LedgerError("budget", f"{budget} is below the {int(row[0]) / MICROS} already spent")
            now = time.time()
            if status is not None and status != row[1]:
                paused_for = None if row[2] is None else now - float(row[2])
                if status == "active" and paused_for is not None and paused_for < min_pause_s:
                    raise LedgerError("status", f"paused {paused_for:.0f} s ago: a campaign stays paused at least "
                                                f"{min_pause_s:g} s", status=429)
                self._run(cur, "UPDATE campaigns SET status_changed_at = ? WHERE campaign_id = ?", (now, campaign_id))
            for column, value in (("name", name), ("bid_micros", None if bid is None else _bid_micros(bid)),
                                  ("budget_micros", None if budget is None else to_micros(budget)), ("status", status)):
                if value is not None:
                    self._run(cur, f"UPDATE campaigns SET {column} = ? WHERE campaign_id = ?", (value, campaign_id))
            if ad_ids is not None:
                self._set_ads(cur, campaign_id, ad_ids)
            self._bump(cur)
            return self._load(cur, "WHERE campaign_id = ?", (campaign_id,))[0]


def _bid_micros(bid: float) -> int:
    micros = to_micros(bid)
    if not 1 <= micros <= MAX_BID_MICROS:
        raise LedgerError("bid", f"{bid} must be between 0.000001 (one micro) and {MAX_BID_MICROS // MICROS}")
    return micros


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise LedgerError("status", f"{status!r} is not one of {STATUSES}")


def open_ledger(url: str) -> SQLLedger:
    """``sqlite:///PATH`` (or a plain path) -> SQLiteLedger; ``postgresql://...`` -> PostgresLedger."""
    if url.startswith(("postgresql://", "postgres://")):
        from genads.serve.ledger_pg import PostgresLedger

        return PostgresLedger(url)
    from genads.serve.ledger_sqlite import SQLiteLedger

    return SQLiteLedger(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)


def __getattr__(name: str):
    """``SQLiteLedger`` lives in :mod:`genads.serve.ledger_sqlite` (it subclasses SQLLedger); importable from here."""
    if name == "SQLiteLedger":
        from genads.serve.ledger_sqlite import SQLiteLedger

        return SQLiteLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
