"""Request and response bodies of the serving API (pydantic); every bound is in the OpenAPI schema.

Inputs are strict: no coercion (``true`` is not a number, ``"3"`` is not an integer), unknown fields
refused; the app refuses duplicate JSON keys before these models see the body.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from genads.data.vocab import MAX_ID, id_problem


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]
"""A string that can be stored and sent back (JSON allows lone surrogates; UTF-8 does not)."""

MIN_BID = 1e-6
"""One micro: the smallest bid the ledger can hold (a smaller one would be stored as 0)."""
Name = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")
"""Printable names: no control characters (PostgreSQL text cannot hold NUL)."""
MAX_HISTORY = 200


def _an_id(text: str) -> str:
    """The id with its outer whitespace trimmed, as every importer reads it, if the shared rule allows it."""
    problem = id_problem(text.strip())
    if problem is not None:
        raise ValueError(problem)
    return text.strip()


IdText = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_an_id)]
"""A string id as the dataset had it (``u17``, ``ad-8f3a``), under the importer's own rules
(:func:`genads.data.vocab.id_problem` on the text with its outer whitespace trimmed, as importers read it): not
blank, no control or format characters, never a number in a string."""
UserKey = Annotated[int, Field(ge=0, lt=MAX_ID)] | IdText
AdKey = Annotated[int, Field(ge=0, le=2**63 - 1)] | IdText
"""An ad: the dataset's own id (integer or string), or the service's integer ``ad_id``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestContext(Strict):
    page: Text | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f]*$")
    """Where the slots are shown (for logs)."""
    exclude: list[AdKey] = Field(default_factory=list, max_length=100)
    """Ads not to show (already on the page)."""


class AdRequest(Strict):
    user_id: UserKey | None = None
    """A user the bundle knows the history of, by the dataset's id (integer or string); unknown users get a
    cold-start slate (the answer's ``cold_start`` says so)."""
    history: list[AdKey] | None = Field(default=None, max_length=MAX_HISTORY)
    """Ads the user interacted with, oldest first (instead of user_id)."""
    context: RequestContext = Field(default_factory=RequestContext)
    slots: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def one_source(self) -> AdRequest:
        if self.user_id is not None and self.history is not None:
            raise ValueError("give user_id or history, not both")
        return self


class Creative(BaseModel):
    title: str
    image_url: str


class SlotOut(BaseModel):
    ad: int | str
    """The ad as the dataset names it (its own id, integer or string)."""
    ad_id: int
    """The service's integer id of the ad (campaigns, banners); equals ``ad`` for datasets with integer ids."""
    position: int
    """1 = top."""
    campaign_id: int
    price: float
    """Price per click (what a click on this slot is charged); never above the bid."""
    pctr: float
    creative: Creative
    token: str
    """Send it back with the slot's impression/click/conversion events."""


class AdResponse(BaseModel):
    request_id: str
    mechanism: str
    """Pricing used: "learned" (payment network), "gsp", or "none" (no live ad)."""
    slate: list[SlotOut]
    cold_start: bool = False
    """True when the slate was ranked without any history: a user_id the bundle does not know (a typo, or a user
    newer than the export), no user_id, or an empty history."""


class CampaignIn(Strict):
    name: Text = Name
    ad_ids: list[AdKey] = Field(min_length=1, max_length=10_000)
    """The campaign's ads: the dataset's ids (``ad-01b``) or the service's integer ad_ids."""
    bid: float = Field(ge=MIN_BID, le=1e6, allow_inf_nan=False)
    """Bid per click (at least one micro, 0.000001)."""
    budget: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    status: Literal["active", "paused"] = "active"
    advertiser_id: Annotated[int, Field(ge=0, le=2**63 - 1)] | IdText | None = None
    """Only the admin key sets it (the dataset's id, ``shop-3``, or the integer); an advertiser's key creates
    campaigns for itself."""


class CampaignPatch(Strict):
    name: Text | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")
    ad_ids: list[AdKey] | None = Field(default=None, min_length=1, max_length=10_000)
    bid: float | None = Field(default=None, ge=MIN_BID, le=1e6, allow_inf_nan=False)
    budget: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    status: Literal["active", "paused"] | None = None


class CampaignOut(BaseModel):
    campaign_id: int
    advertiser: int | str
    """The advertiser as the dataset names it (``shop-3``; the integer for datasets with integer ids)."""
    advertiser_id: int
    """The service's integer id of the advertiser."""
    name: str
    ads: list[int | str]
    """The campaign's ads as the dataset names them."""
    ad_ids: list[int]
    bid: float
    budget: float
    spent: float
    remaining: float
    status: str
    serving: bool
    """Active with budget left: its ads can be shown."""
    invalid_clicks: int
    """Clicks judged invalid traffic: charged nothing, or refunded."""
    refunded: float
    """Charges given back for clicks judged invalid after they were charged (already taken off spent)."""


class EventIn(Strict):
    idempotency_key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    """Unique per event: a replay with the same key is answered from the ledger, never charged twice."""
    type: Literal["impression", "click", "conversion"]
    token: str = Field(min_length=1, max_length=2000, pattern=r"^[A-Za-z0-9_.-]+$")
    """The slot token from the ad response. A slot's click (impression, conversion) is recorded once:
    another idempotency_key for the same slot and type is refused (409)."""


class EventOut(BaseModel):
    idempotency_key: str
    charged: float
    duplicate: bool
    campaign_exhausted: bool


class KeyOut(BaseModel):
    advertiser: int | str | None = None
    """The advertiser as the dataset names it; None for an admin or publisher key."""
    advertiser_id: int | None
    """None for an admin or publisher key."""
    publisher: str | None = None
    """A publisher key's publisher (it opens /v1/ads and /v1/events only)."""
    key_id: str
    """The key's public id (listings, revocation)."""
    api_key: str
    """Shown once: only its hash is stored."""


class KeyInfoOut(BaseModel):
    key_id: str
    advertiser: int | str | None = None
    advertiser_id: int | None
    is_admin: bool
    created_at: float | None
    revoked_at: float | None
    live: bool
    publisher: str | None = None


class RefundIn(Strict):
    request_id: str = Field(pattern=r"^[0-9a-f]{1,64}$")
    """The event's request (its slot token's request_id, as the served log and refund lists show it)."""
    idempotency_key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    reason: str = Field(default="manual", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._ -]+$")


class RefundOut(BaseModel):
    request_id: str
    idempotency_key: str
    ad_id: int
    amount: float
    reason: str
    """fast_click, client_clicks, user_clicks, or the admin's reason."""
    created_at: float


class TrafficOut(BaseModel):
    campaign_id: int
    invalid_clicks: int
    refunded: float
    invalid_by_reason: dict[str, int]
    """Events recorded (or later marked) invalid, by reason (clicks and conversions)."""
    refunds: list[RefundOut]
    """The latest refunds, newest first (at most 1,000)."""
