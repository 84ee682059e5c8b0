"""The HTTP API in-process: slates and prices, field-named errors, campaigns, isolation, events, ops routes."""

from __future__ import annotations

import time

from tests.serve.conftest import ADMIN


def admin() -> dict:
    return {"X-API-Key": ADMIN}


def key_for(client, advertiser: int) -> dict:
    r = client.post(f"/v1/advertisers/{advertiser}/keys", headers=admin())
    assert r.status_code == 201
    return {"X-API-Key": r.json()["api_key"]}


def campaign_of(client, advertiser: int) -> dict:
    return next(c for c in client.get("/v1/campaigns", headers=admin()).json() if c["advertiser_id"] == advertiser)


def test_slate_prices_never_exceed_bids(client, engine):
    for body in ({"user_id": 3, "slots": 3}, {"history": [1001, 1005, 1010], "slots": 10}, {"slots": 1}):
        r = client.post("/v1/ads", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        slate = out["slate"]
        assert [s["position"] for s in slate] == list(range(1, body["slots"] + 1))
        assert len({s["ad_id"] for s in slate}) == len(slate)
        bids = {c["campaign_id"]: c["bid"] for c in client.get("/v1/campaigns", headers=admin()).json()}
        for s in slate:
            assert 0 <= s["price"] <= bids[s["campaign_id"]] + 1e-9
            assert s["creative"]["title"] and s["creative"]["image_url"].endswith(f"/v1/creatives/{s['ad_id']}/banner.png")
            assert engine.item_of[s["ad_id"]] in engine.live
    assert client.post("/v1/ads", json={"user_id": 3, "slots": 3}).json()["mechanism"] == "learned"
    assert client.post("/v1/ads", json={"user_id": 3, "slots": 10}).json()["mechanism"] == "gsp"


def test_the_answer_says_when_no_history_was_known(client, engine):
    """An unknown user_id (a typo, a user newer than the export) is served, and the answer says it was cold."""
    known = next(u for u, h in engine.bundle.histories.items() if (h > 0).any())
    assert client.post("/v1/ads", json={"user_id": known, "slots": 2}).json()["cold_start"] is False
    assert client.post("/v1/ads", json={"history": [1001], "slots": 2}).json()["cold_start"] is False
    for body in ({"user_id": 987654321, "slots": 2}, {"history": [], "slots": 2}, {"slots": 2}):
        r = client.post("/v1/ads", json=body)
        assert r.status_code == 200 and r.json()["cold_start"] is True and r.json()["slate"], (body, r.text)


def test_bad_input_names_the_field(client):
    cases = [({"slots": 0}, ["body", "slots"]), ({"history": [1001, 5]}, ["body", "history", 1]),
             ({"user_id": 1, "history": []}, ["body"]), ({"slots": 2, "colour": "red"}, ["body", "colour"])]
    for body, loc in cases:
        r = client.post("/v1/ads", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][: len(loc)] == loc, (body, r.text)
    r = client.post("/v1/events", json={"idempotency_key": "x", "type": "click", "token": "abc.def"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "token"]


def test_excluded_ads_are_not_shown(client):
    first = [s["ad_id"] for s in client.post("/v1/ads", json={"user_id": 4, "slots": 3}).json()["slate"]]
    again = client.post("/v1/ads", json={"user_id": 4, "slots": 3, "context": {"exclude": first}}).json()["slate"]
    assert not set(first) & {s["ad_id"] for s in again}


def test_advertisers_are_isolated(client):
    a, b = key_for(client, 1), key_for(client, 2)
    mine, theirs = campaign_of(client, 1), campaign_of(client, 2)
    assert {c["advertiser_id"] for c in client.get("/v1/campaigns", headers=a).json()} == {1}
    # another advertiser's campaign answers exactly as a campaign that does not exist: nothing is revealed
    missing = client.get("/v1/campaigns/999999", headers=a).json()["detail"][0]
    for call in (lambda cid: client.get(f"/v1/campaigns/{cid}", headers=a),
                 lambda cid: client.patch(f"/v1/campaigns/{cid}", json={"bid": 9.0}, headers=a),
                 lambda cid: client.post(f"/v1/campaigns/{cid}/pause", headers=a)):
        r = call(theirs["campaign_id"])
        assert r.status_code == 404 and r.json()["detail"][0]["msg"].replace(str(theirs["campaign_id"]), "999999") \
            == missing["msg"] and r.json()["detail"][0]["loc"] == missing["loc"]
    assert client.get(f"/v1/campaigns/{mine['campaign_id']}", headers=b).status_code == 404
    assert campaign_of(client, 2)["status"] == "active" and campaign_of(client, 2)["bid"] == theirs["bid"]
    r = client.post("/v1/campaigns", headers=a, json={"name": "x", "ad_ids": theirs["ad_ids"][:1], "bid": 1, "budget": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "ad_ids", 0]
    r = client.post("/v1/campaigns", headers=a, json={"name": "x", "ad_ids": mine["ad_ids"][:1], "bid": 1, "budget": 1,
                                                      "advertiser_id": 2})
    assert r.status_code == 403
    assert client.post("/v1/advertisers/1/keys", headers=a).status_code == 403
    assert client.get("/v1/campaigns", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/v1/campaigns").status_code == 403  # the client's default header: a publisher key
    assert client.get("/v1/campaigns", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get(f"/v1/campaigns/{theirs['campaign_id']}", headers=b).status_code == 200


def test_paused_and_spent_campaigns_stop_serving(client, engine):
    c = campaign_of(client, 3)
    own = key_for(client, 3)
    shown = lambda: {s["campaign_id"] for _ in range(5)  # noqa: E731
                     for s in client.post("/v1/ads", json={"user_id": 7, "slots": 8}).json()["slate"]}
    r = client.post(f"/v1/campaigns/{c['campaign_id']}/pause", headers=own)
    assert r.status_code == 200 and not r.json()["serving"]
    assert c["campaign_id"] not in shown() and not set(c["ad_ids"]) & set(engine.ad_of[list(engine.live)].tolist())
    client.post(f"/v1/campaigns/{c['campaign_id']}/resume", headers=own)
    assert set(c["ad_ids"]) <= set(engine.ad_of[list(engine.live)].tolist())
    # spend the budget down by clicking this campaign's slots
    spent, k = 0.0, 0
    while client.get(f"/v1/campaigns/{c['campaign_id']}", headers=own).json()["serving"]:
        slate = client.post("/v1/ads", json={"history": c["ad_ids"][:3], "slots": 10}).json()["slate"]
        for s in (s for s in slate if s["campaign_id"] == c["campaign_id"]):
            k += 1
            client.post("/v1/events", json={"idempotency_key": f"i{k}", "type": "impression", "token": s["token"]})
            out = client.post("/v1/events", json={"idempotency_key": f"k{k}", "type": "click", "token": s["token"]}).json()
            spent += out["charged"]
        client.patch(f"/v1/campaigns/{c['campaign_id']}", headers=own, json={"bid": 50.0})  # win more often
    after = client.get(f"/v1/campaigns/{c['campaign_id']}", headers=own).json()
    assert abs(after["spent"] - spent) < 1e-6 and abs(after["spent"] - after["budget"]) < 1e-6
    assert c["campaign_id"] not in shown()


def test_events_are_idempotent(client):
    slot = client.post("/v1/ads", json={"user_id": 5, "slots": 1}).json()["slate"][0]
    body = {"idempotency_key": "evt-1", "type": "click", "token": slot["token"]}
    early = client.post("/v1/events", json=body)  # a click before its slot's impression: refused, nothing written
    assert early.status_code == 409 and early.json()["detail"][0]["loc"] == ["body", "token"]
    assert client.post("/v1/events", json={**body, "idempotency_key": "imp-1", "type": "impression"}).status_code == 200
    first, second = client.post("/v1/events", json=body).json(), client.post("/v1/events", json=body).json()
    assert first["charged"] == second["charged"] == slot["price"] and second["duplicate"] and not first["duplicate"]
    r = client.post("/v1/events", json={**body, "type": "conversion"})
    assert r.status_code == 409 and r.json()["detail"][0]["loc"] == ["body", "idempotency_key"]
    forged = slot["token"][:-2] + ("AA" if not slot["token"].endswith("AA") else "BB")
    assert client.post("/v1/events", json={**body, "idempotency_key": "evt-2", "token": forged}).status_code == 422


def test_campaign_crud_and_trie_reload(client, engine):
    own = key_for(client, 4)
    mine = campaign_of(client, 4)
    ads = mine["ad_ids"][:2]
    client.post(f"/v1/campaigns/{mine['campaign_id']}/pause", headers=own)
    assert not {engine.item_of[a] for a in ads} & set(engine.live)
    r = client.post("/v1/campaigns", headers=own, json={"name": "new", "ad_ids": ads, "bid": 2.5, "budget": 10})
    assert r.status_code == 201 and r.json()["serving"] and r.json()["advertiser_id"] == 4
    client.post("/v1/ads", json={"slots": 1})  # any request refreshes the live set
    assert {engine.item_of[a] for a in ads} <= set(engine.live)
    cid = r.json()["campaign_id"]
    r = client.patch(f"/v1/campaigns/{cid}", headers=own, json={"budget": 20, "bid": 3})
    assert (r.json()["budget"], r.json()["bid"]) == (20, 3)
    r = client.post("/v1/campaigns", headers=admin(), json={"name": "a", "ad_ids": ads, "bid": 1, "budget": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "advertiser_id"]


def test_ops_routes(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["live_ads"] > 0
    client.post("/v1/ads", json={"slots": 2})
    text = client.get("/metrics", headers={"X-API-Key": ADMIN}).text
    assert 'genads_http_requests_total{route="/v1/ads",status="200"}' in text and "genads_live_ads" in text
    assert "genads_ads_queue_wait_seconds_count 1.0" in text  # the one ad request above waited for the decoder
    spec = client.get("/openapi.json").json()
    assert {"/v1/ads", "/v1/events", "/v1/campaigns", "/v1/campaigns/{campaign_id}"} <= set(spec["paths"])
    png = client.get("/v1/creatives/1001/banner.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get("/v1/creatives/5/banner.png").status_code == 404


def test_servers_sharing_a_ledger_follow_each_other(bundle, tmp_path):
    from genads.serve.engine import AdEngine, ServeConfig
    from genads.serve.ledger import SQLiteLedger
    from genads.serve.server import token_secrets
    from tests.serve.conftest import make_engine

    ledgers = SQLiteLedger(tmp_path / "shared.sqlite"), SQLiteLedger(tmp_path / "shared.sqlite")
    first = make_engine(bundle, ledgers[0])
    first.secrets = token_secrets(ledgers[0], tmp_path / "state")
    second = AdEngine(bundle, ledgers[1], ServeConfig(refresh_s=0.0), token_secrets(ledgers[1], tmp_path / "state"))
    c = first.ledger.campaigns()[0]
    first.ledger.update_campaign(c.campaign_id, status="paused")
    second.serve(second.user_history(1), 3)  # a request re-reads the ledger's change counter
    assert not {second.item_of[a] for a in c.ad_ids} & set(second.live)
    token = first.serve(first.user_history(1), 3).placements[0].token  # one secret file: one server's tokens
    assert second.secrets.verify(token, time.time(), 60).ad_id  # are charged by the other


def test_unencodable_text_is_a_422_not_a_crash(client):
    """JSON may carry lone surrogates, which neither UTF-8 responses nor the ledger can hold."""
    c = campaign_of(client, 1)
    head = {**admin(), "content-type": "application/json"}
    for path, body in (("/v1/ads", '{"context": {"page": "\\ud800"}, "\\ud801": 1}'),
                       (f"/v1/campaigns/{c['campaign_id']}", '{"name": "x\\udc00"}')):
        call = client.post if path == "/v1/ads" else client.patch
        r = call(path, content=body, headers=head)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body", r.text
