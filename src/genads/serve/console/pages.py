"""The console's pages as one object per app: what each page shows, and what each form does.

:class:`Console` holds the app's engine, ledger, sessions and templates; :mod:`genads.serve.console.routes`
maps URLs to its methods. Changes go through :mod:`genads.serve.actions` with the API's request models,
exactly as the JSON routes do. An advertiser sees only its own campaigns and creatives; another's campaign
answers 404, as in the API.
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
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
from genads.serve.keys import LedgerError, key_id
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
PER = {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour", 21600: "6 hours", 86400: "day"}
"""Chart bucket width (seconds) -> its name (wider: "week")."""


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


class Console:
    """The console of one app (``app.state.engine``, ``app.state.metrics`` and ``app.state.decode`` set)."""

    def __init__(self, app: FastAPI, public_url: str | None = None) -> None:
        self.engine, self.metrics = app.state.engine, app.state.metrics
        self.ledger = self.engine.ledger
        self.sessions = Sessions(self.ledger)
        self.rate = figures.RateMeter(self.metrics.started)
        self.env = environment()
        self.env.filters.update(adv=self.engine.advertiser_label, ad=self.engine.ad_label)  # the dataset's own ids
        self.secure = (public_url or "").startswith("https://")
        self.css = (HERE / "static" / "console.css").read_bytes()
        self.ads = ads = self.engine.bundle.ads
        self.titles = dict(zip(ads["ad_id"].astype(int).tolist(), ads["title"].astype(str).tolist(), strict=True))

    # --- responses -----------------------------------------------------------------------------
    def render(self, name: str, session: Session | None, status: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(name).render(session=session, who=session.principal if session else None,
                                                  csrf=session.csrf if session else "", **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    @staticmethod
    def redirect(to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303, headers=HEADERS)

    def error(self, session: Session | None, status: int, message: str) -> HTMLResponse:
        return self.render("error.html", session, status=status, status_code=status, message=message)

    def current(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def posted(self, request: Request) -> tuple[Session | None, dict[str, str] | Response]:
        """The session and form of a state-changing POST; a Response instead of the form when refused."""
        session = self.current(request)
        if session is None:
            return None, self.redirect("/console/signin")
        try:
            form = parse_form(request.headers.get("content-type"), await request.body())
        except FormError as err:
            return session, self.error(session, err.status, err.message)
        if not same(form.get("csrf"), session.csrf):
            return session, self.error(session, 403, "the form's CSRF token is missing or stale: reload the page")
        return session, form

    # --- sign-in -------------------------------------------------------------------------------
    def signin_page(self, message: str = "", status: int = 200) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = self.render("signin.html", None, status=status, signin_token=token, message=message)
        response.set_cookie(SIGNIN_COOKIE, token, path="/console", httponly=True, samesite="strict", secure=self.secure)
        return response

    def signed_in(self, request: Request, who, key: str) -> Response:
        self.sessions.close(request.cookies.get(COOKIE))  # a browser holds one session: the one it signed in last
        response = self.redirect("/console")
        response.set_cookie(COOKIE, self.sessions.open(who, key), path="/console", httponly=True, samesite="strict",
                            secure=self.secure)
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    def signed_out(self, request: Request) -> Response:
        self.sessions.close(request.cookies.get(COOKIE))
        response = self.redirect("/console/signin")
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=self.secure)
        return response

    # --- campaigns -----------------------------------------------------------------------------
    def campaigns_page(self, session: Session, page_no: int = 1, values: dict | None = None,
                       errors: Errors | None = None, status: int = 200) -> HTMLResponse:
        who = session.principal
        scope = None if who.is_admin else who.advertiser_id
        campaigns = self.ledger.campaigns(scope)
        rows = figures.campaign_rows(campaigns[(page_no - 1) * PAGE: page_no * PAGE], self.ledger.event_counts(scope))
        own_ads = [a for a, adv in self.engine.advertiser_of.items() if who.is_admin or adv == who.advertiser_id]
        return self.render("campaigns.html", session, status=status, rows=rows, page_no=page_no,
                           pages=max(1, math.ceil(len(campaigns) / PAGE)), total=len(campaigns), n_ads=len(own_ads),
                           values=values or {"status": "active"}, errors=errors or {})

    def create_campaign(self, session: Session, form: dict[str, str]) -> Response:
        errors: Errors = {}
        values = {"name": form.get("name", ""), "ad_ids": ids(form, "ad_ids", errors),
                  "bid": number(form, "bid", errors), "budget": number(form, "budget", errors),
                  "status": form.get("status", "active"), "advertiser_id": an_id(form, "advertiser_id", errors)}
        if values["ad_ids"] is None and "ad_ids" not in errors:
            values["ad_ids"] = []
        body = validate(CampaignIn, values, errors)
        status = 422
        if body is not None:
            try:
                c = actions.create_campaign(self.engine, body, session.principal)
                return self.redirect(f"/console/campaigns/{c.campaign_id}")
            except (HTTPException, LedgerError) as err:
                status = refusal(err, errors)
        return self.campaigns_page(session, 1, values=form, errors=errors, status=status)

    def campaign_page(self, session: Session, campaign_id: int, values: dict | None = None,
                      errors: Errors | None = None, status: int = 200) -> Response:
        try:
            c = actions.owned(self.ledger, campaign_id, session.principal)
        except HTTPException:
            return self.error(session, 404, f"no campaign {campaign_id}")
        counts = {c.campaign_id: self.ledger.event_counts(c.advertiser_id).get(c.campaign_id, {})}
        row = figures.campaign_rows([c], counts)[0]
        form = values or {"name": c.name, "bid": f"{c.bid_micros / MICROS:g}", "budget": f"{c.budget_micros / MICROS:g}"}
        return self.render("campaign.html", session, status=status, row=row, c=c, charts=self.campaign_charts(c.campaign_id),
                           values=form, errors=errors or {}, ads=[(a, self.titles.get(a, "")) for a in c.ad_ids[:200]])

    def campaign_charts(self, campaign_id: int) -> dict | None:
        span = self.ledger.event_span(campaign_id)
        if span is None:
            return None
        now = max(time.time(), span[1])
        width = figures.bucket_width(now - span[0])
        start = span[0] - span[0] % width
        n = int((now - start) // width) + 1
        spend, clicks, impressions = [0.0] * n, [0.0] * n, [0.0] * n
        for b, kind, count, charged in self.ledger.event_series(campaign_id, start, width):
            if 0 <= b < n:
                spend[b] += charged / MICROS
                clicks[b] += count if kind == "click" else 0
                impressions[b] += count if kind == "impression" else 0
        labels = [datetime.fromtimestamp(start + i * width, UTC).strftime("%m-%d %H:%M") for i in range(n)]
        per = PER.get(width, "week")
        return {"per": per, "spend": figures.bar_chart(spend, labels, f"Spend per {per}"),
                "clicks": figures.bar_chart(clicks, labels, f"Clicks per {per}"),
                "impressions": figures.bar_chart(impressions, labels, f"Impressions per {per}")}

    def edit_campaign(self, session: Session, campaign_id: int, form: dict[str, str]) -> Response:
        errors: Errors = {}
        values = {"name": form.get("name") or None, "bid": number(form, "bid", errors),
                  "budget": number(form, "budget", errors)}
        body = validate(CampaignPatch, values, errors)
        status = 422
        if body is not None:
            try:
                actions.update_campaign(self.engine, campaign_id, body, session.principal)
                return self.redirect(f"/console/campaigns/{campaign_id}")
            except (HTTPException, LedgerError) as err:
                status = refusal(err, errors)
                if status == 404:
                    return self.error(session, 404, f"no campaign {campaign_id}")
        return self.campaign_page(session, campaign_id, values=form, errors=errors, status=status)

    def change_status(self, session: Session, campaign_id: int, status: str, back: str) -> Response:
        try:
            actions.set_status(self.engine, campaign_id, session.principal, status)
        except HTTPException:
            return self.error(session, 404, f"no campaign {campaign_id}")
        return self.redirect("/console/campaigns" if back == "list" else f"/console/campaigns/{campaign_id}")

    # --- creatives and preview -----------------------------------------------------------------
    def creatives_page(self, session: Session, page: int) -> HTMLResponse:
        who, ads = session.principal, self.ads
        mine = ads if who.is_admin else ads[ads["advertiser_id"].astype(int) == who.advertiser_id]
        mine = mine.sort_values("ad_id")
        shown = mine.iloc[(page - 1) * GALLERY_PAGE: page * GALLERY_PAGE]
        serving = {self.engine.ad_of[item]: cid for item, (cid, _) in self.engine.live.items()}
        cards = [{"ad_id": int(r.ad_id), "title": str(r.creative_title), "catalogue_title": str(r.title),
                  "advertiser_id": int(r.advertiser_id), "campaign_id": serving.get(int(r.ad_id))}
                 for r in shown.itertuples()]
        return self.render("creatives.html", session, cards=cards, page_no=page, total=len(mine),
                           pages=max(1, math.ceil(len(mine) / GALLERY_PAGE)))

    async def preview_page(self, request: Request, session: Session, values: dict[str, str]) -> HTMLResponse:
        """The slate the service would answer, decoded through the app's decoding thread and queue bound, without
        its tokens: it records no event, charges nothing and counts in no auction metric."""
        errors: Errors = {}
        fields = {"user_id": an_id(values, "user_id", errors), "history": ids(values, "history", errors),
                  "slots": integer(values, "slots", errors)}
        req = validate(AdRequest, fields, errors)
        result = None
        if req is not None:
            try:
                result = await request.app.state.decode(req)
            except (HTTPException, StarletteHTTPException) as err:
                refusal(err, errors)
        if result is None:
            return self.render("preview.html", session, status=422 if errors else 200, values=values, errors=errors,
                               result=None)
        who = session.principal
        own = None
        if not who.is_admin:
            own = {c.campaign_id for c in await run_in_threadpool(self.ledger.campaigns, who.advertiser_id)}
        slate = [{"position": p.position, "mine": own is None or p.campaign_id in own, "ad_id": p.ad_id,
                  "campaign_id": p.campaign_id, "price": p.price, "pctr": p.pctr, "title": p.title}
                 for p in result.placements]
        return self.render("preview.html", session, values=values, errors={}, result=result, slate=slate)

    # --- operator ------------------------------------------------------------------------------
    def operator_page(self, session: Session, issued: dict | None = None, errors: Errors | None = None,
                      status: int = 200) -> HTMLResponse:
        registry = self.metrics.view()  # every worker's counts under --workers
        routes = figures.route_figures(registry)
        total = sum(r.requests for r in routes)
        rps, window = self.rate.rate(time.time(), total)
        campaigns = self.ledger.campaigns()
        advertisers = figures.advertiser_rows(campaigns, self.engine.advertiser_of, self.ledger.list_keys())
        budget, spent = sum(c.budget_micros for c in campaigns), sum(c.spent_micros for c in campaigns)
        events = {kind: int(figures.counter_total(registry, "genads_events_total", type=kind))
                  for kind in ("impression", "click", "conversion")}
        charged = figures.counter_total(registry, "genads_charged_micros_total") / MICROS
        return self.render("operator.html", session, status=status, routes=routes, total=total, rps=rps, window=window,
                           fill=figures.fill_rate(registry), charged=charged, events=events,
                           live_ads=len(self.engine.live), uptime=time.time() - self.metrics.started,
                           utilisation=spent / budget if budget else None, budget=budget, spent=spent,
                           n_campaigns=len(campaigns), n_serving=sum(c.serving for c in campaigns),
                           advertisers=advertisers[:200], n_advertisers=len(advertisers),
                           issued=issued, errors=errors or {}, values={})

    def issue(self, session: Session, form: dict[str, str]) -> Response:
        errors: Errors = {}
        text = form.get("advertiser_id", "").strip()
        named = an_id(form, "advertiser_id", errors)
        advertiser = self.engine.advertiser_index(named) if isinstance(named, str) else named
        if advertiser is None or not 0 <= advertiser <= 2**63 - 1:
            errors.setdefault("advertiser_id", f"no advertiser {text!r}" if text else
                              "an advertiser id (the dataset's, or a whole number from 0 to 2**62)")
            return self.operator_page(session, errors=errors, status=422)
        try:
            key = actions.issue_key(self.ledger, session.principal, advertiser)
        except HTTPException:
            return self.error(session, 403, "only the admin key issues advertiser keys")
        return self.operator_page(session, issued={"advertiser_id": advertiser, "key_id": key_id(key), "api_key": key},
                                  status=201)
