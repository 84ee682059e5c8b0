"""A user's own log, as exported from a real system, through the README walk-through for both generator
families: string and zero-padded ids, ISO datetimes, a tab separator, users with one event and `view` actions ->
import -> train (parallel and SID) -> export -> serve -> events -> redeploy with --keep-state -> served-log
import -> retrain. Every id the service answers with, and every id the served log records, is the user's own."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import genads
from genads.cli import main
from tests.serve.conftest import NO_LIMITS, publisher_head


def genads_cli(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


def _messy_log(root: Path) -> tuple[Path, Path, set[str]]:
    """The example shop rewritten as a messy export; returns (events.csv, catalogue.csv, the user ids)."""
    genads_cli("data", "example", "--out", root / "csv", "--users", "80")
    events = pd.read_csv(root / "csv/events.csv", dtype=str)
    users = sorted(events["user"].unique())
    padded = {u: f"{i:05d}" for i, u in enumerate(users[:20], start=7)}  # numeric ids with leading zeros
    events["user"] = events["user"].map(lambda u: padded.get(u, u))
    events["ts"] = pd.to_datetime(events["ts"].astype(int), unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ads = events["item"].unique().tolist()
    lonely = pd.DataFrame({"user": [f"walk-in-{i}" for i in range(30)], "item": [ads[i % len(ads)] for i in range(30)],
                           "ts": "2024-06-01 10:00:00", "kind": "click"})  # one event each
    events = pd.concat([events, lonely], ignore_index=True)
    assert (events["kind"] == "view").any()
    path = root / "export.csv"  # tab-separated although it says .csv
    events.to_csv(path, sep="\t", index=False)
    return path, root / "csv/catalogue.csv", set(events["user"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own")
    events, catalogue, _ = _messy_log(root)
    genads_cli("data", "import", events, "--format", "csv", "--items", catalogue,
               "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
               "--action-map", "purchase=conversion", "--out", root / "data", "--quiet")
    genads_cli("tokenize", root / "data", "--out", root / "sids", "--sources", "attributes,collab", "--levels", "2",
               "--codebook", "8", "--quiet")
    for family in ("parallel", "sid"):
        extra = ["--sids", root / "sids"] if family == "sid" else ["--sources", "attributes"]
        genads_cli("train", root / "data", "--family", family, *extra, "--out", root / f"runs/{family}",
                   "--epochs", "1", "--quiet")
    return root


def test_the_import_kept_every_id_as_written(shop):
    ds = genads.load(shop / "runs/parallel").dataset
    users = set(map(str, ds.vocab.labels("user", ds.events["user_id"].unique())))
    assert "00007" in users and "7" not in users  # padded ids are not merged into numbers
    assert {f"walk-in-{i}" for i in range(30)} <= users
    assert ds.events["timestamp"].min() > 1_000_000_000  # the datetimes became seconds since 1970


@pytest.mark.parametrize("family", ["parallel", "sid"])
def test_serve_redeploy_and_retrain_in_the_users_ids(shop, family, tmp_path):
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    run = genads.load(shop / f"runs/{family}")
    known_ads = {str(a) for a in run.dataset.vocab.labels("ad", run.dataset.catalogue["ad_id"])}
    bundle = tmp_path / "bundle"
    genads_cli("export", shop / f"runs/{family}", "--out", bundle)
    with TestClient(build_app(bundle, traffic=NO_LIMITS), headers=publisher_head(bundle)) as client:
        for user in ("00007", "walk-in-3", run.users()[-1]):
            r = client.post("/v1/ads", json={"user_id": user, "slots": 3})
            assert r.status_code == 200, r.text
            slate = r.json()["slate"]
            assert slate and {s["ad"] for s in slate} <= known_ads
        for s in slate:
            for kind in ("impression", "click"):
                e = client.post("/v1/events", json={"idempotency_key": f"{kind}-{s['position']}", "type": kind,
                                                    "token": s["token"]})
                assert e.status_code == 200, e.text
    log = [json.loads(line) for line in (bundle / "state/served.jsonl").read_text().splitlines()]
    assert {r["user_id"] for r in log if r["type"] == "slate"} == {"00007", "walk-in-3", str(run.users()[-1])}
    assert {a for r in log if r["type"] == "slate" for a in r["ads"]} <= known_ads
    spent = (bundle / "state/ledger.sqlite").stat().st_size

    genads_cli("data", "import", bundle / "state/served.jsonl", "--format", "served-log", "--items", shop / "data",
               "--out", tmp_path / "data2", "--quiet")
    extra = ["--sids", shop / "sids"] if family == "sid" else []
    genads_cli("train", tmp_path / "data2", "--family", family, *extra, "--init", shop / f"runs/{family}",
               "--out", tmp_path / "run2", "--epochs", "1", "--quiet")
    assert main(["export", str(tmp_path / "run2"), "--out", str(bundle)]) == 2  # it has served: state is refused
    genads_cli("export", tmp_path / "run2", "--out", bundle, "--keep-state")
    assert (bundle / "state/ledger.sqlite").stat().st_size >= spent
    admin = (bundle / "state/admin.key").read_text().strip()
    with TestClient(build_app(bundle, traffic=NO_LIMITS), headers=publisher_head(bundle)) as client:
        campaigns = client.get("/v1/campaigns", headers={"X-API-Key": admin})
        assert campaigns.status_code == 200 and sum(c["spent"] for c in campaigns.json()) > 0  # spend survived
        again = client.post("/v1/ads", json={"user_id": "00007", "slots": 2})
        assert again.status_code == 200 and {s["ad"] for s in again.json()["slate"]} <= known_ads
    recommended = genads.load(tmp_path / "run2").recommend(user="00007", k=3)
    assert set(map(str, recommended["ad"])) <= known_ads
