"""What a loader hands to the importer: a raw catalogue and a stream of raw event chunks.

Loaders only read and reshape; the importer (``ingest.py``) validates, so every format gets the
same checks and the same error messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from genads.data.validate import Issue

RAW_EVENT_COLUMNS = ("user_id", "ad_id", "timestamp", "action")
"""Columns of a raw event chunk (strings or numbers, unvalidated), plus ``_file`` and ``_line``."""

RAW_CATALOGUE_COLUMNS = (
    "ad_id", "advertiser_id", "title", "description", "category", "brand", "price",
    "selling_points", "attributes", "bid", "budget",
)


@dataclass
class EventChunk:
    """Raw events from one slice of input. ``frame`` has RAW_EVENT_COLUMNS + ``_file``, ``_line``."""

    frame: pd.DataFrame
    bytes_read: int = 0
    """Input bytes consumed by this chunk (drives the progress bar)."""
    issues: list[Issue] = field(default_factory=list)
    """Rows the loader could not even split into fields (malformed_row)."""


@dataclass
class RawCatalogue:
    """Unvalidated catalogue rows: RAW_CATALOGUE_COLUMNS (missing ones are filled) + _file, _line."""

    frame: pd.DataFrame
    field_names: dict[str, str] = field(default_factory=dict)
    """Canonical column -> the name the input file uses, for error messages."""
    issues: list[Issue] = field(default_factory=list)
    """Rows the loader could not even split into fields (malformed_row)."""


class Source(Protocol):
    """A dataset in some on-disk format."""

    format: str
    """Short name of the input format, stored in meta.json."""
    field_names: dict[str, str]
    """Canonical event column -> the input's own name for it, for error messages."""
    notes: dict
    """Format facts stored in meta.json (e.g. timestamps are ordinal positions)."""

    def size_hint(self) -> int:
        """Bytes of event input, for the progress bar and for sizing the external sort."""
        ...

    def catalogue(self) -> RawCatalogue | None:
        """The item table, or None to derive a bare catalogue from the ads seen in events."""
        ...

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        """Yield raw events, about ``chunk_rows`` at a time, in input order."""
        ...
