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
)


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
) -> pd.DataFrame:
    """Validate one raw event chunk; return the good rows typed as EVENT_SCHEMA (+ _file, _line).

    Each bad row yields exactly one issue, for the first field that fails, in column order.
    ``known_ads`` (sorted int64) enables the unknown-ad check. ``loader_issues`` (rows the loader
    could not split) are logged together with this chunk's issues, in input order.
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
    users, good = parse_ids(frame["user_id"])
    flag(~good, "user_id", "bad_id", "must be a non-negative integer")
    ads, good = parse_ids(frame["ad_id"])
    flag(~good, "ad_id", "bad_id", "must be a non-negative integer")
    ts, good = parse_timestamps(frame["timestamp"])
    flag(~good, "timestamp", "bad_timestamp", "must be a number (seconds since the epoch, or an ordinal)")
    actions, good = parse_actions(frame["action"])
    flag(~good, "action", "bad_action", "must be impression, click or conversion")
    if known_ads is not None:
        pos = np.clip(np.searchsorted(known_ads, ads), 0, max(len(known_ads) - 1, 0))
        known = (known_ads[pos] == ads) if len(known_ads) else np.zeros(len(ads), bool)
        flag(~known, "ad_id", "unknown_ad", "no such ad in the catalogue")
    log.extend([*(loader_issues or []), *issues])
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


def check_catalogue(raw: RawCatalogue, log: IssueLog) -> pd.DataFrame:
    """Validate catalogue rows: ids, numbers, duplicates. Returns clean rows (bid/budget may be NaN)."""
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
    ids, good = parse_ids(frame["ad_id"])
    flag(~good, "ad_id", "bad_id", "must be a non-negative integer")
    adv_present = ~is_missing(frame["advertiser_id"])
    advertisers, good = parse_ids(frame["advertiser_id"])
    flag(adv_present & ~good, "advertiser_id", "bad_id", "must be a non-negative integer")
    numbers = {}
    for col in ("price", "bid", "budget"):
        present = ~is_missing(frame[col])
        numbers[col], good = parse_numbers(frame[col])
        flag(present & ~(good & (numbers[col] >= 0)), col, "bad_value", "must be a non-negative number")
        numbers[col] = np.where(present, numbers[col], np.nan)
    keyed = pd.Series(np.where(ok, ids, -1))
    dup = keyed.duplicated(keep="first").to_numpy() & ok
    if dup.any():
        lines = frame["_line"].to_numpy(dtype=np.int64)
        first = dict(zip(ids[ok & ~dup].tolist(), lines[ok & ~dup].tolist(), strict=True))
        for i in np.flatnonzero(dup):
            issues.append(Issue(str(frame["_file"].iloc[i]), int(lines[i]), name("ad_id"), "duplicate",
                                f"ad_id already defined on line {first[int(ids[i])]}", str(frame["ad_id"].iloc[i])))
        ok &= ~dup
    log.extend(issues)
    text = lambda col: frame[col].fillna("").astype(str).str.strip().to_numpy()[ok]  # noqa: E731
    return pd.DataFrame(
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
