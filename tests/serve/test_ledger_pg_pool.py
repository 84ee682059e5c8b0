"""PostgreSQL: impressions are recorded while a charge holds the campaign row; connections come from a bounded pool."""

from __future__ import annotations

import threading

import psycopg
import pytest

from genads.serve.ledger import Event
from tests.serve.conftest import pg_dsn


@pytest.fixture
def pg():
    from genads.serve.ledger_pg import PostgresLedger

    led = PostgresLedger(pg_dsn(), pool_size=2)
    led.drop_all()
    led.close()
    led = PostgresLedger(pg_dsn(), pool_size=2)
    yield led
    led.drop_all()
    led.close()


def test_impressions_do_not_wait_for_a_locked_campaign_row_but_clicks_do(pg):
    c = pg.create_campaign(1, "c", [7], bid=1.0, budget=5.0)
    with psycopg.connect(pg.dsn, autocommit=True) as other, other.transaction():
        other.execute("SELECT 1 FROM campaigns WHERE campaign_id = %s FOR UPDATE", (c.campaign_id,))
        # the row is locked (as by a concurrent charge): an impression still goes through at once
        r = pg.record_event(Event("i1", "impression", c.campaign_id, 7, "req1", 500_000))
        assert r.charged_micros == 0 and not r.duplicate
        done = threading.Event()
        clicked = threading.Thread(target=lambda: (pg.record_event(Event("c1", "click", c.campaign_id, 7, "req1",
                                                                         500_000)), done.set()))
        clicked.start()
        assert not done.wait(0.5)  # the click waits for the row (bounded wait: this is an ordering check)
    clicked.join(10)
    assert done.is_set() and pg.campaign(c.campaign_id).spent_micros == 500_000


def test_pool_size_bounds_connections(pg):
    assert pg.pool.get_stats()["pool_max"] == 2
    threads = [threading.Thread(target=pg.campaigns) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pg.pool.get_stats()["pool_size"] <= 2
