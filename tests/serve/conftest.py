"""Serving fixtures: a tiny synthetic bundle (built once), apps on fresh ledgers, the PostgreSQL DSN."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from genads.serve.app import create_app
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLiteLedger
from genads.serve.synthetic import synthetic_bundle
from genads.serve.traffic import TrafficPolicy

ADMIN = "admin-test-key"
PUBLISHER = "publisher-test-key"
"""A publisher key every test engine holds (``/v1/ads`` and ``/v1/events`` need one)."""
NO_LIMITS = TrafficPolicy(limits=False)
"""Keys required, but no rate limits, caps or invalid-click rules: for tests of other rules that click fast and
often from one client (tests/serve/test_traffic.py tests the limits)."""
PG_ENV = "GENADS_TEST_PG_DSN"
"""Set by .ci/run (which starts a local PostgreSQL); when set, an unreachable server fails the tests."""
PG_DEFAULT = "postgresql://genads:genads@localhost:5432/genads_test"


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return synthetic_bundle(tmp_path_factory.mktemp("bundle") / "serve", 300, n_advertisers=4, budget=50.0)


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


def make_engine(bundle, ledger, **config) -> AdEngine:
    """An engine on a seeded ledger with the test keys; campaigns may be resumed at once after a pause
    (``min_pause_s=0``) unless ``config`` says otherwise (tests/serve/test_traffic.py tests the minimum)."""
    seed_campaigns(ledger, bundle)
    ledger.add_key(None, ADMIN)
    ledger.add_key(None, PUBLISHER, publisher="test")
    return AdEngine(bundle, ledger, ServeConfig(**{"refresh_s": 0.0, "min_pause_s": 0.0, **config}))


@pytest.fixture
def engine(bundle, tmp_path):
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite", synchronous="OFF")
    yield make_engine(bundle, ledger)
    ledger.close()


@pytest.fixture
def client(engine):
    from fastapi.testclient import TestClient

    with TestClient(create_app(engine, traffic=NO_LIMITS, docs=True), headers={"X-API-Key": PUBLISHER}) as c:
        yield c


def pg_dsn() -> str:
    """A reachable PostgreSQL DSN, or skip (fail when $GENADS_TEST_PG_DSN is set: CI promised a server)."""
    dsn = os.environ.get(PG_ENV)
    try:
        import psycopg

        with psycopg.connect(dsn or PG_DEFAULT, connect_timeout=3):
            pass
    except Exception as err:
        if dsn:
            pytest.fail(f"${PG_ENV}={dsn} is set but PostgreSQL is unreachable: {err}")
        pytest.skip(f"no PostgreSQL server at {PG_DEFAULT} (set ${PG_ENV}; .ci/run starts one): "
                    f"{type(err).__name__}")
    return dsn or PG_DEFAULT


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    """A fresh ledger on each backend (PostgreSQL: see pg_dsn)."""
    if request.param == "sqlite":
        led = SQLiteLedger(tmp_path / "ledger.sqlite")
        yield led
        led.close()
        return
    from genads.serve.ledger_pg import PostgresLedger

    led = PostgresLedger(pg_dsn())
    led.drop_all()
    led = PostgresLedger(led.dsn)
    yield led
    led.drop_all()
    led.close()


def publisher_head(folder: Path) -> dict[str, str]:
    """The X-API-Key header of the publisher key ``build_app`` wrote to the bundle's state/publisher.key."""
    from genads.serve.server import PUBLISHER_FILE, bundle_dir

    return {"X-API-Key": (bundle_dir(folder) / "state" / PUBLISHER_FILE).read_text().strip()}
