"""Redeploying over a served bundle: state/ is refused, kept (ids aligned) or discarded; never lost silently."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genads.cli import main
from genads.data.vocab import MAX_ID, IdVocabulary
from genads.serve.bundle import load_bundle
from genads.serve.redeploy import StateExistsError, align_ids
from tests.serve.conftest import NO_LIMITS, publisher_head


def genads(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


def test_align_keeps_old_indices_and_appends_new_ids():
    old, new = IdVocabulary(), IdVocabulary()
    old.encode("ad", ["ad-a", "ad-b", "ad-gone"])
    new.encode("ad", ["ad-b", "ad-c", "ad-a"])  # another import order, one new ad, one gone
    new.encode("user", ["u1"])
    aligned = align_ids(new, old)
    assert aligned.vocab.index_of("ad", "ad-a") == old.index_of("ad", "ad-a") == MAX_ID
    assert aligned.vocab.index_of("ad", "ad-b") == MAX_ID + 1
    assert aligned.vocab.index_of("ad", "ad-gone") == MAX_ID + 2  # kept: the ledger's events still name it
    assert aligned.vocab.index_of("ad", "ad-c") == MAX_ID + 3
    moved = aligned.apply("ad", np.array([new.index_of("ad", s) for s in ("ad-b", "ad-c", "ad-a")] + [7]))
    assert moved.tolist() == [MAX_ID + 1, MAX_ID + 3, MAX_ID, 7]  # integer ids are their own index
    assert aligned.apply("user", np.array([MAX_ID])).tolist() == [MAX_ID]  # unchanged kinds pass through


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> Path:
    """The same shop imported twice in different row orders (so its string ids get other indices), each trained."""
    root = tmp_path_factory.mktemp("redeploy")
    genads("data", "example", "--out", root / "csv", "--users", "60")
    events = pd.read_csv(root / "csv/events.csv")
    catalogue = pd.read_csv(root / "csv/catalogue.csv")
    events.iloc[::-1].to_csv(root / "csv/events_rev.csv", index=False)
    catalogue.iloc[::-1].to_csv(root / "csv/catalogue_rev.csv", index=False)
    for name, ev, cat in (("a", "events.csv", "catalogue.csv"), ("b", "events_rev.csv", "catalogue_rev.csv")):
        genads("data", "import", root / "csv" / ev, "--format", "csv", "--items", root / "csv" / cat,
               "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
               "--action-map", "purchase=conversion", "--out", root / f"data_{name}", "--quiet")
        genads("train", root / f"data_{name}", "--family", "parallel", "--sources", "attributes", "--out",
               root / f"run_{name}", "--epochs", "1", "--quiet")
    return root


def _serve_and_click(bundle: Path) -> tuple[str, list[dict]]:
    """One slate with impressions and clicks charged; returns the admin key and the slate (tokens included)."""
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    with TestClient(build_app(bundle, traffic=NO_LIMITS), headers=publisher_head(bundle)) as client:  # clicks at test speed
        slate = client.post("/v1/ads", json={"user_id": "u0001", "slots": 3}).json()["slate"]
        for s in slate[:2]:
            for kind in ("impression", "click"):
                r = client.post("/v1/events", json={"idempotency_key": f"{kind}-{s['position']}", "type": kind,
                                                    "token": s["token"]})
                assert r.status_code == 200, r.text
    gc.collect()  # the server is gone: its ledger's connections close (SQLite checkpoints and removes the WAL) now
    return (bundle / "state/admin.key").read_text().strip(), slate


def test_keep_state_realigns_ids_so_spend_keys_and_tokens_still_apply(two_runs, tmp_path):
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    bundle = tmp_path / "bundle"
    genads("export", two_runs / "run_a", "--out", bundle)
    admin, slate = _serve_and_click(bundle)
    old = load_bundle(bundle)
    old_index = {old.vocab.label("ad", a): int(a) for a in old.ads["ad_id"]}
    new_vocab = IdVocabulary.load(two_runs / "data_b")
    assert any(new_vocab.index_of("ad", lab) != idx for lab, idx in old_index.items())  # the case that needs care

    with pytest.raises(StateExistsError, match="--keep-state"):
        from genads.serve.export import export_run

        export_run(two_runs / "run_b", bundle)
    genads("export", two_runs / "run_b", "--out", bundle, "--keep-state")
    new = load_bundle(bundle)
    assert new.manifest["source"]["dataset"] == "data_b"
    assert {new.vocab.label("ad", a): int(a) for a in new.ads["ad_id"]} == old_index
    assert dict(zip(new.ads["ad_id"], new.ads["advertiser_id"], strict=True)) == dict(
        zip(old.ads["ad_id"], old.ads["advertiser_id"], strict=True))
    record = json.loads((bundle / "state/migrations.jsonl").read_text().splitlines()[-1])
    assert record["ids_realigned"]["ad"] > 0 and record["catalogue"]["ads_added"] == 0

    with TestClient(build_app(bundle, traffic=NO_LIMITS), headers=publisher_head(bundle)) as client:
        campaigns = client.get("/v1/campaigns", headers={"X-API-Key": admin})
        assert campaigns.status_code == 200, campaigns.text
        spent = sum(c["spent"] for c in campaigns.json())
        assert spent > 0 and len(campaigns.json()) == old.ads["advertiser_id"].nunique()  # none seeded twice
        # a token handed out before the redeploy still names the same ad, and is charged once
        third = slate[2]
        for kind in ("impression", "click"):
            r = client.post("/v1/events", json={"idempotency_key": f"late-{kind}", "type": kind, "token": third["token"]})
            assert r.status_code == 200, r.text
        after = sum(c["spent"] for c in client.get("/v1/campaigns", headers={"X-API-Key": admin}).json())
        assert after > spent
        user = client.post("/v1/ads", json={"user_id": "u0001", "slots": 3}).json()["slate"]
        assert user and all(s["ad"].startswith("ad-") for s in user)


def test_discard_state_is_explicit_and_a_failed_swap_loses_nothing(two_runs, tmp_path, monkeypatch, capsys):
    bundle = tmp_path / "bundle"
    genads("export", two_runs / "run_a", "--out", bundle)
    _serve_and_click(bundle)
    held = {p.name: p.read_bytes() for p in (bundle / "state").iterdir() if p.is_file()}
    assert main(["export", str(two_runs / "run_a"), "--out", str(bundle)]) == 2
    assert "--discard-state" in capsys.readouterr().err

    import genads.serve.bundle as bundle_mod

    def broken(new, target):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_mod, "replace_dir", broken)
    with pytest.raises(OSError, match="disk full"):
        main(["export", str(two_runs / "run_a"), "--out", str(bundle), "--keep-state"])
    monkeypatch.undo()
    assert {p.name for p in (bundle / "state").iterdir() if p.is_file()} >= set(held)
    assert (bundle / "state/ledger.sqlite").read_bytes() == held["ledger.sqlite"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]  # no temporary folder left

    genads("export", two_runs / "run_a", "--out", bundle, "--discard-state")
    assert not (bundle / "state").exists()


def test_titles_default_to_the_catalogue(two_runs, tmp_path, monkeypatch):
    import genads.serve.export as export_mod
    from genads.data.dataset import load_dataset
    from genads.data.split import leave_one_out

    genads("export", two_runs / "run_a", "--out", tmp_path / "own")
    own = load_bundle(tmp_path / "own").ads
    assert (own["creative_title"] == own["title"]).all()  # the advertiser's headline, untouched

    monkeypatch.setattr(export_mod, "creative_titles", lambda cat: [f"generated {t}" for t in cat["title"]])
    data = load_dataset(two_runs / "data_a")
    split = leave_one_out(data)
    pctr = np.full(split.n_items + 1, 0.05)
    generated = export_mod.ads_table(data.catalogue, split, pctr, "generated")
    assert (generated["creative_title"] == "generated " + generated["title"]).all()  # opt-in
    blank = data.catalogue.copy()
    blank.loc[blank.index[:3], "title"] = " "
    default = export_mod.ads_table(blank, split, pctr)
    assert default["creative_title"].str.startswith("generated").sum() == 3  # nothing of theirs: generated
    assert (default["creative_title"].iloc[3:] == default["title"].iloc[3:]).all()
    with pytest.raises(ValueError, match="titles"):
        export_mod.ExportConfig(titles="llm")
