"""The budget ledger: campaigns, API keys and charged events behind one interface.

Money is stored in integer micro-units (1e-6 of the currency) so sums are exact. Charging an
event is one transaction: lock the campaign row, insert the event under its idempotency key
(a replayed key inserts nothing and returns the stored outcome), charge
``min(price, budget - spent)`` and write the charge beside the event. So the spent total always
equals the sum of the charged events, and never exceeds the budget, whatever the concurrency.

:class:`SQLLedger` holds the SQL, written once with ``?`` placeholders;
:class:`SQLiteLedger` (WAL, the embedded default, one connection per thread, writers serialised
by ``BEGIN IMMEDIATE``) and :class:`~genads.serve.ledger_pg.PostgresLedger` (``SELECT ... FOR
UPDATE``; several processes or machines) supply connections and dialect. ``version()`` is a
counter bumped by every change of what may serve (campaign edits, a budget running out), so
servers sharing a ledger notice each other's changes.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MICROS = 1_000_000
STATUSES = ("active", "paused")
EVENT_TYPES = ("impression", "click", "conversion")


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

    @property
    def remaining_micros(self) -> int:
        return max(self.budget_micros - self.spent_micros, 0)

    @property
    def serving(self) -> bool:
        """Active and with budget left."""
        return self.status == "active" and self.remaining_micros > 0


@dataclass(frozen=True)
class Event:
    idempotency_key: str
    type: str
    campaign_id: int
    ad_id: int
    request_id: str
    price_micros: int
    """Price per click; only clicks are charged."""


@dataclass(frozen=True)
class EventResult:
    idempotency_key: str
    charged_micros: int
    duplicate: bool
    """True when the key was seen before: nothing new was charged; the stored outcome is returned."""
    exhausted: bool
    """The campaign has no budget left after this event."""


class LedgerError(ValueError):
    """A request the ledger refuses; ``field`` names the offending input."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.status = field, message, status


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
  campaign_id {serial}, advertiser_id BIGINT NOT NULL, name TEXT NOT NULL, bid_micros BIGINT NOT NULL,
  budget_micros BIGINT NOT NULL, spent_micros BIGINT NOT NULL DEFAULT 0, status TEXT NOT NULL,
  CHECK (spent_micros >= 0 AND spent_micros <= budget_micros));
CREATE TABLE IF NOT EXISTS campaign_ads (
  campaign_id BIGINT NOT NULL, ad_id BIGINT NOT NULL, PRIMARY KEY (campaign_id, ad_id));
CREATE TABLE IF NOT EXISTS events (
  idempotency_key TEXT PRIMARY KEY, type TEXT NOT NULL, campaign_id BIGINT NOT NULL, ad_id BIGINT NOT NULL,
  request_id TEXT NOT NULL, price_micros BIGINT NOT NULL, charged_micros BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (key_hash TEXT PRIMARY KEY, advertiser_id BIGINT, is_admin INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SQLLedger:
    """The ledger's logic over a DB-API connection; subclasses give ``_tx`` and the dialect."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    lock_suffix = ""
    """Appended to the campaign SELECT that precedes a charge (``FOR UPDATE`` on PostgreSQL)."""

    def _tx(self, write: bool = True):  # a context manager yielding a cursor inside one transaction
        raise NotImplementedError

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
            for name, value in (("version", "0"), ("token_secret", secrets.token_hex(32))):
                self._run(cur, "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, value))

    # --- meta ---------------------------------------------------------------------------------
    def version(self) -> int:
        with self._tx(write=False) as cur:
            return int(self._run(cur, "SELECT value FROM meta WHERE name = 'version'").fetchone()[0])

    def token_secret(self) -> bytes:
        """The HMAC secret for click tokens, shared by every server on this ledger."""
        with self._tx(write=False) as cur:
            return bytes.fromhex(self._run(cur, "SELECT value FROM meta WHERE name = 'token_secret'").fetchone()[0])

    def _bump(self, cur) -> None:
        self._run(cur, "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'version'")

    def ping(self) -> bool:
        try:
            self.version()
            return True
        except Exception:
            return False

    # --- keys ---------------------------------------------------------------------------------
    def add_key(self, advertiser_id: int | None, key: str | None = None) -> str:
        """Register an API key (a new random one unless given); ``advertiser_id`` None = admin."""
        key = key or secrets.token_urlsafe(24)
        with self._tx() as cur:
            self._run(cur, "INSERT INTO api_keys (key_hash, advertiser_id, is_admin) VALUES (?, ?, ?) "
                           "ON CONFLICT (key_hash) DO NOTHING",
                      (hash_key(key), advertiser_id, int(advertiser_id is None)))
        return key

    def principal(self, key: str) -> tuple[bool, int | None] | None:
        """(is_admin, advertiser_id) for a known key, else None."""
        with self._tx(write=False) as cur:
            row = self._run(cur, "SELECT is_admin, advertiser_id FROM api_keys WHERE key_hash = ?",
                            (hash_key(key),)).fetchone()
        return None if row is None else (bool(row[0]), None if row[1] is None else int(row[1]))

    def has_admin(self) -> bool:
        with self._tx(write=False) as cur:
            return self._run(cur, "SELECT COUNT(*) FROM api_keys WHERE is_admin = 1").fetchone()[0] > 0

    # --- campaigns ----------------------------------------------------------------------------
    def _load(self, cur, where: str = "", params: tuple = ()) -> list[Campaign]:
        rows = self._run(cur, "SELECT campaign_id, advertiser_id, name, bid_micros, budget_micros, spent_micros, status "
                              f"FROM campaigns {where} ORDER BY campaign_id", params).fetchall()
        if not rows:
            return []
        ads: dict[int, list[int]] = {}
        for cid, ad in self._run(cur, "SELECT campaign_id, ad_id FROM campaign_ads ORDER BY ad_id").fetchall():
            ads.setdefault(int(cid), []).append(int(ad))
        return [Campaign(int(r[0]), int(r[1]), r[2], tuple(ads.get(int(r[0]), ())), int(r[3]), int(r[4]), int(r[5]), r[6])
                for r in rows]

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
                            (advertiser_id, name, to_micros(bid), to_micros(budget), status)).fetchone()[0]
            self._set_ads(cur, int(cid), ad_ids)
            self._bump(cur)
            return self._load(cur, "WHERE campaign_id = ?", (cid,))[0]

    def create_campaigns(self, rows: list[tuple[int, str, list[int], float, float]]) -> None:
        """Bulk seeding: (advertiser_id, name, ad_ids, bid, budget) per campaign, all active, one transaction."""
        with self._tx() as cur:
            for advertiser_id, name, ad_ids, bid, budget in rows:
                cid = self._run(cur, "INSERT INTO campaigns (advertiser_id, name, bid_micros, budget_micros, spent_micros, "
                                     "status) VALUES (?, ?, ?, ?, 0, 'active') RETURNING campaign_id",
                                (advertiser_id, name, to_micros(bid), to_micros(budget))).fetchone()[0]
                self._set_ads(cur, int(cid), ad_ids)
            self._bump(cur)

    def _set_ads(self, cur, campaign_id: int, ad_ids: list[int]) -> None:
        self._run(cur, "DELETE FROM campaign_ads WHERE campaign_id = ?", (campaign_id,))
        for ad in sorted(set(ad_ids)):
            self._run(cur, "INSERT INTO campaign_ads (campaign_id, ad_id) VALUES (?, ?)", (campaign_id, int(ad)))

    def update_campaign(self, campaign_id: int, *, name: str | None = None, ad_ids: list[int] | None = None,
                        bid: float | None = None, budget: float | None = None, status: str | None = None) -> Campaign:
        """Change the given fields; a budget below what is already spent is refused (field ``budget``)."""
        if status is not None:
            _check_status(status)
        with self._tx() as cur:
            row = self._run(cur, f"SELECT spent_micros FROM campaigns WHERE campaign_id = ?{self.lock_suffix}",
                            (campaign_id,)).fetchone()
            if row is None:
                raise LedgerError("campaign_id", f"no campaign {campaign_id}", status=404)
            if budget is not None and to_micros(budget) < int(row[0]):
                raise LedgerError("budget", f"{budget} is below the {int(row[0]) / MICROS} already spent")
            for column, value in (("name", name), ("bid_micros", None if bid is None else to_micros(bid)),
                                  ("budget_micros", None if budget is None else to_micros(budget)), ("status", status)):
                if value is not None:
                    self._run(cur, f"UPDATE campaigns SET {column} = ? WHERE campaign_id = ?", (value, campaign_id))
            if ad_ids is not None:
                self._set_ads(cur, campaign_id, ad_ids)
            self._bump(cur)
            return self._load(cur, "WHERE campaign_id = ?", (campaign_id,))[0]

    # --- events -------------------------------------------------------------------------------
    def record_event(self, event: Event) -> EventResult:
        """Insert the event and charge its campaign (clicks only) in one transaction; idempotent by key."""
        if event.type not in EVENT_TYPES:
            raise LedgerError("type", f"{event.type!r} is not one of {EVENT_TYPES}")
        with self._tx() as cur:
            row = self._run(cur, f"SELECT budget_micros, spent_micros FROM campaigns WHERE campaign_id = ?{self.lock_suffix}",
                            (event.campaign_id,)).fetchone()
            if row is None:
                raise LedgerError("token", f"campaign {event.campaign_id} no longer exists", status=409)
            budget, spent = int(row[0]), int(row[1])
            charge = min(event.price_micros, budget - spent) if event.type == "click" else 0
            inserted = self._run(cur, "INSERT INTO events (idempotency_key, type, campaign_id, ad_id, request_id, price_micros, "
                                      "charged_micros, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                                      "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
                                 (event.idempotency_key, event.type, event.campaign_id, event.ad_id, event.request_id,
                                  event.price_micros, charge, time.time())).fetchone()
            if inserted is None:
                return self._replay(cur, event)
            if charge:
                self._run(cur, "UPDATE campaigns SET spent_micros = spent_micros + ? WHERE campaign_id = ?",
                          (charge, event.campaign_id))
            exhausted = spent + charge >= budget
            if charge and exhausted:
                self._bump(cur)  # the campaign stops serving
            return EventResult(event.idempotency_key, charge, False, exhausted)

    def _replay(self, cur, event: Event) -> EventResult:
        stored = self._run(cur, "SELECT type, campaign_id, ad_id, request_id, charged_micros FROM events "
                                "WHERE idempotency_key = ?", (event.idempotency_key,)).fetchone()
        if tuple(stored[:4]) != (event.type, event.campaign_id, event.ad_id, event.request_id):
            raise LedgerError("idempotency_key", "already used for a different event", status=409)
        row = self._run(cur, "SELECT budget_micros, spent_micros FROM campaigns WHERE campaign_id = ?",
                        (event.campaign_id,)).fetchone()
        return EventResult(event.idempotency_key, int(stored[4]), True, int(row[1]) >= int(row[0]))

    def totals(self, campaign_id: int) -> tuple[int, int, int]:
        """(spent_micros, sum of charged_micros over its events, number of events) of a campaign."""
        with self._tx(write=False) as cur:
            spent = self._run(cur, "SELECT spent_micros FROM campaigns WHERE campaign_id = ?", (campaign_id,)).fetchone()
            charged, n = self._run(cur, "SELECT COALESCE(SUM(charged_micros), 0), COUNT(*) FROM events WHERE campaign_id = ?",
                                   (campaign_id,)).fetchone()
        return int(spent[0]) if spent else 0, int(charged), int(n)

    def event_charges(self) -> dict[str, int]:
        """idempotency_key -> charged_micros of every stored event."""
        with self._tx(write=False) as cur:
            return {k: int(c) for k, c in self._run(cur, "SELECT idempotency_key, charged_micros FROM events").fetchall()}


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise LedgerError("status", f"{status!r} is not one of {STATUSES}")


class SQLiteLedger(SQLLedger):
    """The embedded ledger: one SQLite file in WAL mode, a connection per thread.

    ``synchronous=FULL`` fsyncs every commit, so an accepted event survives a crash of the
    machine, not only of the process.
    """

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        self._init_schema()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, write: bool = True):
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # writers take the lock up front: no interleaving
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_ledger(url: str) -> SQLLedger:
    """``sqlite:///PATH`` (or a plain path) -> SQLiteLedger; ``postgresql://...`` -> PostgresLedger."""
    if url.startswith(("postgresql://", "postgres://")):
        from genads.serve.ledger_pg import PostgresLedger

        return PostgresLedger(url)
    return SQLiteLedger(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
