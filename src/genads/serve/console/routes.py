"""The console's pages at ``/console``: sign-in, campaigns, a campaign, creatives, slate preview, operator view.

Server-rendered (Jinja2, autoescaped) with no script: every page is plain HTML forms and inline SVG,
sent with a Content-Security-Policy that allows nothing but this origin's images, stylesheet and
form targets. Changes go through :mod:`genads.serve.actions` with the API's request models, exactly
as the JSON routes do. An advertiser sees only its own campaigns and creatives; another's campaign
answers 404, as in the API. The slate preview decodes through the app's decoding thread and shows
the slate without its tokens; it records no event, charges nothing and counts in no auction metric.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from genads.serve import actions
from genads.serve.console import figures
from genads.serve.console.forms import Errors, an_id, ids, integer, number, refusal, validate
from genads.serve.console.sessions import (
    COOKIE,
    SIGNIN_COOKIE,
    FormError,
    Session,
    Sessions,
    parse_form,
    same,
)
from genads.serve.keys import MAX_KEY_CHARS, LedgerError, key_id
from genads.serve.ledger import MICROS
from genads.serve.schemas import AdRequest, CampaignIn, CampaignPatch

HERE = Path(__file__).parent
CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
PAGE = 100
"""Campaign rows per page."""
GALLERY_PAGE = 24
CampaignId = Annotated[int, PathParam(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]


def _money(micros: int | float) -> str:
    return f"{micros / MICROS:,.2f}"


def _ratio(x: float | None, pct: bool = True) -> str:
    return "–" if x is None else f"{100 * x:.1f}%" if pct else f"{x:,.4f}"


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1e3 * seconds:.1f} ms"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=_money, ratio=_ratio, ms=_ms)
    return env


def mount_console(app: FastAPI, *, public_url: str | None = None) -> None:
    """Add the console's routes to the API app (``app.state.engine`` and ``app.state.decode`` must be set)."""
    engine, metrics = app.state.engine, app.state.metrics
    ledger = engine.ledger
    sessions = app.state.console_sessions = Sessions(ledger)
    rate = figures.RateMeter(metrics.started)
    env = environment()
    env.filters.update(adv=engine.advertiser_label, ad=engine.ad_label)  # the dataset's own ids (shop-3, ad-01b)
    secure = (public_url or "").startswith("https://")
    css = (HERE / "static" / "console.css").read_bytes()
    ads = engine.bundle.ads
    titles = dict(zip(ads["ad_id"].astype(int).tolist(), ads["title"].astype(str).tolist(), strict=True))
    router = APIRouter(prefix="/console", include_in_schema=False)

    def render(name: str, session: Session | None, status: int = 200, **context) -> HTMLResponse:
        html = env.get_template(name).render(session=session, who=session.principal if session else None,
                                             csrf=session.csrf if session else "", **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def redirect(to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303, headers=HEADERS)

    def error(session: Session | None, status: int, message: str) -> HTMLResponse:
        return render("error.html", session, status=status, status_code=status, message=message)

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    async def posted(request: Request) -> tuple[Session | None, dict[str, str] | Response]:
        """The session and form of a state-changing POST; a Response instead of the form when refused."""
        session = current(request)
        if session is None:
            return None, redirect("/console/signin")
        try:
            form = parse_form(request.headers.get("content-type"), await request.body())
        except FormError as err:
            return session, error(session, err.status, err.message)
        if not same(form.get("csrf"), session.csrf):
            return session, error(session, 403, "the form's CSRF token is missing or stale: reload the page")
        return session, form

    # --- sign-in ---------------------------------------------------------------------------
    @router.get("")
    def home(request: Request) -> Response:
        session = current(request)
        if session is None:
            return redirect("/console/signin")
        return redirect("/console/operator" if session.principal.is_admin else "/console/campaigns")

    def signin_page(message: str = "", status: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = render("signin.html", None, status=status, signin_token=token, message=message)
        response.set_cookie(SIGNIN_COOKIE, token, path="/console", httponly=True, samesite="strict", secure=secure)
        return response

    @router.get("/signin")
    def signin_form() -> HTMLResponse:
        return signin_page()

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        try:
            form = parse_form(request.headers.get("content-type"), await request.body())
        except FormError as err:
            return error(None, err.status, err.message)
        if not same(form.get("signin_token"), request.cookies.get(SIGNIN_COOKIE) or ""):
            return signin_page("The sign-in form expired: try again.", status=403)
        key = form.get("api_key", "").strip()
        who = await run_in_threadpool(ledger.principal, key) if 0 < len(key) <= MAX_KEY_CHARS else None
        if who is None:
            return signin_page("Unknown or revoked API key.", status=401)
        if who.publisher is not None:  # it opens /v1/ads and /v1/events only, never a campaign view
            return signin_page("A publisher key cannot sign in: use an advertiser's key or the admin key.", status=403)
        sessions.close(request.cookies.get(COOKIE))  # a browser holds one session: the one it signed in last
        response = redirect("/console")
        response.set_cookie(COOKIE, sessions.open(who, key), path="/console", httponly=True, samesite="strict",
                            secure=secure)
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        _, form = await posted(request)
        if isinstance(form, Response):
            return form
        sessions.close(request.cookies.get(COOKIE))
        response = redirect("/console/signin")
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=secure)
        return response

    # --- campaigns -------------------------------------------------------------------------
    def campaigns_page(session: Session, page_no: int = 1, values: dict | None = None, errors: Errors | None = None,
                       status: int = 200) -> HTMLResponse:
        who = session.principal
        scope = None if who.is_admin else who.advertiser_id
        campaigns = ledger.campaigns(scope)
        rows = figures.campaign_rows(campaigns[(page_no - 1) * PAGE: page_no * PAGE], ledger.event_counts(scope))
        own_ads = sorted(a for a, adv in engine.advertiser_of.items() if who.is_admin or adv == who.advertiser_id)
        return render("campaigns.html", session, status=status, rows=rows, page_no=page_no,
                    pages=max(1, math.ceil(len(campaigns) / PAGE)), total=len(campaigns), n_ads=len(own_ads),
                    values=values or {"status": "active"}, errors=errors or {})

    @router.get("/campaigns")
    def campaigns(request: Request, page: PageNo = 1) -> Response:
        session = current(request)
        return redirect("/console/signin") if session is None else campaigns_page(session, page)

    def create_campaign(session: Session, form: dict[str, str]) -> Response:
        errors: Errors = {}
        values = {"name": form.get("name", ""), "ad_ids": ids(form, "ad_ids", errors),
                  "bid": number(form, "bid", errors), "budget": number(form, "budget", errors),
                  "status": form.get("status", "active"), "advertiser_id": an_id(form, "advertiser_id", errors)}
        if values["ad_ids"] is None and "ad_ids" not in errors:
            values["ad_ids"] = []
        body = validate(CampaignIn, values, errors)
        if body is not None:
            try:
                c = actions.create_campaign(engine, body, session.principal)
                return redirect(f"/console/campaigns/{c.campaign_id}")
            except (HTTPException, LedgerError) as err:
                status = refusal(err, errors)
        else:
            status = 422
        return campaigns_page(session, 1, values=form, errors=errors, status=status)

    @router.post("/campaigns")
    async def create(request: Request) -> Response:
        session, form = await posted(request)
        return form if isinstance(form, Response) else await run_in_threadpool(create_campaign, session, form)

    def campaign_page(session: Session, campaign_id: int, values: dict | None = None, errors: Errors | None = None,
                      status: int = 200) -> Response:
        try:
            c = actions.owned(ledger, campaign_id, session.principal)
        except HTTPException:
            return error(session, 404, f"no campaign {campaign_id}")
        row = figures.campaign_rows([c], {c.campaign_id: ledger.event_counts(c.advertiser_id).get(c.campaign_id, {})})[0]
        charts = campaign_charts(c.campaign_id)
        form = values or {"name": c.name, "bid": f"{c.bid_micros / MICROS:g}", "budget": f"{c.budget_micros / MICROS:g}"}
        return render("campaign.html", session, status=status, row=row, c=c, charts=charts, values=form,
                    errors=errors or {}, ads=[(a, titles.get(a, "")) for a in c.ad_ids[:200]])

    def campaign_charts(campaign_id: int) -> dict | None:
        span = ledger.event_span(campaign_id)
        if span is None:
            return None
        now = max(time.time(), span[1])
        width = figures.bucket_width(now - span[0])
        start = span[0] - span[0] % width
        n = int((now - start) // width) + 1
        spend, clicks, impressions = [0.0] * n, [0.0] * n, [0.0] * n
        for b, kind, count, charged in ledger.event_series(campaign_id, start, width):
            if 0 <= b < n:
                spend[b] += charged / MICROS
                clicks[b] += count if kind == "click" else 0
                impressions[b] += count if kind == "impression" else 0
        labels = [datetime.fromtimestamp(start + i * width, UTC).strftime("%m-%d %H:%M") for i in range(n)]
        per = {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour", 21600: "6 hours", 86400: "day"}.get(
            width, "week")
        return {"per": per, "spend": figures.bar_chart(spend, labels, f"Spend per {per}"),
                "clicks": figures.bar_chart(clicks, labels, f"Clicks per {per}"),
                "impressions": figures.bar_chart(impressions, labels, f"Impressions per {per}")}

    @router.get("/campaigns/{campaign_id}")
    def campaign(request: Request, campaign_id: CampaignId) -> Response:
        session = current(request)
        return redirect("/console/signin") if session is None else campaign_page(session, campaign_id)

    def edit_campaign(session: Session, campaign_id: int, form: dict[str, str]) -> Response:
        errors: Errors = {}
        values = {"name": form.get("name") or None, "bid": number(form, "bid", errors),
                  "budget": number(form, "budget", errors)}
        body = validate(CampaignPatch, values, errors)
        if body is not None:
            try:
                actions.update_campaign(engine, campaign_id, body, session.principal)
                return redirect(f"/console/campaigns/{campaign_id}")
            except (HTTPException, LedgerError) as err:
                status = refusal(err, errors)
                if status == 404:
                    return error(session, 404, f"no campaign {campaign_id}")
        else:
            status = 422
        return campaign_page(session, campaign_id, values=form, errors=errors, status=status)

    @router.post("/campaigns/{campaign_id}")
    async def edit(request: Request, campaign_id: CampaignId) -> Response:
        session, form = await posted(request)
        if isinstance(form, Response):
            return form
        return await run_in_threadpool(edit_campaign, session, campaign_id, form)

    def change_status(session: Session, campaign_id: int, status: str, back: str) -> Response:
        try:
            actions.set_status(engine, campaign_id, session.principal, status)
        except HTTPException:
            return error(session, 404, f"no campaign {campaign_id}")
        return redirect("/console/campaigns" if back == "list" else f"/console/campaigns/{campaign_id}")

    @router.post("/campaigns/{campaign_id}/pause")
    async def pause(request: Request, campaign_id: CampaignId) -> Response:
        session, form = await posted(request)
        if isinstance(form, Response):
            return form
        return await run_in_threadpool(change_status, session, campaign_id, "paused", form.get("back", ""))

    @router.post("/campaigns/{campaign_id}/resume")
    async def resume(request: Request, campaign_id: CampaignId) -> Response:
        session, form = await posted(request)
        if isinstance(form, Response):
            return form
        return await run_in_threadpool(change_status, session, campaign_id, "active", form.get("back", ""))

    # --- creatives and preview ---------------------------------------------------------------
    @router.get("/creatives")
    def creatives(request: Request, page: PageNo = 1) -> Response:
        session = current(request)
        if session is None:
            return redirect("/console/signin")
        who = session.principal
        mine = ads if who.is_admin else ads[ads["advertiser_id"].astype(int) == who.advertiser_id]
        mine = mine.sort_values("ad_id")
        shown = mine.iloc[(page - 1) * GALLERY_PAGE: page * GALLERY_PAGE]
        serving = {engine.ad_of[item]: cid for item, (cid, _) in engine.live.items()}
        cards = [{"ad_id": int(r.ad_id), "title": str(r.creative_title), "catalogue_title": str(r.title),
                  "advertiser_id": int(r.advertiser_id), "campaign_id": serving.get(int(r.ad_id))}
                 for r in shown.itertuples()]
        return render("creatives.html", session, cards=cards, page_no=page, total=len(mine),
                    pages=max(1, math.ceil(len(mine) / GALLERY_PAGE)))

    @router.get("/preview")
    async def preview(request: Request, user_id: str = "", history: str = "", slots: str = "3") -> Response:
        session = current(request)
        if session is None:
            return redirect("/console/signin")
        values = {"user_id": user_id, "history": history, "slots": slots}
        if not (user_id.strip() or history.strip()) and "slots" not in request.query_params:
            return render("preview.html", session, values=values, errors={}, result=None)
        errors: Errors = {}
        fields = {"user_id": an_id(values, "user_id", errors), "history": ids(values, "history", errors),
                  "slots": integer(values, "slots", errors)}
        req = validate(AdRequest, fields, errors)
        result = None
        if req is not None:
            try:
                result = await request.app.state.decode(req)  # the decoding thread and queue of POST /v1/ads
            except (HTTPException, StarletteHTTPException) as err:
                refusal(err, errors)
        if result is None:
            return render("preview.html", session, status=422 if errors else 200, values=values, errors=errors,
                        result=None)
        who = session.principal
        own = None if who.is_admin else {c.campaign_id for c in await run_in_threadpool(ledger.campaigns,
                                                                                          who.advertiser_id)}
        slate = [{"position": p.position, "mine": own is None or p.campaign_id in own, "ad_id": p.ad_id,
                  "campaign_id": p.campaign_id, "price": p.price, "pctr": p.pctr, "title": p.title}
                 for p in result.placements]
        return render("preview.html", session, values=values, errors={}, result=result, slate=slate)

    # --- operator ------------------------------------------------------------------------------
    def operator_page(session: Session, issued: dict | None = None, errors: Errors | None = None,
                      status: int = 200) -> HTMLResponse:
        registry = metrics.view()  # every worker's counts under --workers
        routes = figures.route_figures(registry)
        total = sum(r.requests for r in routes)
        rps, window = rate.rate(time.time(), total)
        campaigns = ledger.campaigns()
        advertisers = figures.advertiser_rows(campaigns, engine.advertiser_of, ledger.list_keys())
        budget, spent = sum(c.budget_micros for c in campaigns), sum(c.spent_micros for c in campaigns)
        events = {kind: int(figures.counter_total(registry, "genads_events_total", type=kind))
                  for kind in ("impression", "click", "conversion")}
        return render("operator.html", session, status=status, routes=routes, total=total, rps=rps, window=window,
                    fill=figures.fill_rate(registry), charged=figures.counter_total(registry, "genads_charged_micros_total") / MICROS,
                    events=events, live_ads=len(engine.live), uptime=time.time() - metrics.started,
                    utilisation=spent / budget if budget else None, budget=budget, spent=spent,
                    n_campaigns=len(campaigns), n_serving=sum(c.serving for c in campaigns),
                    advertisers=advertisers[:200], n_advertisers=len(advertisers),
                    issued=issued, errors=errors or {}, values={})

    @router.get("/operator")
    def operator(request: Request) -> Response:
        session = current(request)
        if session is None:
            return redirect("/console/signin")
        if not session.principal.is_admin:
            return error(session, 403, "the operator view needs the admin key")
        return operator_page(session)

    def issue(session: Session, form: dict[str, str]) -> Response:
        errors: Errors = {}
        text = form.get("advertiser_id", "").strip()
        named = text if text and not re.fullmatch(r"[+-]?\d+", text) else None  # the dataset's id (shop-3)
        advertiser = engine.advertiser_index(named) if named else integer(form, "advertiser_id", errors)
        if advertiser is None or not 0 <= advertiser <= 2**63 - 1:
            errors.setdefault("advertiser_id", f"no advertiser {text!r}" if named else
                              "an advertiser id (the dataset's, or a whole number from 0 to 2**62)")
            return operator_page(session, errors=errors, status=422)
        try:
            key = actions.issue_key(ledger, session.principal, advertiser)
        except HTTPException:
            return error(session, 403, "only the admin key issues advertiser keys")
        return operator_page(session, issued={"advertiser_id": advertiser, "key_id": key_id(key), "api_key": key},
                             status=201)

    @router.post("/operator/keys")
    async def issue_key(request: Request) -> Response:
        session, form = await posted(request)
        return form if isinstance(form, Response) else await run_in_threadpool(issue, session, form)

    @router.get("/static/console.css")
    def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600",
                                                             "X-Content-Type-Options": "nosniff"})

    app.include_router(router)
