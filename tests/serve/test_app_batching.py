"""Micro-batching behind POST /v1/ads (issue 29): a batch answers every request exactly as one-by-one serving
does (same ads, positions, campaigns, prices, pCTRs; frequency caps counted in arrival order), and a pause
acknowledged while a batch is being decoded is never served to a request sent after the acknowledgement."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from genads.serve.app import create_app
from genads.serve.ledger import SQLiteLedger
from genads.serve.limits import Limits
from genads.serve.traffic import TrafficPolicy
from tests.serve.conftest import ADMIN, PUBLISHER, make_engine

CAPS = TrafficPolicy(freq_cap_ad=1, freq_cap_campaign=4)
"""Tight caps: a user's second and third requests are shaped by what its first ones were served."""


def _bodies() -> list[dict]:
    out = []
    for i in range(18):
        if i % 3 == 0:
            out.append({"history": [1001 + (7 * i) % 290, 1002 + (11 * i) % 290], "slots": 1 + i % 5})
        else:  # users 1..4 come back several times: their caps change between their requests
            out.append({"user_id": 1 + i % 4, "slots": 2 + i % 4, "context": {"exclude": [1001 + i] if i % 4 else []}})
    return out


def _view(answer: httpx.Response) -> tuple:
    assert answer.status_code == 200, answer.text
    out = answer.json()
    return out["mechanism"], [(s["ad_id"], s["position"], s["campaign_id"], s["price"], s["pctr"],
                               s["creative"]["title"]) for s in out["slate"]]


def _gate(app, engine):
    """Hold the decoder inside its next batch until the returned event is set (the batch is still pending)."""
    gate, entered, real = threading.Event(), threading.Event(), engine.serve_batch

    def held(requests):
        if not gate.is_set():
            entered.set()
            assert gate.wait(30)
        return real(requests)

    engine.serve_batch = held
    return gate, entered


async def _send_in_order(app, bodies: list[dict], gate: threading.Event, entered: threading.Event) -> list:
    """The bodies' requests, each queued before the next is sent (the first one decoding, held by the gate); then
    the gate opens and the rest go through in batches."""
    batcher = app.state.batcher
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": PUBLISHER}) as c:
        tasks = []
        for i, body in enumerate(bodies):
            tasks.append(asyncio.create_task(c.post("/v1/ads", json=body)))
            while batcher.pending < i + 1:
                await asyncio.sleep(0.001)
            if i == 0:
                while not entered.is_set():
                    await asyncio.sleep(0.001)
        gate.set()
        return await asyncio.gather(*tasks)


@pytest.fixture
def engines(bundle, tmp_path):
    ledgers = [SQLiteLedger(tmp_path / f"{name}.sqlite", synchronous="OFF") for name in ("alone", "batched")]
    yield [make_engine(bundle, ledger) for ledger in ledgers]
    for ledger in ledgers:
        ledger.close()


def test_micro_batched_answers_equal_one_by_one_answers(engines):
    alone_engine, batched_engine = engines
    bodies = _bodies()
    alone = create_app(alone_engine, traffic=CAPS, limits=Limits(max_batch=1))

    async def one_by_one(app) -> list:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": PUBLISHER}) as c:
            return [await c.post("/v1/ads", json=body) for body in bodies]

    expected = [_view(r) for r in asyncio.run(one_by_one(alone))]
    uncapped = [_view(r) for r in asyncio.run(one_by_one(create_app(alone_engine, traffic=TrafficPolicy(limits=False))))]
    batched = create_app(batched_engine, traffic=CAPS, limits=Limits(max_batch=16, batch_wait_ms=50))
    gate, entered = _gate(batched, batched_engine)
    got = [_view(r) for r in asyncio.run(_send_in_order(batched, bodies, gate, entered))]
    batcher = batched.state.batcher
    assert got == expected
    assert batcher.requests == len(bodies) and batcher.batches < len(bodies) - 8  # they were decoded in batches
    assert alone.state.batcher.batches == len(bodies)
    assert sum(len(s) for _, s in expected) > len(bodies) and len({tuple(s) for _, s in expected}) > 5
    assert expected != uncapped  # the caps shaped some answers: arrival order mattered and was kept


def test_a_pause_acknowledged_during_a_batch_is_never_served_after(engines, bundle):
    engine = engines[1]
    app = create_app(engine, traffic=TrafficPolicy(limits=False), limits=Limits(max_batch=16, batch_wait_ms=50))
    admin = {"X-API-Key": ADMIN}
    body = {"history": [1001, 1002, 1003], "slots": 8}

    async def run() -> tuple[list, list]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": PUBLISHER}) as c:
            campaigns = (await c.get("/v1/campaigns", headers=admin)).json()
            target = max(campaigns, key=lambda x: len(x["ad_ids"]))["campaign_id"]
            assert (await c.patch(f"/v1/campaigns/{target}", headers=admin, json={"bid": 50.0})).status_code == 200
            before = [(await c.post("/v1/ads", json=body)).json() for _ in range(3)]
            gate, entered = _gate(app, engine)
            during = [asyncio.create_task(c.post("/v1/ads", json=body)) for _ in range(4)]  # a batch, held
            while not entered.is_set():
                await asyncio.sleep(0.001)
            paused = await c.post(f"/v1/campaigns/{target}/pause", headers=admin)  # acknowledged mid-batch
            assert paused.status_code == 200 and not paused.json()["serving"]
            after = [asyncio.create_task(c.post("/v1/ads", json=body)) for _ in range(6)]  # sent after the answer
            while app.state.batcher.pending < 10:
                await asyncio.sleep(0.001)
            gate.set()
            await asyncio.gather(*during)
            return [target], before + [(await t).json() for t in after]

    (target,), answers = asyncio.run(run())
    before, after = answers[:3], answers[3:]
    assert all(any(s["campaign_id"] == target for s in a["slate"]) for a in before)  # it wins while active
    assert all(a["slate"] and not any(s["campaign_id"] == target for s in a["slate"]) for a in after)
    assert app.state.batcher.batches < app.state.batcher.requests  # the six came in batched
