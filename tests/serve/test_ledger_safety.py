"""The ledger's money rules under attack, on SQLite and PostgreSQL: one charge per slot, the paused / lowered-bid
policy, validation with nothing written on failure, key revocation and rotation, and the schema migration."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from genads.serve.keys import hash_key
from genads.serve.ledger import SCHEMA, SCHEMA_VERSION, Event, LedgerError, SQLiteLedger
from tests.serve.conftest import pg_dsn


def slot_click(key: str, campaign: int, price_micros: int, request: str = "feed", ad: int = 7,
               bid_micros: int | None = None) -> Event:
    return Event(key, "click", campaign, ad, request, price_micros, bid_micros)


def test_a_slot_is_charged_once_whatever_the_key(ledger):
    c = ledger.create_campaign(1, "c", [7, 8], bid=1.0, budget=100.0)
    first = ledger.record_event(slot_click("k0", c.campaign_id, 600_000))
    assert first.charged_micros == 600_000 and not first.duplicate
    for i in range(1, 10):  # the same slot token with fresh keys
        with pytest.raises(LedgerError) as err:
            ledger.record_event(slot_click(f"k{i}", c.campaign_id, 600_000))
        assert (err.value.status, err.value.field) == (409, "token")
    assert ledger.record_event(slot_click("k0", c.campaign_id, 600_000)).duplicate  # its own key: a replay
    other_ad = ledger.record_event(slot_click("k-ad8", c.campaign_id, 600_000, ad=8))  # another slot of the request
    conversion = ledger.record_event(Event("conv", "conversion", c.campaign_id, 7, "feed", 600_000))
    assert other_ad.charged_micros == 600_000 and conversion.charged_micros == 0
    assert ledger.totals(c.campaign_id) == (1_200_000, 1_200_000, 3)
    assert ledger.audit()["slots_charged_twice"] == 0


def test_a_click_waits_for_its_impression_when_required(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=100.0)
    with pytest.raises(LedgerError) as err:
        ledger.record_event(slot_click("c1", c.campaign_id, 5_000), require_impression=True)
    assert (err.value.field, err.value.status) == ("token", 409) and ledger.totals(c.campaign_id) == (0, 0, 0)
    ledger.record_event(Event("i1", "impression", c.campaign_id, 7, "feed", 5_000), require_impression=True)
    assert ledger.record_event(slot_click("c1", c.campaign_id, 5_000), require_impression=True).charged_micros == 5_000


def test_idempotency_keys_are_scoped_to_the_request(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=100.0)
    squat = ledger.record_event(slot_click("click-1", c.campaign_id, 1_000, request="attacker"))
    mine = ledger.record_event(slot_click("click-1", c.campaign_id, 2_000, request="victim"))  # the same key
    assert (squat.charged_micros, mine.charged_micros, mine.duplicate) == (1_000, 2_000, False)
    assert ledger.event_charges() == {("attacker", "click-1"): 1_000, ("victim", "click-1"): 2_000}
    with pytest.raises(LedgerError) as err:  # within one request a key still names one event
        ledger.record_event(Event("click-1", "conversion", c.campaign_id, 7, "victim", 0))
    assert err.value.field == "idempotency_key"


def test_paused_campaigns_pay_nothing_and_lowered_bids_cap_the_price(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=3.0, budget=100.0)
    ledger.update_campaign(c.campaign_id, bid=0.01)  # tokens priced at the old bid keep arriving
    cut = ledger.record_event(slot_click("a", c.campaign_id, 2_690_000, request="r1", bid_micros=3_000_000))
    assert cut.charged_micros == 10_000  # min(token price, bid at click time)
    ledger.update_campaign(c.campaign_id, status="paused")
    paused = ledger.record_event(slot_click("b", c.campaign_id, 5_000, request="r2", bid_micros=3_000_000))
    assert paused.charged_micros == 0
    ledger.update_campaign(c.campaign_id, status="active")
    with pytest.raises(LedgerError):  # the slot clicked while paused stays spent: resuming cannot charge it
        ledger.record_event(slot_click("b2", c.campaign_id, 5_000, request="r2", bid_micros=3_000_000))
    assert ledger.totals(c.campaign_id) == (10_000, 10_000, 2)


@pytest.mark.parametrize("event, field", [
    (slot_click("neg", 0, -1_000_000), "token"),              # a negative price would credit the campaign
    (slot_click("big", 0, 10**18), "token"),                   # above any bid
    (slot_click("over", 0, 2_000_000, bid_micros=1_000_000), "token"),  # above the bid at serving time
    (slot_click("float", 0, 0.5), "token"),                    # not integer micros
    (slot_click("bool", 0, True), "token"),
    (slot_click("ad", 0, 1_000, ad=999), "token"),             # the ad is not in the campaign
    (Event("t", "purchase", 0, 7, "feed", 1_000), "type"),
])
def test_forged_events_are_refused_and_write_nothing(ledger, event, field):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=100.0)
    event = Event(event.idempotency_key, event.type, c.campaign_id, event.ad_id, event.request_id,
                  event.price_micros, event.bid_micros)
    with pytest.raises(LedgerError) as err:
        ledger.record_event(event)
    assert err.value.field == field and err.value.status == 422
    assert ledger.totals(c.campaign_id) == (0, 0, 0)
    ok = ledger.record_event(slot_click(event.idempotency_key, c.campaign_id, 1_000))  # key and slot are still free
    assert ok.charged_micros == 1_000 and ledger.audit()["spent_mismatch"] == 0


def test_an_unknown_campaign_is_refused_like_a_foreign_ad(ledger):
    with pytest.raises(LedgerError) as err:
        ledger.record_event(slot_click("x", 4242, 1_000))
    assert err.value.field == "token" and err.value.status == 422


def test_bids_below_one_micro_are_refused(ledger):
    with pytest.raises(LedgerError, match="bid"):
        ledger.create_campaign(1, "c", [7], bid=4e-7, budget=1.0)
    c = ledger.create_campaign(1, "c", [7], bid=1e-6, budget=1.0)
    with pytest.raises(LedgerError, match="bid"):
        ledger.update_campaign(c.campaign_id, bid=1e-9)
    assert ledger.campaign(c.campaign_id).bid_micros == 1


def test_keys_are_revoked_and_rotated(ledger):
    admin = ledger.add_key(None)
    a1, a2, b1 = ledger.add_key(1), ledger.add_key(1), ledger.add_key(2)
    ids = {k.key_id for k in ledger.list_keys(1)}
    assert len(ids) == 2 and all(not k.is_admin for k in ledger.list_keys(1))
    a1_id = ledger.principal(a1).key_id
    with pytest.raises(LedgerError) as err:  # advertiser 2 cannot see advertiser 1's key: the same 404 as unknown
        ledger.revoke_key(a1_id, advertiser_id=2)
    assert err.value.status == 404
    assert ledger.revoke_key(a1_id, advertiser_id=1).revoked_at is not None
    assert ledger.principal(a1) is None and ledger.principal(a2) is not None
    new = ledger.rotate_key(a2)
    assert ledger.principal(a2) is None and ledger.principal(new)[:2] == (False, 1)
    with pytest.raises(LedgerError) as err:  # the last live admin key is rotated, not revoked
        ledger.revoke_key(ledger.principal(admin).key_id)
    assert err.value.status == 409
    ledger.add_key(1, a1)  # a revoked key cannot be registered again
    assert ledger.principal(a1) is None and ledger.principal(b1) is not None
    assert ledger.principal("x" * 10_000) is None


def test_the_installed_admin_key_is_the_only_live_one(ledger):
    old = ledger.add_key(None)
    ledger.install_admin_key("replacement-admin-key")
    assert ledger.principal(old) is None and ledger.principal("replacement-admin-key").is_admin
    with pytest.raises(LedgerError) as err:  # the old key never comes back, even by a restart with it
        ledger.install_admin_key(old)
    assert err.value.field == "admin_key"


def test_lookup_compares_the_whole_hash(ledger):
    key = ledger.add_key(3)
    h = hash_key(key)
    with ledger._tx() as cur:  # a second row sharing the key id, as a forged or colliding hash would
        ledger._run(cur, "INSERT INTO api_keys (key_hash, key_id, advertiser_id, is_admin) VALUES (?, ?, 4, 0)",
                    (h[:16] + "0" * 48, h[:16]))
    assert ledger.principal(key).advertiser_id == 3


# --- migration of ledgers written before schema 2 -----------------------------------------------------------
OLD_ROWS = [
    "INSERT INTO meta (name, value) VALUES ('version', '3'), ('token_secret', '{secret}')",
    "INSERT INTO campaigns (advertiser_id, name, bid_micros, budget_micros, spent_micros, status) "
    "VALUES (1, 'old', 1000000, 5000000, 1500000, 'active')",
    "INSERT INTO campaign_ads (campaign_id, ad_id) VALUES (1, 7)",
    # the attack the old schema allowed: one slot charged under two keys
    "INSERT INTO events VALUES ('k1', 'click', 1, 7, 'feed', 750000, 750000, 1.0)",
    "INSERT INTO events VALUES ('k2', 'click', 1, 7, 'feed', 750000, 750000, 2.0)",
    "INSERT INTO api_keys (key_hash, advertiser_id, is_admin) VALUES ('{admin_hash}', NULL, 1)",
]
SECRET = "ab" * 32


def _write_old(execute, serial: str) -> None:
    for stmt in SCHEMA.format(serial=serial).split(";"):
        if stmt.strip():
            execute(stmt)
    for stmt in OLD_ROWS:
        execute(stmt.format(secret=SECRET, admin_hash=hash_key("old-admin")))


def _check_migrated(led) -> None:
    assert led.schema_version() == SCHEMA_VERSION
    assert led.legacy_token_secret() == bytes.fromhex(SECRET)
    assert led.principal("old-admin").is_admin  # old keys keep working, now with ids
    assert [k.key_id for k in led.list_keys()] == [hash_key("old-admin")[:16]]
    with pytest.raises(LedgerError):  # the slot already charged is claimed: a third key is refused
        led.record_event(slot_click("k3", 1, 750_000))
    assert led.record_event(slot_click("k2", 1, 750_000)).duplicate  # both old keys replay
    assert led.audit()["slots_charged_twice"] == 1  # the past is reported, not rewritten
    led.forget_legacy_token_secret()
    assert led.legacy_token_secret() is None


def test_an_old_sqlite_ledger_is_migrated_in_place(tmp_path):
    path = tmp_path / "ledger.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    _write_old(conn.execute, "INTEGER PRIMARY KEY AUTOINCREMENT")
    conn.close()
    path.chmod(0o644)
    led = SQLiteLedger(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _check_migrated(led)
    assert SQLiteLedger(path).schema_version() == SCHEMA_VERSION  # opening again migrates nothing
    assert stat.S_IMODE(SQLiteLedger(tmp_path / "new.sqlite").path.stat().st_mode) == 0o600


@pytest.mark.slow
def test_an_old_postgresql_ledger_is_migrated_in_place():
    import psycopg

    from genads.serve.ledger_pg import PostgresLedger

    dsn = pg_dsn()
    PostgresLedger(dsn).drop_all()
    with psycopg.connect(dsn, autocommit=True) as conn:
        _write_old(conn.execute, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    try:
        _check_migrated(PostgresLedger(dsn))
    finally:
        PostgresLedger(dsn).drop_all()
