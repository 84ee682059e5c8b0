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

from genads.data.schema import ACTION_CODE

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
        for issue in sorted(issues, key=lambda i: (i.file, i.line)):
            self.add(issue)

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


def parse_ids(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse non-negative integer ids. Returns (ids int64, ok bool mask)."""
    num = pd.to_numeric(values, errors="coerce")
    arr = num.to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isfinite(arr) & (arr >= 0) & (np.floor(arr) == arr) & (arr < 2**62)
    out = np.zeros(len(arr), dtype=np.int64)
    out[ok] = arr[ok].astype(np.int64)
    if values.dtype == object:  # "1.5e3" parses as float: ids must be written as integers
        s = values.astype(str)
        ok &= s.str.fullmatch(r"\s*\+?\d+\s*").to_numpy()
    return out, ok


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse finite floats. Returns (values float64, ok mask)."""
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return arr, np.isfinite(arr)


def is_missing(values: pd.Series) -> np.ndarray:
    """True where a field is absent: NA, None or an empty/blank string."""
    missing = values.isna().to_numpy()
    if values.dtype == object:
        missing = missing | values.astype(str).str.strip().eq("").to_numpy()
    return missing


def parse_actions(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Map action spellings to ACTION codes. Returns (codes int8, ok mask)."""
    names = values.astype(str).str.strip().str.lower().map(ACTION_ALIASES)
    ok = names.notna().to_numpy()
    codes = names.map(ACTION_CODE).fillna(0).to_numpy(dtype=np.int8)
    return codes, ok
