"""docs/walkthrough.md, run exactly: a CSV with string ids -> import -> tokenize -> train -> export -> serve ->
ads -> events -> served log -> import -> retrain from the served model. Tiny data, a few seconds of training.

The run tree is copied to a new folder before export: run folders hold relative paths and move."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from genads.cli import main
from genads.data.dataset import load_dataset
from tests.serve.conftest import NO_LIMITS, publisher_head


def genads(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("walk") / "first"
    genads("data", "example", "--out", root / "csv")
    genads("data", "import", root / "csv/events.csv", "--format", "csv", "--items", root / "csv/catalogue.csv",
           "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
           "--action-map", "purchase=conversion", "--out", root / "data/shop", "--quiet")
    genads("tokenize", root / "data/shop", "--out", root / "sids", "--features", "attributes,collab",
           "--levels", "2", "--codebook", "8", "--quiet")
    genads("train", root / "data/shop", "--sids", root / "sids", "--out", root / "runs/shop", "--epochs", "2",
           "--quiet")
    moved = root.parent / "moved"
    shutil.copytree(root, moved)  # another place (machine): nothing in the run points back at `root`
    shutil.rmtree(root)
    return moved


def test_walkthrough(trained, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    root = trained
    assert json.loads((root / "runs/shop/config.json").read_text())["dataset"] == "../../data/shop"
    genads("export", root / "runs/shop", "--out", root / "bundle")
    log = root / "bundle/state/served.jsonl"
    # a person follows the walkthrough: seconds pass between an impression and its click (the fast-click rule
    # would call a click 1 ms after its impression a bot's, and charge nothing: tests/serve/test_traffic.py)
    with TestClient(build_app(root / "bundle", traffic=NO_LIMITS), headers=publisher_head(root / "bundle")) as client:
        r = client.post("/v1/ads", json={"user_id": "u0003", "slots": 3})
        assert r.status_code == 200, r.text
        slate = r.json()["slate"]
        assert slate and all(s["ad"].startswith("ad-") for s in slate)  # the user's own ids come back
        for s in slate:
            for kind in ("impression", "click"):
                e = client.post("/v1/events", json={"idempotency_key": f"{kind}-{s['position']}", "type": kind,
                                                    "token": s["token"]})
                assert e.status_code == 200, e.text
        by_history = client.post("/v1/ads", json={"history": ["ad-001", "ad-007"], "slots": 2})
        assert by_history.status_code == 200, by_history.text
        unknown = client.post("/v1/ads", json={"user_id": "nobody", "slots": 2})  # cold start, still answered
        assert unknown.status_code == 200
    records = [json.loads(line) for line in log.read_text().splitlines()]
    served = records[0]
    assert served["type"] == "slate" and served["user_id"] == "u0003"
    assert served["ads"] == [s["ad"] for s in slate] and served["positions"] == list(range(1, len(slate) + 1))
    assert served["model_version"] == json.loads((root / "bundle/manifest.json").read_text())["model_version"]
    events = [r for r in records if r["type"] == "event"]
    assert len(events) == 2 * len(slate) and {e["event"] for e in events} == {"impression", "click"}

    genads("data", "import", log, "--format", "served-log", "--items", root / "data/shop",
           "--out", root / "data/shop2", "--quiet")
    base, grown = load_dataset(root / "data/shop"), load_dataset(root / "data/shop2")
    assert len(grown.events) == len(base.events) + 2 * len(slate)
    # same catalogue, same internal ids: the served model and SIDs fit the new dataset
    assert grown.catalogue["ad_id"].tolist() == base.catalogue["ad_id"].tolist()
    assert grown.vocab.labels("ad", grown.catalogue["ad_id"]) == base.vocab.labels("ad", base.catalogue["ad_id"])
    user = grown.vocab.index_of("user", "u0003")
    assert user == base.vocab.index_of("user", "u0003")
    theirs = grown.events[grown.events.user_id == user]
    assert grown.vocab.labels("ad", theirs["ad_id"].tail(2 * len(slate))) == [s["ad"] for s in slate for _ in (0, 1)]
    assert grown.meta["source"]["positions"]["1"] == {"click": 1, "impression": 1}

    genads("train", root / "data/shop2", "--sids", root / "sids", "--init", root / "runs/shop",
           "--out", root / "runs/shop2", "--epochs", "1", "--quiet")
    assert json.loads((root / "runs/shop2/config.json").read_text())["init"] == "../shop"
    capsys.readouterr()
    genads("recommend", root / "runs/shop2", "--user", "u0003", "-k", "3")
    printed = capsys.readouterr().out
    assert "user u0003" in printed and "ad ad-" in printed

    # redeploy the retrained run over the served bundle (docs/walkthrough.md): the state must survive
    admin = (root / "bundle/state/admin.key").read_text().strip()
    with TestClient(build_app(root / "bundle", served_log=None)) as client:
        before = client.get("/v1/campaigns", headers={"X-API-Key": admin}).json()
    spent = {c["campaign_id"]: c["spent"] for c in before}
    assert sum(spent.values()) > 0  # the clicks above were charged
    served_lines = log.read_text()
    assert main(["export", str(root / "runs/shop2"), "--out", str(root / "bundle")]) == 2  # refused: state/ exists
    assert "--keep-state" in capsys.readouterr().err and log.read_text() == served_lines
    genads("export", root / "runs/shop2", "--out", root / "bundle", "--keep-state")
    assert json.loads((root / "bundle/manifest.json").read_text())["source"]["run"] == "shop2"
    assert log.read_text() == served_lines and (root / "bundle/state/admin.key").read_text().strip() == admin
    with TestClient(build_app(root / "bundle"), headers=publisher_head(root / "bundle")) as client:
        after = client.get("/v1/campaigns", headers={"X-API-Key": admin})
        assert after.status_code == 200, after.text  # the admin key survived
        assert {c["campaign_id"]: c["spent"] for c in after.json()} == spent  # and the spend
        again = client.post("/v1/ads", json={"user_id": "u0003", "slots": 2})
        assert again.status_code == 200 and all(s["ad"].startswith("ad-") for s in again.json()["slate"])
    assert log.read_text().startswith(served_lines)  # the served log goes on in the same file


def test_the_api_and_keys_speak_the_dataset_s_advertiser_and_ad_ids(trained, tmp_path, capsys):
    """Issue 27 item 3 on serving: campaigns show `advertiser: shop-1` and `ads: [ad-…]` beside the service's
    integers; keys are issued for `shop-1` over the API and the CLI; campaigns are created from string ids."""
    from fastapi.testclient import TestClient

    from genads.serve.server import build_app

    genads("export", trained / "runs/shop", "--out", tmp_path / "b")
    app = build_app(tmp_path / "b", served_log=None)
    admin = {"X-API-Key": (tmp_path / "b/state/admin.key").read_text().strip()}
    with TestClient(app) as client:
        campaigns = client.get("/v1/campaigns", headers=admin).json()
        assert {c["advertiser"] for c in campaigns} == {f"shop-{i}" for i in range(5)}
        c = next(c for c in campaigns if c["advertiser"] == "shop-1")
        assert all(a.startswith("ad-") for a in c["ads"]) and len(c["ads"]) == len(c["ad_ids"])
        r = client.post("/v1/advertisers/shop-1/keys", headers=admin)
        assert r.status_code == 201 and r.json()["advertiser"] == "shop-1", r.text
        mine = {"X-API-Key": r.json()["api_key"]}
        assert [x["campaign_id"] for x in client.get("/v1/campaigns", headers=mine).json()] == [c["campaign_id"]]
        made = client.post("/v1/campaigns", headers=admin, json={"name": "by label", "ad_ids": c["ads"][:2], "bid": 1.0,
                                                                 "budget": 5.0, "advertiser_id": "shop-1"})
        assert made.status_code == 201 and made.json()["ads"] == c["ads"][:2], made.text
        assert client.post("/v1/advertisers/shop-99/keys", headers=admin).status_code == 404
        foreign = client.post("/v1/campaigns", headers=mine, json={"name": "x", "ad_ids": c["ads"][:1], "bid": 1.0,
                                                                   "budget": 1.0, "advertiser_id": "shop-2"})
        assert foreign.status_code == 403
        from tests.serve.test_console import browser, csrf_of, sign_in

        console = sign_in(browser(app), admin["X-API-Key"])
        assert '<td>shop-1</td>' in console.get("/console/campaigns").text
        html = console.get("/console/operator").text
        r = console.post("/console/operator/keys", data={"csrf": csrf_of(html), "advertiser_id": "shop-3"})
        assert r.status_code == 201 and "New key for advertiser shop-3" in r.text
        r = console.post("/console/operator/keys", data={"csrf": csrf_of(html), "advertiser_id": "shop-99"})
        assert r.status_code == 422 and "no advertiser &#39;shop-99&#39;" in r.text
        # the console's forms take the dataset's ids too: a campaign from string ad ids, a preview of a string user
        page = console.get("/console/campaigns").text
        r = console.post("/console/campaigns", data={"csrf": csrf_of(page), "name": "from the form", "bid": "1",
                                                     "budget": "5", "advertiser_id": "shop-1",
                                                     "ad_ids": ", ".join(c["ads"][:2])})
        assert r.status_code == 200 and "from the form" in r.text, r.text[-500:]  # redirected to its page
        formed = next(x for x in client.get("/v1/campaigns", headers=admin).json() if x["name"] == "from the form")
        assert (formed["advertiser"], formed["ads"]) == ("shop-1", c["ads"][:2])
        assert all(f">{a}<" in r.text for a in c["ads"][:2])  # its page lists the ads by the dataset's ids
        r = console.post("/console/campaigns", data={"csrf": csrf_of(page), "name": "x", "bid": "1", "budget": "5",
                                                     "advertiser_id": "shop-1", "ad_ids": "ad-nope"})
        assert r.status_code == 422 and "ad ad-nope is not an ad of advertiser shop-1" in r.text
        r = console.get("/console/preview", params={"history": ", ".join(c["ads"][:2]), "slots": "2"})
        assert r.status_code == 200 and 'id="err-' not in r.text
        shown = re.findall(r'<td class="ad">([^<]*)</td>', r.text)
        assert shown and all(a.startswith("ad-") for a in shown)  # the slate by the dataset's ad ids
        assert console.get("/console/preview", params={"user_id": "u0003", "slots": "2"}).status_code == 200
    capsys.readouterr()
    genads("keys", "issue", tmp_path / "b", "--advertiser", "shop-2")
    assert '"advertiser": "shop-2"' in capsys.readouterr().out
    assert main(["keys", "issue", str(tmp_path / "b"), "--advertiser", "shop-99"]) == 2
