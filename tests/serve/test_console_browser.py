"""The console in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
Selenium; no browser download) against ``genads serve`` in a child process.

Shows: sign-in by form; advertiser A cannot see or change B's campaigns through the pages; pausing a
campaign makes its ads leave the preview slate; raising a bid moves its campaign to the top of the
preview; an injected ad title or campaign name is inert (no element, no alert); the operator view shows
what /metrics reports. Skipped, saying why, where Chromium, its driver or Selenium is missing (.ci/run
installs them). With ``$GENADS_CONSOLE_SHOTS`` set to a folder, each view's screenshot is saved there
(docs/console/ holds the committed ones).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genads.serve.console.figures import histogram_quantile
from genads.serve.server import spawn
from tests.serve.conftest import ADMIN, copy_bundle

BROWSER_ENV = "GENADS_TEST_BROWSER"
"""Set by .ci/run once it installed chromium: then a missing browser or Selenium fails the test."""
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")
MISSING = ("no headless browser: install Debian's chromium and chromium-driver (.ci/run does)"
           if CHROMIUM is None or DRIVER is None else None)
try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:
    MISSING = MISSING or "selenium is not installed (pip install -e '.[dev]')"
if MISSING and os.environ.get(BROWSER_ENV):
    raise RuntimeError(f"${BROWSER_ENV} is set (CI installed a browser) but: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

INJECTED = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    folder = copy_bundle(bundle_dir, tmp_path_factory.mktemp("console") / "b")
    ads = pd.read_parquet(folder / "ads.parquet")
    first = ads.index[ads["advertiser_id"] == 1][:3]
    ads.loc[first, "creative_title"] = INJECTED  # three of advertiser 1's ads carry markup in their titles
    ads.to_parquet(folder / "ads.parquet")
    port = free_port()
    proc = spawn(folder, port, "--log-level", "warning", "--open-traffic", "--no-traffic-limits", "--min-pause", "0", env={"GENADS_ADMIN_KEY": ADMIN, "OMP_NUM_THREADS": "1"})
    yield f"http://127.0.0.1:{port}", ads
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1500"):
        options.add_argument(arg)
    d = webdriver.Chrome(options=options, service=Service(DRIVER))
    d.implicitly_wait(0)
    yield d
    d.quit()


def shot(d, name: str) -> None:
    folder = os.environ.get("GENADS_CONSOLE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(Path(folder) / f"{name}.png"))


def sign_in(d, url: str, key: str) -> None:
    d.delete_all_cookies()
    d.get(url + "/console")
    assert d.current_url.endswith("/console/signin")
    d.find_element(By.ID, "api_key").send_keys(key)
    click(d, d.find_element(By.CSS_SELECTOR, "#signin button"))
    assert not d.current_url.endswith("/signin"), d.find_element(By.TAG_NAME, "main").text
    assert key not in d.current_url and key not in d.page_source


def submit(d, form_id: str, **fields: str) -> None:
    for name, value in fields.items():
        box = d.find_element(By.CSS_SELECTOR, f"#{form_id} [name={name}]")
        box.clear()
        box.send_keys(value)
    click(d, d.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]"))


def click(d, element) -> None:
    """Click and wait for the page it submits to (a form post loads a new document)."""
    page = d.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(d, 30).until(lambda _: gone(page))


def gone(element) -> bool:
    """Whether ``element`` left the document. Selenium's ``staleness_of`` knows only its stale-element error;
    Chrome sometimes answers a node of the unloaded page with "does not belong to the document" instead."""
    try:
        element.is_enabled()
    except WebDriverException as e:  # StaleElementReferenceException is one
        if "stale element" in str(e).lower() or "does not belong to the document" in str(e):
            return True
        raise
    return False


def preview(d, url: str, history: str, slots: int = 3) -> list[tuple[int, int]]:
    """(ad id, campaign id) of each slot of the preview, top first (the admin sees every slot)."""
    d.get(url + "/console/preview")
    submit(d, "preview-form", history=history, slots=str(slots))
    assert "PREVIEW" in d.find_element(By.CLASS_NAME, "banner-preview").text
    rows = d.find_elements(By.CSS_SELECTOR, "#slate tbody tr.mine")
    return [(int(r.get_attribute("data-ad")), int(r.find_elements(By.TAG_NAME, "td")[2].text)) for r in rows]


def no_alert(d) -> bool:
    try:
        d.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


def issue_key(d, url: str, advertiser: int) -> str:
    d.get(url + "/console/operator")
    submit(d, "issue", advertiser_id=str(advertiser))
    return d.find_element(By.ID, "new-key").text


def test_console_in_a_browser(server, driver):
    url, ads = server
    d = driver
    d.get(url + "/console/signin")
    shot(d, "signin")
    sign_in(d, url, ADMIN)
    assert d.current_url.endswith("/console/operator")
    key_a, key_b = issue_key(d, url, 1), issue_key(d, url, 2)
    api = httpx.Client(base_url=url)
    campaigns = api.get("/v1/campaigns", headers={"X-API-Key": ADMIN}).json()
    theirs = next(c for c in campaigns if c["advertiser_id"] == 2)

    # advertiser A: its own campaigns only; B's campaign page is the same 404 as a missing one, with no form
    sign_in(d, url, key_a)
    ids = {int(r.get_attribute("id").split("-")[1]) for r in d.find_elements(By.CSS_SELECTOR, "#campaigns tbody tr")}
    assert ids == {c["campaign_id"] for c in campaigns if c["advertiser_id"] == 1}
    shot(d, "campaigns")
    d.get(f"{url}/console/campaigns/{theirs['campaign_id']}")
    assert "no campaign" in d.find_element(By.ID, "message").text and not d.find_elements(By.TAG_NAME, "form")[1:]
    assert theirs["name"] not in d.page_source
    d.get(url + "/console/operator")
    assert "admin key" in d.find_element(By.ID, "message").text

    # injected titles and names are shown as text: no element made of them, no alert
    own = sorted(int(a) for a in ads.loc[ads["advertiser_id"] == 1, "ad_id"])
    injected = sorted(int(a) for a in ads.loc[ads["creative_title"] == INJECTED, "ad_id"])
    d.get(url + "/console/campaigns")
    submit(d, "create", name=INJECTED, ad_ids=", ".join(map(str, injected)), bid="1000", budget="5")
    assert d.find_element(By.ID, "name").text.startswith(INJECTED)
    d.get(url + "/console/creatives")
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#gallery .title")]
    assert INJECTED in titles
    shown = {int(e.get_attribute("id")[3:]) for e in d.find_elements(By.CSS_SELECTOR, "#gallery figure")}
    assert shown <= set(own)
    assert not d.find_elements(By.CSS_SELECTOR, "img[src=x], main script") and no_alert(d)
    assert all(d.execute_script("return arguments[0].naturalWidth", img) == 300
               for img in d.find_elements(By.CSS_SELECTOR, "#gallery img"))  # the banners load under the CSP
    shot(d, "creatives")
    d.get(f"{url}/console/preview?history={own[0]}&slots=5")
    assert INJECTED in [e.text for e in d.find_elements(By.CSS_SELECTOR, "#slate tr.mine .title")]
    assert d.find_elements(By.CSS_SELECTOR, "#slate tr.other")  # others' slots are shown, their ads are not
    assert not d.find_elements(By.CSS_SELECTOR, "img[src=x], main script") and no_alert(d)
    shot(d, "preview")

    # the admin raises the bid of the last slot's campaign: that campaign takes the top of the preview
    sign_in(d, url, ADMIN)
    history = "1001, 1002, 1003"
    before = preview(d, url, history)
    low = before[-1][1] if before[-1][1] != before[0][1] else next(
        c["campaign_id"] for c in campaigns if c["campaign_id"] != before[0][1])
    d.get(f"{url}/console/campaigns/{low}")
    submit(d, "edit", bid="100000", budget="1000")
    assert d.find_element(By.ID, "bid").text == "100000"
    assert preview(d, url, history)[0][1] == low != before[0][1]

    # pausing a campaign (as its advertiser, on its page) takes its ads out of the preview slate
    top = preview(d, url, history)[0][1]
    owner = next(c["advertiser_id"] for c in campaigns if c["campaign_id"] == top)
    sign_in(d, url, key_a if owner == 1 else key_b if owner == 2 else issue_key(d, url, owner))
    d.get(f"{url}/console/campaigns/{top}")
    click(d, d.find_element(By.ID, "toggle"))
    assert d.find_element(By.ID, "status").text == "paused"
    sign_in(d, url, ADMIN)
    assert top not in {c for _, c in preview(d, url, history, slots=5)}

    # events for a chart, then the operator view against /metrics
    slate = api.post("/v1/ads", json={"history": [1001, 1002], "slots": 3}).json()["slate"]
    for kind in ("impression", "click"):
        assert api.post("/v1/events", json={"idempotency_key": f"b-{kind}", "type": kind,
                                            "token": slate[0]["token"]}).status_code == 200
    d.get(f"{url}/console/campaigns/{slate[0]['campaign_id']}")
    assert len(d.find_elements(By.CSS_SELECTOR, ".charts svg")) == 3
    shot(d, "campaign")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(api.get("/metrics", headers={"X-API-Key": ADMIN}).text) for s in f.samples}
    d.get(url + "/console/operator")
    asked = samples[("genads_slots_total", (("outcome", "requested"),))]
    filled = samples[("genads_slots_total", (("outcome", "filled"),))]
    assert d.find_element(By.ID, "fill").text == f"{100 * filled / asked:.1f}%"
    row = d.find_element(By.CSS_SELECTOR, 'tr[data-route="/v1/ads"]')
    n = sum(v for (name, lab), v in samples.items() if name == "genads_http_requests_total"
            and dict(lab)["route"] == "/v1/ads")
    assert row.find_element(By.CLASS_NAME, "requests").text == str(int(n))
    buckets = sorted((float(dict(lab)["le"]), v) for (name, lab), v in samples.items()
                     if name == "genads_http_request_duration_seconds_bucket" and dict(lab)["route"] == "/v1/ads")
    assert row.find_element(By.CLASS_NAME, "p99").text == f"{1e3 * histogram_quantile(0.99, buckets):.1f} ms"
    assert re.fullmatch(r"\d+", d.find_element(By.ID, "live-ads").text)
    shot(d, "operator")
    click(d, d.find_element(By.ID, "signout"))
    assert d.current_url.endswith("/console/signin")
    d.get(url + "/console/campaigns")
    assert d.current_url.endswith("/console/signin")
