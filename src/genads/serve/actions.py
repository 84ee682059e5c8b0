"""What a principal may do to campaigns and keys: the checks and ledger calls shared by the JSON API and the console.

Both front ends validate their input with the models of :mod:`genads.serve.schemas` and then call
these functions, so ownership (another advertiser's campaign is 404, exactly like a missing one),
the ads-belong-to-the-advertiser rule and the ledger's own checks (bids, budgets below spend) are
written once. Refusals are ``HTTPException`` with the API's ``detail`` list, or the ledger's
:class:`~genads.serve.keys.LedgerError`, each naming the field.
"""

from __future__ import annotations

from fastapi import HTTPException

from genads.serve.engine import AdEngine
from genads.serve.keys import Principal
from genads.serve.ledger import Campaign, SQLLedger
from genads.serve.schemas import CampaignIn, CampaignPatch


def field_error(status: int, loc: list, msg: str) -> HTTPException:
    return HTTPException(status, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def owned(ledger: SQLLedger, campaign_id: int, who: Principal) -> Campaign:
    """The campaign if ``who`` may see it; 404 otherwise, the same answer as for one that does not exist."""
    c = ledger.campaign(campaign_id)
    if c is None or not (who.is_admin or c.advertiser_id == who.advertiser_id):
        raise field_error(404, ["path", "campaign_id"], f"no campaign {campaign_id}")
    return c


def check_ads(engine: AdEngine, ad_ids: list[int | str], advertiser_id: int) -> list[int]:
    """The service's ad_ids of ``ad_ids`` (the dataset's ids or integers), each an ad of the advertiser (422 naming
    its position otherwise)."""
    out = []
    for i, ad in enumerate(ad_ids):
        idx = engine.ad_index(ad)
        if idx is None or engine.advertiser_of.get(idx) != advertiser_id:
            raise field_error(422, ["body", "ad_ids", i],
                              f"ad {ad} is not an ad of advertiser {engine.advertiser_label(advertiser_id)}")
        out.append(idx)
    return out


def advertiser(engine: AdEngine, value: int | str, loc: list) -> int:
    """The service's advertiser_id of an advertiser named by the dataset's id or the integer (404 if unknown)."""
    idx = engine.advertiser_index(value)
    if idx is None:
        raise field_error(404, loc, f"no advertiser {value!r}")
    return idx


def create_campaign(engine: AdEngine, body: CampaignIn, who: Principal) -> Campaign:
    """A new campaign: an advertiser's key for itself only, the admin's for the advertiser it names."""
    if who.is_admin and body.advertiser_id is None:
        raise field_error(422, ["body", "advertiser_id"], "the admin key must name the advertiser")
    if not who.is_admin and body.advertiser_id is not None and engine.advertiser_index(body.advertiser_id) != who.advertiser_id:
        raise field_error(403, ["body", "advertiser_id"], "an advertiser key creates campaigns only for itself")
    owner = advertiser(engine, body.advertiser_id, ["body", "advertiser_id"]) if who.is_admin else who.advertiser_id
    ads = check_ads(engine, body.ad_ids, owner)
    c = engine.ledger.create_campaign(owner, body.name, ads, body.bid, body.budget, body.status)
    engine.refresh(force=True)
    return c


def update_campaign(engine: AdEngine, campaign_id: int, body: CampaignPatch, who: Principal) -> Campaign:
    """Change the given fields; applied to the live set before returning (the next request is built from it)."""
    c = owned(engine.ledger, campaign_id, who)
    fields = body.model_dump(exclude_none=True)
    if body.ad_ids is not None:
        fields["ad_ids"] = check_ads(engine, body.ad_ids, c.advertiser_id)
    out = engine.ledger.update_campaign(campaign_id, **fields, min_pause_s=engine.config.min_pause_s)
    engine.refresh(force=True)
    return out


def set_status(engine: AdEngine, campaign_id: int, who: Principal, status: str) -> Campaign:
    owned(engine.ledger, campaign_id, who)
    out = engine.ledger.update_campaign(campaign_id, status=status, min_pause_s=engine.config.min_pause_s)
    engine.refresh(force=True)
    return out


def issue_key(ledger: SQLLedger, who: Principal, advertiser_id: int) -> str:
    """A new key for an advertiser (the admin only; 403 otherwise). Shown once: only its hash is stored."""
    if not who.is_admin:
        raise field_error(403, ["header", "X-API-Key"], "only the admin key issues advertiser keys")
    return ledger.add_key(advertiser_id)
