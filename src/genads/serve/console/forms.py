"""Form fields -> the API's request models, and refusals -> messages by field.

The console reads numbers and id lists from text fields, then validates them with the same pydantic
models the JSON API uses (:mod:`genads.serve.schemas`), so a bid or budget the API refuses is
refused here with the API's message, shown beside the field.
"""

from __future__ import annotations

import math
import re

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError

from genads.serve.keys import LedgerError

Errors = dict[str, str]
"""Form field -> message; ``"form"`` for what belongs to no single field."""


def number(form: dict[str, str], name: str, errors: Errors) -> float | None:
    """The field as a finite float; None when blank or refused (the refusal goes into ``errors``)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        errors[name] = "must be a number"
        return None
    if not math.isfinite(value):
        errors[name] = "must be a finite number"
        return None
    return value


def integer(form: dict[str, str], name: str, errors: Errors) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[+-]?\d{1,20}", text):
        errors[name] = "must be a whole number"
        return None
    return int(text)


_INTEGER_ID = re.compile(r"0|[1-9]\d{0,18}")
"""A token that is an integer id: the canonical decimal (``0042`` and ``+123`` are string ids, as on import)."""


def an_id(form: dict[str, str], name: str, errors: Errors) -> int | str | None:
    """One id as the dataset writes it: an integer for a canonical decimal, else the text (the model checks it
    under the importer's rules); None when blank."""
    text = form.get(name, "").strip()
    if not text:
        return None
    return int(text) if _INTEGER_ID.fullmatch(text) else text


def ids(form: dict[str, str], name: str, errors: Errors) -> list[int | str] | None:
    """Ids (the dataset's: ``ad-8f3a``, ``0042``, ``17``) separated by commas or spaces; None when blank."""
    text = form.get(name, "").strip()
    if not text:
        return None
    return [int(p) if _INTEGER_ID.fullmatch(p) else p for p in re.split(r"[\s,]+", text) if p]


def validate(model: type[BaseModel], values: dict, errors: Errors) -> BaseModel | None:
    """``model`` from the fields that parsed (None values left out); its refusals go into ``errors``."""
    if errors:
        return None
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        for e in err.errors():
            field = str(e["loc"][0]) if e.get("loc") else "form"
            errors.setdefault(field, str(e.get("msg", "")))
        return None


def refusal(err: HTTPException | LedgerError, errors: Errors) -> int:
    """Put an action's refusal into ``errors`` by field; returns its HTTP status."""
    if isinstance(err, LedgerError):
        errors[err.field] = err.message
        return err.status
    for d in err.detail if isinstance(err.detail, list) else [{"loc": [], "msg": str(err.detail)}]:
        loc = [x for x in d.get("loc", []) if x not in ("body", "path", "header")]
        errors.setdefault(str(loc[0]) if loc else "form", str(d.get("msg", "")))
    return err.status_code
