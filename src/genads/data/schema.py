"""The canonical tables every part of genads reads: a catalogue of ads and an event log.

On disk a dataset is a folder with ``catalogue.parquet``, ``events.parquet`` and ``meta.json``.
"""

from __future__ import annotations

import pyarrow as pa

ACTIONS: tuple[str, ...] = ("impression", "click", "conversion")
"""Event kinds, in funnel order. Their index is the ``action`` code stored in events.parquet."""

ACTION_CODE: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}

CATALOGUE_SCHEMA = pa.schema(
    [
        pa.field("ad_id", pa.int64(), nullable=False),
        pa.field("advertiser_id", pa.int64(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("description", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("brand", pa.string(), nullable=False),
        pa.field("price", pa.float64(), nullable=True),
        pa.field("selling_points", pa.list_(pa.string()), nullable=False),
        pa.field("attributes", pa.list_(pa.string()), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=True),
        pa.field("bid", pa.float64(), nullable=False),
        pa.field("budget", pa.float64(), nullable=False),
    ]
)
"""One row per ad. ``attributes`` holds categorical tokens (genres, anonymised attribute ids);
``embedding`` is an optional precomputed vector; ``bid`` is per click, ``budget`` per advertiser
(repeated on each of its ads)."""

EVENT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("ad_id", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("action", pa.int8(), nullable=False),
    ]
)
"""One row per event, sorted by (user_id, timestamp, input order). ``action`` indexes ACTIONS."""

CATALOGUE_FILE = "catalogue.parquet"
EVENTS_FILE = "events.parquet"
META_FILE = "meta.json"
USERS_FILE = "users.parquet"
"""Optional: one row per user with a profile (user_id, features: list of "feature=value"), e.g. TencentGR user_feat."""
REJECTED_FILE = "rejected.jsonl"
