"""Vectorised checks of raw catalogue and event rows (see validate.py for the issue model)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from genads.data.source import RAW_CATALOGUE_COLUMNS, RawCatalogue
from genads.data.validate import (
    Issue,
    IssueLog,
    is_missing,
    parse_actions,
    parse_ids,
    parse_numbers,
    parse_timestamps,
    string_ids,
)
from genads.data.vocab import IdVocabulary


def _issues(frame: pd.DataFrame, bad: np.ndarray, field: str, kind: str, message: str, column: str | None) -> list[Issue]:
    rows = frame.loc[bad]
    values = rows[column].astype(str).tolist() if column else [""] * len(rows)
    return [
        Issue(file=str(f), line=int(ln), field=field, kind=kind, message=message, value=v)
        for f, ln, v in zip(rows["_file"].tolist(), rows["_line"].tolist(), values, strict=True)
    ]


def check_events(
    frame: pd.DataFrame,
    field_names: dict[str, str],
    known_ads: np.ndarray | None,
    log: IssueLog,
    loader_issues: list[Issue] | None = None,
    vocab: IdVocabulary | None = None,
    action_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Validate one raw event chunk; return the good rows typed as EVENT_SCHEMA (+ _file, _line).

    Each bad row yields exactly one issue, for the first field that fails, in column order.
    ``known_ads`` (sorted int64) enables the unknown-ad check. ``loader_issues`` (rows the loader
    could not split) are logged together with this chunk's issues, in input order. With ``vocab``,
    string ids are accepted: users (and, without a catalogue, ads) of good rows are added to it in
    input order; with a catalogue a string ad id must already be in it (the catalogue's).
    ``action_map`` adds the input's own action names (``{"purchase": "conversion"}``).
    """
    ok = np.ones(len(frame), dtype=bool)
    issues: list[Issue] = []
    name = lambda col: field_names.get(col, col)  # noqa: E731

    def flag(bad: np.ndarray, col: str, kind: str, message: str, show: bool = True) -> None:
        nonlocal ok
        bad = bad & ok
        if bad.any():
            issues.extend(_issues(frame, bad, name(col), kind, message, col if show else None))
            ok &= ~bad

    for col in ("user_id", "ad_id", "timestamp", "action"):
        flag(is_missing(frame[col]), col, "missing_field", "required field is empty", show=False)
    message = "must be a non-negative integer or a non-numeric string id" if vocab is not None \
        else "must be a non-negative integer"
    users, good = parse_ids(frame["user_id"], vocab is not None)
    user_str, user_text = string_ids(frame["user_id"], good) if vocab is not None else (np.zeros(len(frame), bool), None)
    flag(~good & ~user_str, "user_id", "bad_id", message)
    ads, good = parse_ids(frame["ad_id"], vocab is not None)
    ad_str, ad_text = string_ids(frame["ad_id"], good) if vocab is not None else (np.zeros(len(frame), bool), None)
    flag(~good & ~ad_str, "ad_id", "bad_id", message)
    ts, good = parse_timestamps(frame["timestamp"])
    flag(~good, "timestamp", "bad_timestamp", "must be a number (seconds since the epoch, or an ordinal)")
    actions, good = parse_actions(frame["action"], action_map)
    flag(~good, "action", "bad_action", "must be impression, click or conversion"
         + (" (or a name in --action-map)" if action_map else " (map other names with --action-map)"))
    if vocab is not None and known_ads is not None and (ad_str & ok).any():
        rows = ad_str & ok
        ads[rows] = vocab.lookup("ad", ad_text[rows])  # -1 (unknown_ad below) for ads not in the catalogue
    if known_ads is not None:
        pos = np.clip(np.searchsorted(known_ads, ads), 0, max(len(known_ads) - 1, 0))
        known = (known_ads[pos] == ads) if len(known_ads) else np.zeros(len(ads), bool)
        flag(~known, "ad_id", "unknown_ad", "no such ad in the catalogue")
    log.extend([*(loader_issues or []), *issues])
    if vocab is not None:  # only accepted rows enter the vocabulary, in input order
        if known_ads is None and (ad_str & ok).any():
            ads[ad_str & ok] = vocab.encode("ad", ad_text[ad_str & ok])
        if (user_str & ok).any():
            users[user_str & ok] = vocab.encode("user", user_text[user_str & ok])
    return pd.DataFrame(
        {
            "user_id": users[ok],
            "ad_id": ads[ok],
            "timestamp": ts[ok],
            "action": actions[ok],
            "_file": frame["_file"].to_numpy()[ok],
            "_line": frame["_line"].to_numpy(dtype=np.int64)[ok],
        }
    )


def _as_list(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in str(value).split("|") if p.strip()]


def check_catalogue(raw: RawCatalogue, log: IssueLog, vocab: IdVocabulary | None = None) -> pd.DataFrame:
    """Validate catalogue rows: ids, numbers, duplicates. Returns clean rows (bid/budget may be NaN).

    With ``vocab``, string ad and advertiser ids of the good rows are added to it in row order."""
    log.extend(raw.issues)
    frame = raw.frame.copy()
    for col in RAW_CATALOGUE_COLUMNS:
        if col not in frame:
            frame[col] = None
    name = lambda col: raw.field_names.get(col, col)  # noqa: E731
    ok = np.ones(len(frame), dtype=bool)
    issues: list[Issue] = []

    def flag(bad: np.ndarray, col: str, kind: str, message: str, show: bool = True) -> None:
        nonlocal ok
        bad = bad & ok
        if bad.any():
            issues.extend(_issues(frame, bad, name(col), kind, message, col if show else None))
            ok &= ~bad

    flag(is_missing(frame["ad_id"]), "ad_id", "missing_field", "required field is empty", show=False)
    message = "must be a non-negative integer or a non-numeric string id" if vocab is not None \
        else "must be a non-negative integer"
    none = (np.zeros(len(frame), bool), None)
    ids, good = parse_ids(frame["ad_id"], vocab is not None)
    ad_str, ad_text = string_ids(frame["ad_id"], good) if vocab is not None else none
    flag(~good & ~ad_str, "ad_id", "bad_id", message)
    if ad_str.any():  # duplicates are found on the text: look the strings up without adding them yet
        ids[ad_str] = -2 - pd.factorize(pd.Series(ad_text[ad_str]))[0]
    adv_present = ~is_missing(frame["advertiser_id"])
    advertisers, good = parse_ids(frame["advertiser_id"], vocab is not None)
    adv_str, adv_text = string_ids(frame["advertiser_id"], good) if vocab is not None else none
    flag(adv_present & ~good & ~adv_str, "advertiser_id", "bad_id", message)
    numbers = {}
    for col in ("price", "bid", "budget"):
        present = ~is_missing(frame[col])
        numbers[col], good = parse_numbers(frame[col])
        flag(present & ~(good & (numbers[col] >= 0)), col, "bad_value", "must be a non-negative number")
        numbers[col] = np.where(present, numbers[col], np.nan)
    vectors = _embeddings(frame, flag) if "embedding" in raw.frame else None
    keyed = pd.Series(np.where(ok, ids, -1))  # string ids are -2, -3, ... here
    dup = keyed.duplicated(keep="first").to_numpy() & ok
    if dup.any():
        lines = frame["_line"].to_numpy(dtype=np.int64)
        first = dict(zip(ids[ok & ~dup].tolist(), lines[ok & ~dup].tolist(), strict=True))
        for i in np.flatnonzero(dup):
            issues.append(Issue(str(frame["_file"].iloc[i]), int(lines[i]), name("ad_id"), "duplicate",
                                f"ad_id already defined on line {first[int(ids[i])]}", str(frame["ad_id"].iloc[i])))
        ok &= ~dup
    log.extend(issues)
    if ad_str.any() and (ad_str & ok).any():
        ids[ad_str & ok] = vocab.encode("ad", ad_text[ad_str & ok])
    if adv_str.any() and (adv_str & ok).any():
        advertisers[adv_str & ok] = vocab.encode("advertiser", adv_text[adv_str & ok])
    text = lambda col: frame[col].fillna("").astype(str).str.strip().to_numpy()[ok]  # noqa: E731
    out = pd.DataFrame(
        {
            "ad_id": ids[ok],
            "advertiser_id": np.where(adv_present, advertisers, -1)[ok],
            "title": text("title"),
            "description": text("description"),
            "category": text("category"),
            "brand": text("brand"),
            "price": numbers["price"][ok],
            "selling_points": [_as_list(v) for v in frame["selling_points"].to_numpy()[ok]],
            "attributes": [_as_list(v) for v in frame["attributes"].to_numpy()[ok]],
            "bid": numbers["bid"][ok],
            "budget": numbers["budget"][ok],
        }
    )
    if vectors is not None:
        out["embedding"] = [v for v, keep in zip(vectors, ok, strict=True) if keep]
    return out


def _embeddings(frame: pd.DataFrame, flag) -> list:
    """Parse the optional ``embedding`` column: a list of finite numbers, one dimension for all (or absent).

    Rows with a malformed vector are flagged bad_value; returns float32 arrays (None where absent)."""
    out: list = [None] * len(frame)
    bad = np.zeros(len(frame), dtype=bool)
    dim = None
    for i, v in enumerate(frame["embedding"].tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        try:
            arr = np.asarray(v, dtype=np.float32)
        except (TypeError, ValueError):
            bad[i] = True
            continue
        if arr.ndim != 1 or not len(arr) or not np.isfinite(arr).all() or (dim is not None and len(arr) != dim):
            bad[i] = True
            continue
        dim = len(arr) if dim is None else dim
        out[i] = arr
    flag(bad, "embedding", "bad_value", f"must be a list of finite numbers{f' of length {dim}' if dim else ''}",
         show=False)
    return out
