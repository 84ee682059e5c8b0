"""Group commit of events (issue 29): ``record_events`` writes a group in one transaction with the outcome of each
event as if recorded one by one, on SQLite and PostgreSQL, and the ledger's invariants hold under concurrent
groups (spent = sum of charges <= budget, one charge per slot); the GroupWriter groups what queues meanwhile."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from fastapi.testclient import TestClient

from genads.serve.app import create_app
from genads.serve.group_commit import GroupWriter
from genads.serve.ledger import MICROS, Event, LedgerError, group_order
from genads.serve.ledger_sqlite import SQLiteLedger
from tests.serve.conftest import NO_LIMITS, PUBLISHER, make_engine

CLEAN = {"spent_mismatch": 0, "refund_mismatch": 0, "refunds_over_charge": 0, "over_budget": 0, "slots_charged_twice": 0}


def _ev(key: str, kind: str, campaign: int, ad: int, request: str, price: float, at: float = 100.0) -> Event:
    return Event(key, kind, campaign, ad, request, round(price * MICROS), None, at)


def _script(c1: int, c2: int) -> list[Event]:
    """Every kind of outcome: charges, a charge capped by the budget, replays, a key reused for another event, a
    click before its impression, a second key on a charged slot, a foreign ad, a forged price, a conversion."""
    return [
        _ev("i", "impression", c1, 7, "r1", 0.4), _ev("c", "click", c1, 7, "r1", 0.4),
        _ev("c", "click", c1, 7, "r1", 0.4),  # replay: the stored charge, nothing new
        _ev("c2", "click", c1, 7, "r1", 0.4),  # the slot's click under another key: 409
        _ev("x", "click", c2, 9, "r2", 0.3), _ev("i", "impression", c2, 9, "r2", 0.3),  # applied after its impression
        _ev("y", "click", c2, 9, "r7", 0.3),  # no impression: 409
        _ev("i", "click", c2, 9, "r2", 0.3),  # key "i" of r2 is the impression's: 409
        _ev("i", "impression", c1, 8, "r3", 0.5), _ev("k", "click", c1, 8, "r3", 0.5),  # capped at the budget left
        _ev("f", "impression", c1, 99, "r4", 0.1),  # not the campaign's ad
        Event("p", "click", c1, 7, "r5", -3, None, 100.0),  # forged price
        _ev("v", "conversion", c2, 9, "r2", 0.0), _ev("w", "conversion", c1, 8, "r6", 0.0),  # the second: no click
    ]


def _outcome(x) -> tuple:
    if isinstance(x, LedgerError):
        return ("error", x.field, x.status)
    return (x.idempotency_key, x.charged_micros, x.duplicate, x.exhausted, x.invalid)


def _state(ledger, ids: list[int]) -> tuple:
    with ledger._tx(write=False) as cur:
        events = ledger._run(cur, "SELECT request_id, idempotency_key, type, ad_id, charged_micros, invalid FROM events "
                                  "ORDER BY request_id, idempotency_key").fetchall()
        slots = ledger._run(cur, "SELECT request_id, ad_id, type, idempotency_key FROM slot_events "
                                 "ORDER BY request_id, ad_id, type").fetchall()
    return [tuple(e) for e in events], [tuple(s) for s in slots], [ledger.totals(c) for c in ids]


def test_a_group_records_what_one_by_one_records(ledger, tmp_path):
    one = SQLiteLedger(tmp_path / "one.sqlite", synchronous="OFF")
    outcomes = []
    for led in (one, ledger):
        c1 = led.create_campaign(1, "a", [7, 8], bid=1.0, budget=0.8).campaign_id
        c2 = led.create_campaign(2, "b", [9], bid=1.0, budget=5.0).campaign_id
        script = _script(c1, c2)
        if led is one:  # one by one, in the order the group is applied in
            got = [None] * len(script)
            for i in group_order(script):
                try:
                    got[i] = led.record_event(script[i], require_impression=True)
                except LedgerError as err:
                    got[i] = err
        else:
            got = ledger.record_events(script, require_impression=True)
        outcomes.append(([_outcome(x) for x in got], _state(led, [c1, c2])))
    assert outcomes[0] == outcomes[1]
    results, (_, _, totals) = outcomes[1]
    assert sum(r[0] == "error" for r in results) == 5 and totals[0][0] == 800_000  # a spent its whole budget
    assert {k: v for k, v in ledger.audit().items() if k in CLEAN} == CLEAN
    one.close()


def test_a_refused_event_writes_nothing_and_the_rest_of_its_group_stands(ledger):
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=10.0).campaign_id
    group = [_ev("a", "click", c, 7, "r1", 0.5), _ev("b", "click", c, 7, "r1", 0.5),  # second key: refused
             _ev("a", "click", c, 7, "r2", 0.25)]
    got = ledger.record_events(group)
    assert isinstance(got[1], LedgerError) and got[1].status == 409
    assert [got[0].charged_micros, got[2].charged_micros] == [500_000, 250_000]
    assert ledger.totals(c) == (750_000, 750_000, 2)
    again = ledger.record_events(group)  # replayed as a group: the stored outcomes, nothing new
    assert [x.duplicate for x in (again[0], again[2])] == [True, True] and ledger.totals(c) == (750_000, 750_000, 2)


def test_what_a_refused_event_wrote_before_its_refusal_is_undone(ledger, monkeypatch):
    """The event row of "boom" loses a race after its slot was claimed (as when another server took its key):
    its savepoint is rolled back, so its slot is free again, and the events around it stand."""
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=10.0).campaign_id
    real = type(ledger)._run

    def run(self, cur, query, params=()):
        if query.startswith("INSERT INTO events") and params[0] == "boom":
            query, params = "SELECT idempotency_key FROM events WHERE 1 = 0", ()  # inserted nothing
        return real(self, cur, query, params)

    monkeypatch.setattr(type(ledger), "_run", run)
    got = ledger.record_events([_ev("a", "click", c, 7, "r1", 0.5), _ev("boom", "click", c, 7, "r2", 0.5),
                                _ev("a", "click", c, 7, "r3", 0.25)])
    assert isinstance(got[1], LedgerError) and got[1].field == "idempotency_key"
    assert ledger.totals(c) == (750_000, 750_000, 2)
    monkeypatch.setattr(type(ledger), "_run", real)
    assert ledger.record_event(_ev("other", "click", c, 7, "r2", 0.5)).charged_micros == 500_000  # the slot is free


def test_a_group_the_database_fails_is_written_one_by_one(ledger, monkeypatch):
    """A database error inside the group's transaction (a deadlock, a lost connection) rolls it all back; each event
    is then written in its own transaction, with the outcome it would have had."""
    c = ledger.create_campaign(1, "c", [7], bid=1.0, budget=10.0).campaign_id
    real, failed = type(ledger)._run, []

    def run(self, cur, query, params=()):
        if query.startswith("INSERT INTO events") and params[0] == "b" and not failed:
            failed.append(query)
            raise RuntimeError("deadlock detected")
        return real(self, cur, query, params)

    monkeypatch.setattr(type(ledger), "_run", run)
    got = ledger.record_events([_ev("a", "click", c, 7, "r1", 0.5), _ev("b", "click", c, 7, "r2", 0.25),
                                _ev("c", "click", c, 7, "r2", 0.25)])
    assert failed and [_outcome(x) for x in got] == [("a", 500_000, False, False, None), ("b", 250_000, False, False, None),
                                                     ("error", "token", 409)]
    assert ledger.totals(c) == (750_000, 750_000, 2)


def test_concurrent_groups_keep_the_ledger_invariants(ledger):
    """8 threads write groups of clicks (with replays and second keys) on 4 campaigns that can pay for about half
    of them, in shuffled order: spent = sum of charges <= budget for each, and no slot is charged twice."""
    ids = [ledger.create_campaign(1 + i % 2, f"c{i}", [7, 8], bid=1.0, budget=4.0).campaign_id for i in range(4)]
    rng = random.Random(0)
    clicks = [_ev(f"k{n}", "click", rng.choice(ids), rng.choice([7, 8]), f"r{n // 2}", rng.choice([0.1, 0.2, 0.3]))
              for n in range(160)]
    clicks += [_ev(f"k{n}", "click", c.campaign_id, c.ad_id, c.request_id, 0.3) for n, c in enumerate(clicks[:40])]
    rng.shuffle(clicks)
    groups = [clicks[i:i + rng.randint(1, 12)] for i in range(0, len(clicks), 10)]
    charged: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        try:
            for g in groups[t::8]:
                got = ledger.record_events(g)
                with lock:
                    charged.extend(x.charged_micros for x in got if not isinstance(x, LedgerError) and not x.duplicate)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    totals = [ledger.totals(c) for c in ids]
    assert sum(t[0] for t in totals) == sum(t[1] for t in totals) == sum(charged)
    assert all(spent <= 4 * MICROS for spent, _, _ in totals) and sum(t[0] for t in totals) > 8 * MICROS
    assert {k: v for k, v in ledger.audit().items() if k in CLEAN} == CLEAN


def test_the_group_writer_groups_what_queues_while_it_writes():
    first, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def write(items: list[int]) -> list[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            first.set()
            release.wait(10)
        return [ValueError(str(x)) if x == 3 else 10 * x for x in items]

    writer: GroupWriter[int, int] = GroupWriter(write, max_group=4)

    async def main() -> list:
        futures = [writer.submit(0)]
        await asyncio.get_running_loop().run_in_executor(None, first.wait, 10)
        futures += [writer.submit(i) for i in range(1, 7)]  # queued while the first group is being written
        release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    got = asyncio.run(main())
    writer.close()
    assert calls == [[0], [1, 2, 3, 4], [5, 6]]  # at most max_group at a time, in arrival order
    assert got[:3] == [0, 10, 20] and isinstance(got[3], ValueError) and got[4:] == [40, 50, 60]
    assert (writer.groups, writer.items) == (3, 7)


def test_concurrent_events_over_http_are_charged_once_per_slot(bundle, tmp_path):
    """16 client threads report impressions, clicks and click replays of the same slates at once through the
    group writer: each slot is charged once, replays are answered with the stored charge, spent = charges."""
    ledger = SQLiteLedger(tmp_path / "l.sqlite")
    engine = make_engine(bundle, ledger)
    with TestClient(create_app(engine, traffic=NO_LIMITS), headers={"X-API-Key": PUBLISHER}) as client:
        slots = [(a["request_id"], s["token"]) for a in (client.post("/v1/ads", json={"user_id": u, "slots": 3}).json()
                                                         for u in range(1, 9)) for s in a["slate"]]
        for rid, token in slots:
            assert client.post("/v1/events", json={"idempotency_key": f"{rid}-{token[-6:]}-i", "type": "impression",
                                                   "token": token}).status_code == 200
        answers: list = []
        lock = threading.Lock()

        def send(t: int) -> None:
            for rid, token in slots[t % 4::4]:
                r = client.post("/v1/events", json={"idempotency_key": f"{rid}-{token[-6:]}-c", "type": "click",
                                                    "token": token})
                with lock:
                    answers.append((rid, token, r.status_code, r.json()))

        threads = [threading.Thread(target=send, args=(t,)) for t in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert len(answers) == 4 * len(slots) and all(code == 200 for _, _, code, _ in answers)
    by_slot: dict = {}
    for rid, token, _, body in answers:
        by_slot.setdefault((rid, token), []).append(body)
    fresh = [sum(not b["duplicate"] for b in bodies) for bodies in by_slot.values()]
    assert fresh == [1] * len(slots)  # one recorded click per slot, the other three replays of it
    assert all(len({b["charged"] for b in bodies}) == 1 for bodies in by_slot.values())
    charged = sum(next(b["charged"] for b in bodies if not b["duplicate"]) for bodies in by_slot.values())
    audit = ledger.audit()
    assert audit["charged_micros"] == round(charged * MICROS) > 0
    assert {k: v for k, v in audit.items() if k in CLEAN} == CLEAN
    ledger.close()


@pytest.mark.parametrize("revoke", ["api", "elsewhere"])
def test_a_cached_publisher_key_stops_working_when_revoked(engine, revoke, monkeypatch):
    """The key check is cached (no ledger read per request), but a revocation through the API clears the cache at
    once, and one made through another ledger object (the CLI, another worker) counts once the entry expires."""
    import genads.serve.keys as keys

    ledger = engine.ledger
    reads = []
    real = type(ledger).principal
    monkeypatch.setattr(type(ledger), "principal", lambda self, key: reads.append(key) or real(self, key))
    now = [1000.0]
    monkeypatch.setattr(keys, "_clock", lambda: now[0])
    with TestClient(create_app(engine, traffic=NO_LIMITS)) as client:
        key = client.post("/v1/publishers/site-z/keys", headers={"X-API-Key": "admin-test-key"}).json()
        head = {"X-API-Key": key["api_key"]}
        for _ in range(3):
            assert client.post("/v1/ads", json={"slots": 1}, headers=head).status_code == 200
        assert reads.count(key["api_key"]) == 1  # looked up once, then answered from the cache
        if revoke == "api":
            assert client.delete(f"/v1/keys/{key['key_id']}", headers={"X-API-Key": "admin-test-key"}).status_code == 200
        else:
            other = SQLiteLedger(ledger.path, synchronous="OFF")
            other.revoke_key(key["key_id"])
            other.close()
            assert client.post("/v1/ads", json={"slots": 1}, headers=head).status_code == 200  # still cached
            now[0] += keys.KEY_CACHE_S + 0.01
        assert client.post("/v1/ads", json={"slots": 1}, headers=head).status_code == 401
        assert client.post("/v1/ads", json={"slots": 1}, headers=head).status_code == 401  # revoked: never cached
