"""The console in-process: sign-in and its cookie, CSRF, isolation between advertisers, forms that change the
ledger through the API's checks, the preview that writes nothing, escaping, the operator's figures."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from genads.serve.app import create_app
from genads.serve.bundle import load_bundle
from genads.serve.console.figures import bucket_width, histogram_quantile
from genads.serve.console.sessions import COOKIE
from genads.serve.ledger import MICROS, SQLiteLedger
from tests.serve.conftest import ADMIN, NO_LIMITS, PUBLISHER, copy_bundle, make_engine

INJECTED = '"><img src=x onerror=alert(1)><script>alert(1)</script>'


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, key: str) -> TestClient:
    page = client.get("/console/signin")
    token = re.search(r'name="signin_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/console/signin", data={"api_key": key, "signin_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def issue(client: TestClient, advertiser: int) -> str:
    r = client.post(f"/v1/advertisers/{advertiser}/keys", headers={"X-API-Key": ADMIN})
    assert r.status_code == 201
    return r.json()["api_key"]


def campaign_of(engine, advertiser: int):
    return next(c for c in engine.ledger.campaigns() if c.advertiser_id == advertiser)


def browser(app) -> TestClient:
    return TestClient(app)


@pytest.fixture
def app(engine):
    return create_app(engine, traffic=NO_LIMITS)


@pytest.fixture
def a_key(app):
    return issue(TestClient(app), 1)  # no `with`: leaving it would shut the app's decoding thread down


def ledger_rows(path: Path) -> dict[str, list]:
    """Every row of every ledger table (to show that a page wrote nothing)."""
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def test_sign_in_sets_a_strict_http_only_session_cookie_and_never_the_key(app, a_key):
    c = browser(app)
    r = c.get("/console/campaigns", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/signin"
    page = c.get("/console/signin")
    token = re.search(r'name="signin_token" value="([^"]+)"', page.text).group(1)
    assert 'method="post"' in page.text and "Content-Security-Policy" in page.headers
    r = c.post("/console/signin", data={"api_key": a_key, "signin_token": token}, follow_redirects=False)
    assert r.status_code == 303 and a_key not in r.headers["location"]
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE + "="))
    flags = {p.strip().lower() for p in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert a_key not in cookie and sid != a_key
    home = c.get("/console")
    assert home.url.path == "/console/campaigns" and "advertiser 1" in home.text and a_key not in home.text
    for path in ("/console/creatives", "/console/preview?user_id=1&slots=3", f"/console/campaigns/{1}"):
        assert a_key not in c.get(path).text


def test_sign_in_refusals(app, a_key):
    c = browser(app)
    page = c.get("/console/signin")
    token = re.search(r'name="signin_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/console/signin", data={"api_key": "not-a-key", "signin_token": token}, follow_redirects=False)
    assert r.status_code == 401 and COOKIE + "=" not in r.headers.get("set-cookie", "")
    fresh = browser(app)  # no sign-in cookie: a form posted from elsewhere cannot sign this browser in
    r = fresh.post("/console/signin", data={"api_key": a_key, "signin_token": token}, follow_redirects=False)
    assert r.status_code == 403 and COOKIE + "=" not in r.headers.get("set-cookie", "")
    r = c.post("/console/signin", json={"api_key": a_key, "signin_token": token})
    assert r.status_code == 415
    assert c.get("/console/campaigns", follow_redirects=False).status_code == 303


def test_pause_needs_the_csrf_token_and_then_changes_the_ledger(app, engine, a_key):
    c = sign_in(browser(app), a_key)
    mine = campaign_of(engine, 1)
    csrf = csrf_of(c.get("/console/campaigns").text)
    for form in ({}, {"csrf": "wrong"}, {"csrf": ""}):
        r = c.post(f"/console/campaigns/{mine.campaign_id}/pause", data=form, follow_redirects=False)
        assert r.status_code == 403, form
    assert engine.ledger.campaign(mine.campaign_id).status == "active"
    other = sign_in(browser(app), issue(TestClient(app), 1))  # another session's token is not this one's
    r = other.post(f"/console/campaigns/{mine.campaign_id}/pause", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 403 and engine.ledger.campaign(mine.campaign_id).status == "active"
    r = c.post(f"/console/campaigns/{mine.campaign_id}/pause", data={"csrf": csrf, "back": "list"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/campaigns"
    assert engine.ledger.campaign(mine.campaign_id).status == "paused"
    assert not {engine.item_of[a] for a in mine.ad_ids} & set(engine.live)  # left the live set at once
    row = c.get("/console/campaigns").text.split(f'id="campaign-{mine.campaign_id}"')[1].split("</tr>")[0]
    assert "paused" in row and "Resume" in row
    c.post(f"/console/campaigns/{mine.campaign_id}/resume", data={"csrf": csrf})
    assert engine.ledger.campaign(mine.campaign_id).status == "active"


def test_an_advertiser_cannot_see_or_change_another_s_campaigns(app, engine, a_key):
    c = sign_in(browser(app), a_key)
    csrf = csrf_of(c.get("/console/campaigns").text)
    theirs = campaign_of(engine, 2)
    table = c.get("/console/campaigns").text
    assert f'id="campaign-{theirs.campaign_id}"' not in table
    assert all(f'id="campaign-{x.campaign_id}"' in table for x in engine.ledger.campaigns(1))
    missing = c.get("/console/campaigns/999999")
    seen = c.get(f"/console/campaigns/{theirs.campaign_id}")
    assert seen.status_code == missing.status_code == 404 and theirs.name not in seen.text
    for action, form in (("pause", {}), ("resume", {}), ("", {"bid": "9", "budget": "999"})):
        path = f"/console/campaigns/{theirs.campaign_id}" + (f"/{action}" if action else "")
        assert c.post(path, data={"csrf": csrf, **form}).status_code == 404
    assert engine.ledger.campaign(theirs.campaign_id) == theirs
    gallery = c.get("/console/creatives?page=1").text
    shown = {int(a) for a in re.findall(r'id="ad-(\d+)"', gallery)}
    assert shown and all(engine.advertiser_of[a] == 1 for a in shown)
    assert c.get("/console/operator").status_code == 403
    r = c.post("/console/operator/keys", data={"csrf": csrf, "advertiser_id": "2"})
    assert r.status_code == 403 and not engine.ledger.list_keys(2)


def test_edits_are_checked_like_the_api_and_errors_sit_by_their_field(app, engine, a_key):
    c = sign_in(browser(app), a_key)
    mine = campaign_of(engine, 1)
    path = f"/console/campaigns/{mine.campaign_id}"
    csrf = csrf_of(c.get(path).text)
    cases = [({"bid": "abc", "budget": "10"}, "bid", "must be a number"),
             ({"bid": "0", "budget": "10"}, "bid", "greater than or equal to 0.000001"),
             ({"bid": "1", "budget": "-5"}, "budget", "greater than or equal to 0"),
             ({"bid": "nan", "budget": "10"}, "bid", "finite")]
    for form, field, message in cases:
        r = c.post(path, data={"csrf": csrf, **form})
        assert r.status_code == 422, form
        assert re.search(rf'id="err-{field}">[^<]*{re.escape(message)}', r.text), (form, r.text)
        assert f'value="{form[field]}"' in r.text  # what was typed stays in the field
    assert engine.ledger.campaign(mine.campaign_id) == mine
    engine.ledger.update_campaign(mine.campaign_id, budget=50.0)
    with engine.ledger._tx() as cur:  # some spend, so a budget below it is the ledger's refusal
        cur.execute("UPDATE campaigns SET spent_micros = 20000000 WHERE campaign_id = ?", (mine.campaign_id,))
    r = c.post(path, data={"csrf": csrf, "bid": "1", "budget": "5"})
    assert r.status_code == 422 and re.search(r'id="err-budget">[^<]*below the 20.0 already spent', r.text)
    r = c.post(path, data={"csrf": csrf, "bid": "2.5", "budget": "80", "name": "renamed"}, follow_redirects=False)
    assert r.status_code == 303
    now = engine.ledger.campaign(mine.campaign_id)
    assert (now.bid_micros, now.budget_micros, now.name) == (2_500_000, 80_000_000, "renamed")
    assert all(engine.live[engine.item_of[a]][1] == 2_500_000 for a in now.ad_ids
               if engine.live.get(engine.item_of[a], (0,))[0] == now.campaign_id)


def test_create_is_only_for_one_s_own_ads(app, engine, a_key):
    c = sign_in(browser(app), a_key)
    csrf = csrf_of(c.get("/console/campaigns").text)
    own = sorted(a for a, adv in engine.advertiser_of.items() if adv == 1)[:2]
    theirs = next(a for a, adv in engine.advertiser_of.items() if adv == 2)
    before = len(engine.ledger.campaigns())
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "x", "ad_ids": f"{own[0]}, {theirs}",
                                           "bid": "1", "budget": "10", "status": "active"})
    assert r.status_code == 422 and re.search(rf'id="err-ad_ids">ad {theirs} is not an ad of advertiser 1', r.text)
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "", "ad_ids": f"{own[0]}", "bid": "1", "budget": "1"})
    assert r.status_code == 422 and 'id="err-name"' in r.text
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "x", "ad_ids": f"{own[0]} x", "bid": "1", "budget": "1"})
    assert r.status_code == 422 and re.search(r'id="err-ad_ids">ad x is not an ad of advertiser 1', r.text)
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "x", "ad_ids": f"{own[0]} 1.5", "bid": "1", "budget": "1"})
    assert r.status_code == 422 and 'id="err-ad_ids"' in r.text  # a number in a string is no id (the importer's rule)
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "x", "ad_ids": str(own[0]), "bid": "1",
                                           "budget": "10", "advertiser_id": "2"})
    assert r.status_code == 403 and re.search(r'id="err-form">an advertiser key creates campaigns only for itself', r.text)
    assert len(engine.ledger.campaigns()) == before
    r = c.post("/console/campaigns", data={"csrf": csrf, "name": "spring", "ad_ids": ",".join(map(str, own)),
                                           "bid": "0.5", "budget": "12", "status": "paused"}, follow_redirects=False)
    assert r.status_code == 303
    new = engine.ledger.campaigns()[-1]
    assert (new.advertiser_id, new.name, new.ad_ids, new.status, new.bid_micros) == (1, "spring", tuple(own), "paused",
                                                                                     500_000)
    assert r.headers["location"] == f"/console/campaigns/{new.campaign_id}"


def test_preview_charges_nothing_records_nothing_and_follows_pauses(app, engine, tmp_path):
    c = sign_in(browser(app), ADMIN)
    before = ledger_rows(tmp_path / "ledger.sqlite")
    auctions = app.state.metrics.registry.get_sample_value("genads_auctions_total", {"mechanism": "learned"})
    r = c.get("/console/preview?user_id=3&slots=3")
    assert r.status_code == 200 and "PREVIEW" in r.text
    shown = [int(a) for a in re.findall(r'<tr class="mine" data-ad="(\d+)"', r.text)]
    assert len(shown) == 3
    assert not re.search(r"\b[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\b", r.text)  # no slot token in the page
    r = c.get("/console/preview", params={"history": "1001, 1005", "slots": "2"})
    assert r.status_code == 200 and len(re.findall(r'<tr class="mine"', r.text)) == 2
    assert ledger_rows(tmp_path / "ledger.sqlite") == before
    assert app.state.metrics.registry.get_sample_value("genads_auctions_total", {"mechanism": "learned"}) == auctions
    top = engine.ledger.campaign(engine.live[engine.item_of[shown[0]]][0])
    csrf = csrf_of(c.get("/console/campaigns").text)
    c.post(f"/console/campaigns/{top.campaign_id}/pause", data={"csrf": csrf})
    after = [int(a) for a in re.findall(r'data-ad="(\d+)"', c.get("/console/preview?user_id=3&slots=3").text)]
    assert not set(after) & set(top.ad_ids)


def test_preview_refusals_name_the_field(app, a_key):
    c = sign_in(browser(app), a_key)
    r = c.get("/console/preview", params={"history": "1001, 5", "slots": "2"})
    assert r.status_code == 422 and re.search(r'id="err-history">unknown ad_id 5', r.text)
    r = c.get("/console/preview", params={"user_id": "1", "slots": "0"})
    assert r.status_code == 422 and 'id="err-slots"' in r.text
    r = c.get("/console/preview", params={"user_id": "1", "history": "1001", "slots": "2"})
    assert r.status_code == 422 and "not both" in r.text


def test_an_advertiser_s_preview_hides_other_advertisers_ads(app, engine, a_key):
    c = sign_in(browser(app), a_key)
    r = c.get("/console/preview?slots=10")
    mine = {int(a) for a in re.findall(r'data-ad="(\d+)"', r.text)}
    others = len(re.findall(r'<tr class="other"', r.text))
    assert others + len(mine) == 10 and others > 0
    assert all(engine.advertiser_of[a] == 1 for a in mine)


def test_sign_out_and_revocation_end_the_session(app, engine):
    setup = TestClient(app)
    key = issue(setup, 1)
    c = sign_in(browser(app), key)
    csrf = csrf_of(c.get("/console/campaigns").text)
    r = c.post("/console/signout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/signin"
    assert c.get("/console/campaigns", follow_redirects=False).status_code == 303
    c = sign_in(browser(app), key)
    sid = c.cookies.get(COOKIE)
    assert c.get("/console/campaigns").status_code == 200
    info = next(k for k in engine.ledger.list_keys(1) if k.revoked_at is None)
    assert setup.delete(f"/v1/keys/{info.key_id}", headers={"X-API-Key": ADMIN}).status_code == 200
    assert c.get("/console/campaigns", follow_redirects=False).status_code == 303
    assert app.state.console_sessions.get(sid) is None


def test_user_text_is_inert_and_pages_carry_a_csp(bundle_dir, tmp_path):
    folder = copy_bundle(bundle_dir, tmp_path / "b")
    ads = pd.read_parquet(folder / "ads.parquet")
    ads.loc[ads["advertiser_id"] == 1, "creative_title"] = INJECTED
    ads.to_parquet(folder / "ads.parquet")
    ledger = SQLiteLedger(tmp_path / "l.sqlite", synchronous="OFF")
    engine = make_engine(load_bundle(folder), ledger)
    app = create_app(engine, traffic=NO_LIMITS)
    key = issue(TestClient(app), 1)
    c = sign_in(browser(app), key)
    csrf = csrf_of(c.get("/console/campaigns").text)
    own = next(a for a, adv in engine.advertiser_of.items() if adv == 1)
    c.post("/console/campaigns", data={"csrf": csrf, "name": INJECTED, "ad_ids": str(own), "bid": "900",
                                       "budget": "10"})
    pages = [c.get(p) for p in ("/console/campaigns", "/console/creatives",
                                f"/console/campaigns/{ledger.campaigns()[-1].campaign_id}",
                                f"/console/preview?history={own}&slots=5")]
    assert any("&lt;script&gt;" in p.text for p in pages[1:2] + pages[3:])  # the titles are shown, escaped
    for p in pages:
        assert p.status_code == 200
        assert "<script" not in p.text and "<img src=x" not in p.text
        assert "default-src 'none'" in p.headers["content-security-policy"]
        assert "script-src" not in p.headers["content-security-policy"]  # so no script runs at all
        assert p.headers["x-frame-options"] == "DENY"
    ledger.close()


def metrics_of(client: TestClient) -> dict:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics", headers={"X-API-Key": ADMIN}).text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_operator_view_shows_what_metrics_reports_and_issues_keys(app, engine):
    api = TestClient(app, headers={"X-API-Key": PUBLISHER})
    for body in ({"user_id": 3, "slots": 3}, {"slots": 2}, {"history": [1001], "slots": 4}):
        assert api.post("/v1/ads", json=body).status_code == 200
    engine.ledger.update_campaign(campaign_of(engine, 1).campaign_id, status="paused")
    c = sign_in(browser(app), ADMIN)
    m = metrics_of(api)
    html = c.get("/console/operator").text
    asked = m[("genads_slots_total", (("outcome", "requested"),))]
    filled = m[("genads_slots_total", (("outcome", "filled"),))]
    assert asked == 9
    assert re.search(rf'id="fill">{100 * filled / asked:.1f}%<', html)
    ads_row = html.split('data-route="/v1/ads"')[1].split("</tr>")[0]
    n_ads = sum(v for (name, labels), v in m.items() if name == "genads_http_requests_total"
                and dict(labels)["route"] == "/v1/ads")
    assert re.search(rf'class="num requests">{int(n_ads)}<', ads_row)
    buckets = sorted((float(dict(lab)["le"]), v) for (name, lab), v in m.items()
                     if name == "genads_http_request_duration_seconds_bucket" and dict(lab)["route"] == "/v1/ads")
    p99 = histogram_quantile(0.99, buckets)
    assert f'class="num p99">{1e3 * p99:.1f} ms<' in ads_row
    spent = sum(x.spent_micros for x in engine.ledger.campaigns())
    budget = sum(x.budget_micros for x in engine.ledger.campaigns())
    assert re.search(rf'id="utilisation">{100 * spent / budget:.1f}%<', html)
    assert re.search(rf'id="live-ads">{len(engine.live)}<', html)
    csrf = csrf_of(html)
    r = c.post("/console/operator/keys", data={"csrf": csrf, "advertiser_id": "abc"})
    assert r.status_code == 422 and 'id="err-advertiser_id"' in r.text
    r = c.post("/console/operator/keys", data={"csrf": csrf, "advertiser_id": "3"})
    assert r.status_code == 201
    row = r.text.split('data-advertiser="3"')[1].split("</tr>")[0]
    assert 'class="num keys">1<' in row and 'class="num campaigns">1<' in row and 'class="num serving">1<' in row
    row = r.text.split('data-advertiser="1"')[1].split("</tr>")[0]
    assert 'class="num keys">0<' in row and 'class="num serving">0<' in row  # its one campaign was paused above
    key = re.search(r'id="new-key">([^<]+)<', r.text).group(1)
    assert {x["advertiser_id"] for x in api.get("/v1/campaigns", headers={"X-API-Key": key}).json()} == {3}
    assert key not in c.get("/console/operator").text  # shown once


def test_campaign_page_charts_the_ledger_s_events(app, engine):
    api = TestClient(app, headers={"X-API-Key": PUBLISHER})
    slate = api.post("/v1/ads", json={"user_id": 3, "slots": 3}).json()["slate"]
    s = slate[0]
    for kind in ("impression", "click"):
        assert api.post("/v1/events", json={"idempotency_key": f"k-{kind}", "type": kind,
                                            "token": s["token"]}).status_code == 200
    c = sign_in(browser(app), ADMIN)
    html = c.get(f"/console/campaigns/{s['campaign_id']}").text
    spent = engine.ledger.campaign(s["campaign_id"]).spent_micros
    assert spent > 0
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(charts) == 3 and "Spend per minute" in charts[0] and "Clicks per minute" in charts[1]
    assert re.search(rf"<title>[^<]+: {spent / MICROS:.3g}</title>", charts[0])
    assert re.search(r"<title>[^<]+: 1\.00</title>", charts[1])
    other = next(x for x in engine.ledger.campaigns() if x.campaign_id != s["campaign_id"])
    assert 'id="no-events"' in c.get(f"/console/campaigns/{other.campaign_id}").text


def test_histogram_quantile_interpolates_inside_buckets():
    buckets = [(0.01, 10.0), (0.1, 30.0), (1.0, 40.0), (float("inf"), 40.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.01)  # rank 10: the first bucket's top
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.01 + 0.09 * 10 / 20)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.9 * 9.6 / 10)
    assert histogram_quantile(0.99, [(0.01, 1.0), (float("inf"), 5.0)]) == 0.01  # beyond the last finite bound
    assert histogram_quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None


def test_bucket_width_keeps_charts_short():
    assert bucket_width(30) == 60 and bucket_width(3 * 3600) == 300 and bucket_width(40 * 86400) == 86400


def test_the_console_s_ledger_reads_on_both_backends(ledger):
    """event_counts / event_series / principal_by_hash, the ledger reads the console adds (SQL on both dialects)."""
    from genads.serve.keys import hash_key
    from genads.serve.ledger import Event

    a = ledger.create_campaign(1, "a", [11, 12], 1.0, 100.0)
    b = ledger.create_campaign(2, "b", [21], 2.0, 100.0)
    for i, (c, ad) in enumerate([(a, 11), (a, 12), (a, 11), (b, 21)]):
        ledger.record_event(Event(f"i{i}", "impression", c.campaign_id, ad, f"r{i}", 500_000, c.bid_micros))
        if i < 2:
            ledger.record_event(Event(f"c{i}", "click", c.campaign_id, ad, f"r{i}", 500_000, c.bid_micros))
    assert ledger.event_counts() == {a.campaign_id: {"impression": (3, 0), "click": (2, 1_000_000)},
                                     b.campaign_id: {"impression": (1, 0)}}
    assert ledger.event_counts(2) == {b.campaign_id: {"impression": (1, 0)}}
    first, last = ledger.event_span(a.campaign_id)
    assert first <= last and ledger.event_span(999) is None
    series = ledger.event_series(a.campaign_id, first - 30.0, 60.0)  # every event within a minute: bucket 0
    assert sorted(series) == [(0, "click", 2, 1_000_000), (0, "impression", 3, 0)]
    assert ledger.event_series(a.campaign_id, first - 3600.0, 60.0)[0][0] == 60  # an hour before: bucket 60
    key = ledger.add_key(1)
    assert ledger.principal_by_hash(hash_key(key)) == ledger.principal(key)
    ledger.revoke_key(ledger.principal(key).key_id, 1)
    assert ledger.principal_by_hash(hash_key(key)) is None and ledger.principal_by_hash("0" * 64) is None
