"""The budget ledger on SQLite and PostgreSQL: atomic charges, idempotency, never overspending."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genads.serve.ledger import MICROS, Event, LedgerError


def click(key: str, campaign: int, price: float, ad: int = 7, request: str | None = None) -> Event:
    """A click on its own slot (request id from the key) unless ``request`` names one."""
    return Event(key, "click", campaign, ad, request or f"r{key.encode().hex()}", round(price * MICROS))


def test_charge_caps_at_budget_and_replays_are_free(ledger):
    c = ledger.create_campaign(1, "c", [7, 8], bid=1.0, budget=1.0)
    v0 = ledger.version()
    assert ledger.record_event(click("a", c.campaign_id, 0.4)).charged_micros == 400_000
    assert ledger.record_event(click("b", c.campaign_id, 0.4)).charged_micros == 400_000
    last = ledger.record_event(click("c", c.campaign_id, 0.4))
    assert (last.charged_micros, last.exhausted) == (200_000, True)
    assert ledger.version() > v0  # the campaign stops serving: servers must reload
    again = ledger.record_event(click("a", c.campaign_id, 0.4))
    assert again.duplicate and again.charged_micros == 400_000
    assert ledger.record_event(click("d", c.campaign_id, 0.4)).charged_micros == 0
    assert ledger.totals(c.campaign_id) == (1_000_000, 1_000_000, 4)
    assert not ledger.campaign(c.campaign_id).serving


def test_impressions_are_recorded_not_charged(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=5.0)
    r = ledger.record_event(Event("i1", "impression", c.campaign_id, 7, "ab", 500_000))
    assert r.charged_micros == 0 and ledger.totals(c.campaign_id) == (0, 0, 1)


def test_reused_key_for_another_event_is_refused(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=5.0)
    ledger.record_event(click("k", c.campaign_id, 0.1, request="ab"))
    with pytest.raises(LedgerError) as err:  # the same key, the same request: another event
        ledger.record_event(Event("k", "conversion", c.campaign_id, 7, "ab", 0))
    assert err.value.field == "idempotency_key" and err.value.status == 409


def test_updates_keys_and_guards(ledger):
    c = ledger.create_campaign(2, "c", [7], bid=1.0, budget=1.0)
    ledger.record_event(click("a", c.campaign_id, 0.5))
    with pytest.raises(LedgerError, match="budget"):
        ledger.update_campaign(c.campaign_id, budget=0.25)
    with pytest.raises(LedgerError) as err:
        ledger.update_campaign(999, status="paused")
    assert err.value.status == 404
    out = ledger.update_campaign(c.campaign_id, status="paused", ad_ids=[9, 8], bid=2.0)
    assert (out.status, out.ad_ids, out.bid_micros, out.spent_micros) == ("paused", (8, 9), 2_000_000, 500_000)
    key = ledger.add_key(2)
    assert ledger.principal(key)[:2] == (False, 2) and ledger.principal("nope") is None
    assert ledger.principal(ledger.add_key(None))[:2] == (True, None)
    assert [x.campaign_id for x in ledger.campaigns(2)] == [c.campaign_id] and ledger.campaigns(3) == []


def test_concurrent_charges_never_overspend(ledger):
    """64 threads, 4 clicks each, on one campaign that can pay for about half of them."""
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=50.0)
    charged = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(4):
            r = ledger.record_event(click(f"t{t}-{i}", c.campaign_id, 0.37 + 0.01 * (i % 3)))
            with lock:
                charged.append(r.charged_micros)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(64)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    spent, total, n = ledger.totals(c.campaign_id)
    assert n == 256 and spent == total == sum(charged) == 50 * MICROS


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(budget=st.integers(0, 5_000), prices=st.lists(st.tuples(st.integers(0, 900), st.booleans()), max_size=12))
def test_spent_equals_charged_and_fits_budget(ledger, budget, prices):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=budget / 1000)
    keys = []
    for price, replay in prices:
        key = keys[-1] if replay and keys else uuid.uuid4().hex
        ledger.record_event(click(key, c.campaign_id, price / 1000))  # a replay returns the stored charge
        keys.append(key)
    spent, total, n = ledger.totals(c.campaign_id)
    assert spent == total <= budget * 1000 and n == len(set(keys))
