"""Row validation for imports: every malformed row becomes an Issue naming file, line and field.

With ``on_error="stop"`` the first issue raises :class:`ImportValidationError`; with ``"skip"`` the
row is dropped, counted per kind and kept in the rejected list, so nothing disappears silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from genads.data.schema import ACTION_CODE
from genads.data.vocab import id_problem

OnError = Literal["stop", "skip"]

KINDS: tuple[str, ...] = (
    "malformed_row",
    "missing_field",
    "bad_id",
    "bad_timestamp",
    "bad_action",
    "bad_value",
    "unknown_ad",
    "duplicate",
)

ACTION_ALIASES: dict[str, str] = {
    "impression": "impression", "exposure": "impression", "view": "impression", "0": "impression",
    "click": "click", "1": "click",
    "conversion": "conversion", "purchase": "conversion", "buy": "conversion", "2": "conversion",
}
"""Accepted spellings of an action (case-insensitive). TencentGR codes 0/1/2 map to
impression/click/conversion."""


@dataclass(frozen=True)
class Issue:
    """One malformed row: where it is, which field, what is wrong."""

    file: str
    line: int
    field: str
    kind: str
    message: str
    value: str = ""

    def __str__(self) -> str:
        shown = f" (value {self.value!r})" if self.value != "" else ""
        return f"{self.file}:{self.line}: field '{self.field}': {self.kind}: {self.message}{shown}"


class ImportValidationError(ValueError):
    """Raised on the first malformed row when on_error='stop'."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(f"{issue}\n(use --on-error skip to drop such rows and count them)")
        self.issue = issue


@dataclass
class IssueLog:
    """Collects issues under a policy; keeps counts per kind and the first ``keep`` issues in full."""

    on_error: OnError = "stop"
    keep: int = 100_000
    counts: Counter = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("stop", "skip"):
            raise ValueError(f"on_error={self.on_error!r} must be 'stop' or 'skip'")

    def add(self, issue: Issue) -> None:
        if self.on_error == "stop":
            raise ImportValidationError(issue)
        self.counts[issue.kind] += 1
        if len(self.issues) < self.keep:
            self.issues.append(issue)

    def extend(self, issues: list[Issue]) -> None:
        """Add issues in input order (file, then line), so 'stop' reports the earliest one."""
        for issue in sorted(issues, key=lambda i: (i.file, i.line)):
            self.add(issue)

    def absorb(self, other: IssueLog) -> None:
        """Add the issues collected (under 'skip') in ``other``, counted in full, listed in input order."""
        self.extend(other.issues)
        listed = Counter(i.kind for i in other.issues)
        for kind, n in other.counts.items():
            self.counts[kind] += n - listed[kind]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.total:
            return "no malformed rows"
        parts = ", ".join(f"{k}={self.counts[k]}" for k in KINDS if self.counts[k])
        return f"skipped {self.total} malformed rows ({parts})"

    def records(self) -> list[dict]:
        return [asdict(i) for i in self.issues]


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


_INT = r"^[+-]?\d{1,18}$"
_ID = r"^\+?\d{1,19}$"
_CANONICAL_ID = r"^(0|[1-9]\d{0,18})$"
_PADDED_ID = r"^(\+[0-9]+|0[0-9]+)$"  # = genads.data.vocab._PADDED: string ids kept as written
"""Ids are written as plain integers below 2**62 (parsed exactly, never through float64)."""
MAX_ID = 2**62  # = genads.data.vocab.MAX_ID: string ids get indices from it up
MAX_ID_CHARS = 256
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

MAX_TIMESTAMP = 1e18
"""Larger timestamps (in absolute value) are rejected: they would not fit int64 after rounding."""


def _text(values: pd.Series) -> pa.Array:
    """A text column as an Arrow string array, whitespace trimmed (None stays null)."""
    try:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # mixed Python values (JSON): compare their str()
        arr = pa.array([None if v is None else str(v) for v in values.tolist()], type=pa.string())
    return pc.utf8_trim_whitespace(arr)


def _all_text(values: pd.Series) -> bool:
    try:
        pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return False
    return True


def _mask(arr: pa.Array) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool, copy=True)


def _ints(text: pa.Array, ok: np.ndarray) -> np.ndarray:
    clean = pc.utf8_ltrim(pc.if_else(pa.array(ok), text, "0"), characters="+")
    return pc.cast(clean, pa.int64()).to_numpy(zero_copy_only=False).copy()


def parse_ids(values: pd.Series, padded_as_text: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse non-negative integer ids. Returns (ids int64, ok bool mask).

    Text must be a plain integer ("1.5e3", "1.0", "true" are rejected); numeric columns (Parquet)
    must hold integral values. Big ids are parsed exactly, never through float64. ``padded_as_text``
    (string ids allowed): only canonical decimals are integers; ``0042`` and ``+123`` are left to
    :func:`string_ids`, so they never merge with ``42`` and ``123``.
    """
    out = np.zeros(len(values), dtype=np.int64)
    if _is_text(values):
        text = _text(values)
        ok = _mask(pc.match_substring_regex(text, _CANONICAL_ID if padded_as_text else _ID))
        clean = pc.utf8_ltrim(pc.if_else(pa.array(ok), text, "0"), characters="+")
        wide = pc.cast(clean, pa.uint64()).to_numpy(zero_copy_only=False)
        ok &= wide < MAX_ID
        out[ok] = wide[ok].astype(np.int64)
        return out, ok
    if pd.api.types.is_bool_dtype(values):
        return out, np.zeros(len(values), dtype=bool)
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        arr = values.to_numpy(dtype=np.int64)
        ok = (arr >= 0) & (arr < MAX_ID)
        out[ok] = arr[ok]
        return out, ok
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(arr) & (arr >= 0) & (np.floor(arr) == arr) & (arr < MAX_ID)
    out[ok] = arr[ok].astype(np.int64)
    return out, ok


def string_ids(values: pd.Series, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (outside ``ok``) holding a string id: text that is not a number (``u1``, ``ad-8f3a``).

    Numbers that are not valid integer ids ("-1", "1.5", "1e3") stay errors: they are far more often a
    broken column than an id. Returns (mask, the trimmed texts as an object array)."""
    if not _is_text(values):
        return np.zeros(len(values), dtype=bool), np.empty(len(values), dtype=object)
    text = _text(values)
    numeric = _mask(pc.match_substring_regex(text, _FLOAT)) & ~_mask(pc.match_substring_regex(text, _PADDED_ID))
    length = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    mask = ~ok & ~numeric & (length > 0) & (length <= MAX_ID_CHARS)
    texts = np.asarray(text.to_pylist(), dtype=object)
    if mask.any():  # the rule the serving API applies too (genads.data.vocab.id_problem), once per distinct id
        verdict = {t: id_problem(t) is None for t in pd.unique(texts[mask])}
        mask[mask] = [verdict[t] for t in texts[mask]]
    return mask, texts


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse finite floats (booleans, "nan" and "inf" are not numbers). Returns (float64, ok mask)."""
    if pd.api.types.is_bool_dtype(values):
        return np.zeros(len(values)), np.zeros(len(values), dtype=bool)
    if _is_text(values):
        if pd.api.types.is_object_dtype(values) and not _all_text(values):
            bools = values.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
            if bools.any():
                values = values.where(~bools, None)
        text = _text(values)
        ok = _mask(pc.match_substring_regex(text, _FLOAT))
        arr = pc.cast(pc.if_else(pa.array(ok), text, "0"), pa.float64()).to_numpy(zero_copy_only=False).copy()
        ok &= np.isfinite(arr)
        return arr, ok
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return arr, np.isfinite(arr)


_DATETIME = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
             r"(Z|[+-]\d{2}(:?\d{2})?)?$")
"""ISO 8601 dates and datetimes (``2024-05-01``, ``2024-05-01 12:03:04``, ``2024-05-01T12:03:04.5+02:00``)."""


def parse_timestamps(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse timestamps: numbers, rounded down to int64 (integers in text are parsed exactly), or ISO 8601
    dates/datetimes as whole seconds since 1970-01-01 UTC (rounded down; no offset given = UTC). Parquet
    timestamp columns are read the same way.

    Returns (int64, ok mask)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_convert("UTC") if values.dt.tz is not None else values
        ok = stamps.notna().to_numpy()
        out = np.zeros(len(values), dtype=np.int64)
        out[ok] = stamps[ok].to_numpy(dtype="datetime64[s]").astype(np.int64)  # whole seconds, rounded down
        return out, ok
    arr, ok = parse_numbers(values)
    ok &= np.abs(np.where(ok, arr, 0)) < MAX_TIMESTAMP
    out = np.zeros(len(arr), dtype=np.int64)
    out[ok] = np.floor(arr[ok]).astype(np.int64)
    if _is_text(values) and ok.any():
        text = _text(values)
        exact = ok & _mask(pc.match_substring_regex(text, _INT))
        if exact.any():
            out[exact] = _ints(text, exact)[exact]
    if _is_text(values) and not ok.all():
        text = _text(values)
        dated = ~ok & _mask(pc.match_substring_regex(text, _DATETIME))
        if dated.any():
            strings = pd.Series(np.asarray(text.to_pylist(), dtype=object)[dated])
            stamps = pd.to_datetime(strings, format="ISO8601", utc=True, errors="coerce")
            good = stamps.notna().to_numpy()
            rows = np.flatnonzero(dated)[good]
            ns = stamps[good].to_numpy(dtype="datetime64[ns]").astype(np.int64)
            out[rows] = np.floor_divide(ns, 10**9)
            ok[rows] = True
    return out, ok


def is_missing(values: pd.Series) -> np.ndarray:
    """True where a field is absent: NA, None or an empty/blank string."""
    missing = values.isna().to_numpy(dtype=bool)
    if _is_text(values):
        missing = missing | _mask(pc.equal(_text(values), ""))
    return missing


def parse_action_map(text: str | None) -> dict[str, str]:
    """``"purchase=conversion,view=impression"`` -> ``{"purchase": "conversion", "view": "impression"}``.

    Keys are the input's action names (case-insensitive), values one of impression, click, conversion."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise ValueError(f"action map entry {part!r} must look like input_name=action (e.g. purchase=conversion)")
        name, action = (p.strip() for p in part.split("=", 1))
        if action not in ACTION_CODE:
            raise ValueError(f"action map entry {part!r}: {action!r} must be one of {', '.join(ACTION_CODE)}")
        if not name:
            raise ValueError(f"action map entry {part!r} has an empty input name")
        out[name.lower()] = action
    return out


def parse_actions(values: pd.Series, action_map: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map action spellings (ACTION_ALIASES, then ``action_map``'s) to ACTION codes. Returns (codes int8, ok mask)."""
    aliases = {**ACTION_ALIASES, **{k.lower(): v for k, v in (action_map or {}).items()}}
    encoded = pc.dictionary_encode(_text(values) if _is_text(values) else _text(values.astype(str)))
    names = pd.Series(encoded.dictionary.to_pylist(), dtype=object).str.lower().map(aliases)
    lookup = names.map(ACTION_CODE).fillna(-1).to_numpy(dtype=np.int64)
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    nulls = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    codes = np.where(nulls, -1, lookup[np.where(nulls, 0, idx).astype(np.int64)] if len(lookup) else -1)
    ok = codes >= 0
    return np.where(ok, codes, 0).astype(np.int8), ok
