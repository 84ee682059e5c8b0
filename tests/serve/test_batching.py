"""Micro-batching: a batch of requests gets exactly what each request gets alone, for both generator families,
and the batcher serves concurrent callers in batches (issue 29)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from genads.serve.batching import BatchConfig, MicroBatcher, Overloaded
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdRequest
from genads.serve.ledger import SQLiteLedger
from genads.serve.synthetic import synthetic_bundle
from tests.serve.conftest import make_engine


@pytest.fixture(scope="module", params=["sid", "parallel"])
def family_bundle(request, tmp_path_factory):
    path = synthetic_bundle(tmp_path_factory.mktemp(request.param) / "serve", 150, n_advertisers=5, budget=50.0,
                            family=request.param)
    return load_bundle(path)


@pytest.fixture
def fresh_engine(family_bundle, tmp_path):
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite", synchronous="OFF")
    yield make_engine(family_bundle, ledger)
    ledger.close()


def _requests(engine, n: int, seed: int = 0) -> list[AdRequest]:
    rng = np.random.default_rng(seed)
    items = np.array(sorted(engine.live))
    ad_ids = [int(engine.ad_of[i]) for i in items[:5]]
    out = []
    for i in range(n):
        history = rng.choice(items, size=int(rng.integers(0, 12)), replace=False)  # lengths differ, some empty
        exclude = frozenset(ad_ids[: i % 3])
        out.append(AdRequest(history, slots=1 + i % 4, exclude=exclude))
    return out


def _view(result) -> tuple:
    return result.mechanism, [(p.ad_id, p.position, p.campaign_id, p.bid, round(p.price, 9)) for p in result.placements]


def test_a_batch_gets_what_each_request_gets_alone(fresh_engine):
    reqs = _requests(fresh_engine, 12)
    alone = [_view(fresh_engine.serve(r.history, r.slots, set(r.exclude))) for r in reqs]
    together = [_view(r) for r in fresh_engine.serve_batch(reqs)]
    assert together == alone
    assert any(p for _, p in alone)  # not a vacuous comparison of empty slates
    assert len({r.request_id for r in fresh_engine.serve_batch(reqs[:3])}) == 3


def test_the_batcher_serves_queued_callers_together_and_exactly(fresh_engine):
    reqs = _requests(fresh_engine, 24, seed=1)
    expected = [_view(fresh_engine.serve(r.history, r.slots, set(r.exclude))) for r in reqs]
    batcher = MicroBatcher(fresh_engine.serve_batch, BatchConfig(max_batch=8, max_wait_ms=0), start=False)
    futures = [batcher.submit(r) for r in reqs]  # queued before the worker runs: batches of 8, deterministically
    batcher.start()
    assert [_view(f.result(30)) for f in futures] == expected
    assert (batcher.batches, batcher.requests) == (3, 24)
    batcher.close()


def test_concurrent_threads_get_their_own_answers(fresh_engine):
    reqs = _requests(fresh_engine, 16, seed=2)
    expected = [_view(fresh_engine.serve(r.history, r.slots, set(r.exclude))) for r in reqs]
    batcher = MicroBatcher(fresh_engine.serve_batch, BatchConfig(max_batch=16, max_wait_ms=5))
    got: list = [None] * len(reqs)
    gate = threading.Barrier(len(reqs))

    def call(i: int) -> None:
        gate.wait()
        got[i] = _view(batcher.serve(reqs[i]))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    batcher.close()
    assert got == expected and batcher.requests == len(reqs)


def test_a_full_queue_is_refused_and_errors_reach_every_waiter(fresh_engine):
    def broken(requests):
        raise RuntimeError("decoder died")

    batcher = MicroBatcher(broken, BatchConfig(max_queue=2), start=False)
    reqs = _requests(fresh_engine, 3)
    futures = [batcher.submit(r) for r in reqs[:2]]
    with pytest.raises(Overloaded):
        batcher.submit(reqs[2])
    batcher.start()
    for f in futures:
        with pytest.raises(RuntimeError, match="decoder died"):
            f.result(30)
    assert batcher.pending == 0
    batcher.submit(reqs[2])  # room again once the batch was answered
    batcher.close()
    with pytest.raises(ValueError, match="max_batch"):
        BatchConfig(max_batch=0)


def test_requests_of_one_user_never_share_a_batch(fresh_engine):
    """The frequency caps count what a user was served: its second request must see the first one's slate, so the
    two go to successive batches, in order; other users' requests fill the batch meanwhile."""
    reqs = [replace(r, user=u) for r, u in zip(_requests(fresh_engine, 6, seed=3), "aabacc", strict=True)]
    seen: list[list[str]] = []

    def record(batch):
        seen.append([r.user for r in batch])
        return fresh_engine.serve_batch(batch)

    batcher = MicroBatcher(record, BatchConfig(max_batch=8, max_wait_ms=0), start=False)
    futures = [batcher.submit(r) for r in reqs]
    batcher.start()
    for f in futures:
        f.result(30)
    batcher.close()
    assert seen == [["a", "b", "c"], ["a", "c"], ["a"]]
