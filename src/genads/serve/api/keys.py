"""API keys: the admin issues advertiser and publisher keys; ``/v1/keys`` lists, revokes and rotates them (an
advertiser: its own only; another's answers 404 like an unknown id). A key itself is shown once, when issued."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from genads.serve import actions
from genads.serve.actions import field_error
from genads.serve.api.deps import ApiKey, Engine, KeyId, Publisher, State, Who
from genads.serve.engine import AdEngine
from genads.serve.keys import KeyInfo, key_id
from genads.serve.limits import StrictJSONRoute
from genads.serve.schemas import KeyInfoOut, KeyOut

router = APIRouter(route_class=StrictJSONRoute)


def key_out(engine: AdEngine, k: KeyInfo) -> KeyInfoOut:
    return KeyInfoOut(key_id=k.key_id, advertiser_id=k.advertiser_id,
                      advertiser=None if k.advertiser_id is None else engine.advertiser_label(k.advertiser_id), is_admin=k.is_admin, created_at=k.created_at,
                      revoked_at=k.revoked_at, live=k.revoked_at is None, publisher=k.publisher)


@router.post("/v1/publishers/{publisher}/keys", response_model=KeyOut, status_code=201, tags=["keys"])
def new_publisher_key(publisher: Publisher, who: Who, engine: Engine) -> KeyOut:
    """A publisher (placement) key: it asks for ads and reports events, nothing else (the admin only)."""
    if not who.is_admin:
        raise field_error(403, ["header", "X-API-Key"], "only the admin key issues publisher keys")
    key = engine.ledger.add_key(None, publisher=publisher)
    return KeyOut(advertiser_id=None, key_id=key_id(key), api_key=key, publisher=publisher)


@router.post("/v1/advertisers/{advertiser}/keys", response_model=KeyOut, status_code=201, tags=["keys"])
def new_key(advertiser: Annotated[str, Path(min_length=1, max_length=256)], who: Who, engine: Engine) -> KeyOut:
    """A key for the advertiser named by the dataset's id (``shop-3``) or the service's integer id."""
    named: int | str = int(advertiser) if advertiser.isascii() and advertiser.isdigit() else advertiser
    if isinstance(named, int) and named > 2**63 - 1:
        raise field_error(422, ["path", "advertiser"], "an integer advertiser id is below 2**63")
    advertiser_id = actions.advertiser(engine, named, ["path", "advertiser"])
    key = actions.issue_key(engine.ledger, who, advertiser_id)
    return KeyOut(advertiser=engine.advertiser_label(advertiser_id), advertiser_id=advertiser_id,
                  key_id=key_id(key), api_key=key)


@router.get("/v1/keys", response_model=list[KeyInfoOut], tags=["keys"])
def list_keys(who: Who, engine: Engine) -> list[KeyInfoOut]:
    """The admin sees every key; an advertiser its own. Keys themselves are never shown again, only ids."""
    return [key_out(engine, k) for k in engine.ledger.list_keys(None if who.is_admin else who.advertiser_id)]


@router.delete("/v1/keys/{key_id}", response_model=KeyInfoOut, tags=["keys"])
def revoke(key_id: KeyId, who: Who, engine: Engine) -> KeyInfoOut:
    """Revoke a key at once (an advertiser: only its own; another's answers 404 like an unknown id)."""
    return key_out(engine, engine.ledger.revoke_key(key_id, None if who.is_admin else who.advertiser_id))


@router.post("/v1/keys/rotate", response_model=KeyOut, status_code=201, tags=["keys"])
def rotate(who: Who, api: State, key: ApiKey = None) -> KeyOut:
    """A new key for the caller; the key that made this call stops working at once."""
    if who.is_admin and not api.admin_rotation:
        raise field_error(409, ["header", "X-API-Key"], "the admin key comes from $GENADS_ADMIN_KEY: change it "
                                                        "there and restart (a rotation here would void it)")
    new = api.engine.ledger.rotate_key(key)
    if who.is_admin and api.on_admin_rotate is not None:
        api.on_admin_rotate(new)
    label = None if who.advertiser_id is None else api.engine.advertiser_label(who.advertiser_id)
    return KeyOut(advertiser=label, advertiser_id=who.advertiser_id, key_id=key_id(new), api_key=new)
