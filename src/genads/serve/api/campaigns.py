"""Campaigns under ``/v1/campaigns`` (an advertiser's key: its own only, another's answers 404 exactly as a missing
one; the admin key: all), their invalid-traffic report, and the admin's refunds (``POST /v1/refunds``)."""

from __future__ import annotations

from fastapi import APIRouter

from genads.serve import actions
from genads.serve.actions import field_error
from genads.serve.api.deps import CampaignId, Engine, State, Who
from genads.serve.engine import AdEngine
from genads.serve.ledger import MICROS, Campaign
from genads.serve.limits import StrictJSONRoute
from genads.serve.schemas import CampaignIn, CampaignOut, CampaignPatch, RefundIn, RefundOut, TrafficOut

router = APIRouter(route_class=StrictJSONRoute)


def campaign_out(engine: AdEngine, c: Campaign) -> CampaignOut:
    return CampaignOut(campaign_id=c.campaign_id, advertiser=engine.advertiser_label(c.advertiser_id),
                       advertiser_id=c.advertiser_id, name=c.name, ads=[_label(engine, a) for a in c.ad_ids],
                       ad_ids=list(c.ad_ids),
                       bid=c.bid_micros / MICROS, budget=c.budget_micros / MICROS, spent=c.spent_micros / MICROS,
                       remaining=c.remaining_micros / MICROS, status=c.status, serving=c.serving,
                       invalid_clicks=c.invalid_clicks, refunded=c.refunded_micros / MICROS)


def _label(engine: AdEngine, ad_id: int) -> int | str:
    try:
        return engine.ad_label(ad_id)
    except KeyError:  # a campaign's ad the bundle's vocabulary does not hold (kept from an older bundle)
        return ad_id


@router.post("/v1/campaigns", response_model=CampaignOut, status_code=201, tags=["campaigns"])
def create(body: CampaignIn, who: Who, engine: Engine) -> CampaignOut:
    return campaign_out(engine, actions.create_campaign(engine, body, who))


@router.get("/v1/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
def list_campaigns(who: Who, engine: Engine) -> list[CampaignOut]:
    return [campaign_out(engine, c) for c in engine.ledger.campaigns(None if who.is_admin else who.advertiser_id)]


@router.get("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
def get_campaign(campaign_id: CampaignId, who: Who, engine: Engine) -> CampaignOut:
    return campaign_out(engine, actions.owned(engine.ledger, campaign_id, who))


@router.patch("/v1/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
def update(campaign_id: CampaignId, body: CampaignPatch, who: Who, engine: Engine) -> CampaignOut:
    return campaign_out(engine, actions.update_campaign(engine, campaign_id, body, who))


@router.post("/v1/campaigns/{campaign_id}/pause", response_model=CampaignOut, tags=["campaigns"])
def pause(campaign_id: CampaignId, who: Who, engine: Engine) -> CampaignOut:
    return campaign_out(engine, actions.set_status(engine, campaign_id, who, "paused"))


@router.post("/v1/campaigns/{campaign_id}/resume", response_model=CampaignOut, tags=["campaigns"])
def resume(campaign_id: CampaignId, who: Who, engine: Engine) -> CampaignOut:
    return campaign_out(engine, actions.set_status(engine, campaign_id, who, "active"))


@router.get("/v1/campaigns/{campaign_id}/traffic", response_model=TrafficOut, tags=["campaigns"])
def traffic_report(campaign_id: CampaignId, who: Who, engine: Engine) -> TrafficOut:
    """Invalid clicks and refunds of a campaign (by reason), and its latest refunds (at most 1,000)."""
    ledger = engine.ledger
    c = actions.owned(ledger, campaign_id, who)
    refunds = [RefundOut(request_id=r.request_id, idempotency_key=r.idempotency_key, ad_id=r.ad_id,
                         amount=r.amount_micros / MICROS, reason=r.reason, created_at=r.created_at)
               for r in ledger.refunds(campaign_id)]
    return TrafficOut(campaign_id=campaign_id, invalid_clicks=c.invalid_clicks, refunded=c.refunded_micros / MICROS,
                      invalid_by_reason=ledger.invalid_counts(campaign_id), refunds=refunds)


@router.post("/v1/refunds", response_model=RefundOut, status_code=201, tags=["campaigns"])
def refund_event(body: RefundIn, who: Who, api: State) -> RefundOut:
    """The admin refunds one charged event (a click found invalid on review); idempotent."""
    if not who.is_admin:
        raise field_error(403, ["header", "X-API-Key"], "only the admin key refunds events")
    api.recorder.refund(body.request_id, body.idempotency_key, body.reason)
    found = api.engine.ledger.refund_of(body.request_id, body.idempotency_key)
    if found is None:
        raise field_error(409, ["body", "idempotency_key"], "this event was charged nothing: there is nothing to refund")
    return RefundOut(request_id=found.request_id, idempotency_key=found.idempotency_key, ad_id=found.ad_id,
                     amount=found.amount_micros / MICROS, reason=found.reason, created_at=found.created_at)
