"""The console's URLs at ``/console``: sign-in, campaigns, a campaign, creatives, slate preview, operator view.

Server-rendered (Jinja2, autoescaped) with no script: every page is plain HTML forms and inline SVG,
sent with a Content-Security-Policy that allows nothing but this origin's images, stylesheet and
form targets. One :class:`APIRouter`; each handler gets the app's :class:`~genads.serve.console.pages.Console`
as a dependency, checks the session (and, for a change, the form's CSRF token) and calls the page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from genads.serve.console.pages import Console
from genads.serve.console.sessions import SIGNIN_COOKIE, FormError, parse_form, same
from genads.serve.keys import MAX_KEY_CHARS

CampaignId = Annotated[int, PathParam(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]


def _console(request: Request) -> Console:
    return request.app.state.console


App = Annotated[Console, Depends(_console)]
router = APIRouter(prefix="/console", include_in_schema=False)


def mount_console(app: FastAPI, *, public_url: str | None = None) -> None:
    """Add the console's routes to the API app (``app.state.engine``, ``.metrics`` and ``.decode`` must be set)."""
    app.state.console = Console(app, public_url)
    app.state.console_sessions = app.state.console.sessions
    app.include_router(router)


# --- sign-in -------------------------------------------------------------------------------------
@router.get("")
def home(request: Request, c: App) -> Response:
    session = c.current(request)
    if session is None:
        return c.redirect("/console/signin")
    return c.redirect("/console/operator" if session.principal.is_admin else "/console/campaigns")


@router.get("/signin")
def signin_form(c: App) -> HTMLResponse:
    return c.signin_page()


@router.post("/signin")
async def signin(request: Request, c: App) -> Response:
    try:
        form = parse_form(request.headers.get("content-type"), await request.body())
    except FormError as err:
        return c.error(None, err.status, err.message)
    if not same(form.get("signin_token"), request.cookies.get(SIGNIN_COOKIE) or ""):
        return c.signin_page("The sign-in form expired: try again.", status=403)
    key = form.get("api_key", "").strip()
    who = await run_in_threadpool(c.ledger.principal, key) if 0 < len(key) <= MAX_KEY_CHARS else None
    if who is None:
        return c.signin_page("Unknown or revoked API key.", status=401)
    if who.publisher is not None:  # it opens /v1/ads and /v1/events only, never a campaign view
        return c.signin_page("A publisher key cannot sign in: use an advertiser's key or the admin key.", status=403)
    return c.signed_in(request, who, key)


@router.post("/signout")
async def signout(request: Request, c: App) -> Response:
    _, form = await c.posted(request)
    return form if isinstance(form, Response) else c.signed_out(request)


# --- campaigns -----------------------------------------------------------------------------------
@router.get("/campaigns")
def campaigns(request: Request, c: App, page: PageNo = 1) -> Response:
    session = c.current(request)
    return c.redirect("/console/signin") if session is None else c.campaigns_page(session, page)


@router.post("/campaigns")
async def create(request: Request, c: App) -> Response:
    session, form = await c.posted(request)
    return form if isinstance(form, Response) else await run_in_threadpool(c.create_campaign, session, form)


@router.get("/campaigns/{campaign_id}")
def campaign(request: Request, campaign_id: CampaignId, c: App) -> Response:
    session = c.current(request)
    return c.redirect("/console/signin") if session is None else c.campaign_page(session, campaign_id)


@router.post("/campaigns/{campaign_id}")
async def edit(request: Request, campaign_id: CampaignId, c: App) -> Response:
    session, form = await c.posted(request)
    if isinstance(form, Response):
        return form
    return await run_in_threadpool(c.edit_campaign, session, campaign_id, form)


async def _set_status(request: Request, campaign_id: int, c: Console, status: str) -> Response:
    session, form = await c.posted(request)
    if isinstance(form, Response):
        return form
    return await run_in_threadpool(c.change_status, session, campaign_id, status, form.get("back", ""))


@router.post("/campaigns/{campaign_id}/pause")
async def pause(request: Request, campaign_id: CampaignId, c: App) -> Response:
    return await _set_status(request, campaign_id, c, "paused")


@router.post("/campaigns/{campaign_id}/resume")
async def resume(request: Request, campaign_id: CampaignId, c: App) -> Response:
    return await _set_status(request, campaign_id, c, "active")


# --- creatives and preview -----------------------------------------------------------------------
@router.get("/creatives")
def creatives(request: Request, c: App, page: PageNo = 1) -> Response:
    session = c.current(request)
    return c.redirect("/console/signin") if session is None else c.creatives_page(session, page)


@router.get("/preview")
async def preview(request: Request, c: App, user_id: str = "", history: str = "", slots: str = "3") -> Response:
    session = c.current(request)
    if session is None:
        return c.redirect("/console/signin")
    values = {"user_id": user_id, "history": history, "slots": slots}
    if not (user_id.strip() or history.strip()) and "slots" not in request.query_params:
        return c.render("preview.html", session, values=values, errors={}, result=None)
    return await c.preview_page(request, session, values)


# --- operator ------------------------------------------------------------------------------------
@router.get("/operator")
def operator(request: Request, c: App) -> Response:
    session = c.current(request)
    if session is None:
        return c.redirect("/console/signin")
    if not session.principal.is_admin:
        return c.error(session, 403, "the operator view needs the admin key")
    return c.operator_page(session)


@router.post("/operator/keys")
async def issue_key(request: Request, c: App) -> Response:
    session, form = await c.posted(request)
    return form if isinstance(form, Response) else await run_in_threadpool(c.issue, session, form)


@router.get("/static/console.css")
def stylesheet(c: App) -> Response:
    return Response(c.css, media_type="text/css", headers={"Cache-Control": "max-age=3600",
                                                           "X-Content-Type-Options": "nosniff"})
