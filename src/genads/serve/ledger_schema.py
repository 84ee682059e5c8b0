"""The ledger's tables: the first schema and the numbered migrations applied after it, on both backends.

``meta.schema`` holds the version a ledger is at; :meth:`genads.serve.ledger.SQLLedger._init_schema` creates the
first schema if needed and applies every later migration in its own transaction, so an existing ledger is
upgraded in place and two servers starting at once migrate once.
"""

from __future__ import annotations

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
"""The first schema (every ledger file written before migrations existed has it)."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 2: one charge per slot whatever the idempotency key; API key ids and revocation
    ("CREATE TABLE IF NOT EXISTS slot_events (request_id TEXT NOT NULL, ad_id BIGINT NOT NULL, type TEXT NOT NULL, "
     "idempotency_key TEXT NOT NULL, PRIMARY KEY (request_id, ad_id, type))",
     "INSERT INTO slot_events (request_id, ad_id, type, idempotency_key) "
     "SELECT request_id, ad_id, type, MIN(idempotency_key) FROM events GROUP BY request_id, ad_id, type",
     "ALTER TABLE api_keys ADD COLUMN key_id TEXT",
     "ALTER TABLE api_keys ADD COLUMN created_at DOUBLE PRECISION",
     "ALTER TABLE api_keys ADD COLUMN revoked_at DOUBLE PRECISION",
     "UPDATE api_keys SET key_id = SUBSTR(key_hash, 1, 16)",
     "CREATE INDEX IF NOT EXISTS api_keys_key_id ON api_keys (key_id)"),
    # 3: idempotency keys scoped to the token's request (one client can no longer squat another's key)
    ("CREATE TABLE events_scoped (idempotency_key TEXT NOT NULL, type TEXT NOT NULL, campaign_id BIGINT NOT NULL, "
     "ad_id BIGINT NOT NULL, request_id TEXT NOT NULL, price_micros BIGINT NOT NULL, charged_micros BIGINT NOT NULL, "
     "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, idempotency_key))",
     "INSERT INTO events_scoped (idempotency_key, type, campaign_id, ad_id, request_id, price_micros, charged_micros, "
     "created_at) SELECT idempotency_key, type, campaign_id, ad_id, request_id, price_micros, charged_micros, created_at "
     "FROM events",
     "DROP TABLE events",
     "ALTER TABLE events_scoped RENAME TO events",
     "CREATE INDEX IF NOT EXISTS events_campaign ON events (campaign_id)"),
    # 4: publisher keys; invalid traffic (events marked invalid, refunds, counters per campaign)
    ("ALTER TABLE api_keys ADD COLUMN publisher TEXT",
     "ALTER TABLE events ADD COLUMN invalid TEXT",
     "ALTER TABLE campaigns ADD COLUMN refunded_micros BIGINT NOT NULL DEFAULT 0",
     "ALTER TABLE campaigns ADD COLUMN invalid_clicks BIGINT NOT NULL DEFAULT 0",
     "CREATE TABLE IF NOT EXISTS refunds (request_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, "
     "campaign_id BIGINT NOT NULL, amount_micros BIGINT NOT NULL, reason TEXT NOT NULL, "
     "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, idempotency_key), CHECK (amount_micros > 0))",
     "CREATE INDEX IF NOT EXISTS refunds_campaign ON refunds (campaign_id)"),
    # 5: when a campaign's status last changed (a paused campaign stays paused a minimum time: no flapping)
    ("ALTER TABLE campaigns ADD COLUMN status_changed_at DOUBLE PRECISION",),
)
"""Schema version i + 2 = MIGRATIONS[i] applied to version i + 1 (statements run in one transaction)."""
SCHEMA_VERSION = 1 + len(MIGRATIONS)
