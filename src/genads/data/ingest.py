"""Streaming import: any Source -> a validated dataset folder (catalogue, events, meta).

Events flow through in chunks. Pass 1 validates each chunk and hash-partitions it by user into
bucket files; pass 2 sorts each bucket by (user, timestamp, input order), drops exact duplicates
and appends it to events.parquet. The number of buckets grows with the input, so memory stays
bounded by the chunk and bucket size, not the input size. Everything is written to a temporary
folder beside the target and renamed into place at the end: a failed import leaves any existing
dataset untouched.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from genads.data import bids
from genads.data.checks import check_catalogue, check_events
from genads.data.dataset import write_meta
from genads.data.schema import (
    ACTION_CODE,
    ACTIONS,
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    EVENT_SCHEMA,
    EVENTS_FILE,
    REJECTED_FILE,
)
from genads.data.source import Source
from genads.data.validate import Issue, IssueLog, OnError

BUCKET_BYTES = 96 * 2**20
"""Target input bytes per sort bucket (pass 2 holds one bucket in memory)."""


@dataclass
class ImportReport:
    """What an import did: counts, the issue log and where the dataset went."""

    path: Path
    n_ads: int
    n_users: int
    n_events: int
    issues: IssueLog
    meta: dict = field(default_factory=dict)


@dataclass
class _Stats:
    n_events: int = 0
    n_users: int = 0
    clicks: dict[int, int] = field(default_factory=dict)
    ads: set[int] = field(default_factory=set)
    actions: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS), dtype=np.int64))

    def add(self, frame: pd.DataFrame, positive: set[int]) -> None:
        self.n_events += len(frame)
        self.n_users += frame["user_id"].nunique()
        self.ads.update(np.unique(frame["ad_id"].to_numpy()).tolist())
        self.actions += np.bincount(frame["action"].to_numpy(), minlength=len(ACTIONS))
        pos = frame[frame["action"].isin(positive)]
        for ad, c in pos["ad_id"].value_counts().items():
            self.clicks[int(ad)] = self.clicks.get(int(ad), 0) + int(c)


def _bucket_count(size_hint: int) -> int:
    return max(1, math.ceil(size_hint / BUCKET_BYTES))


def _partition(
    source: Source, known_ads: np.ndarray | None, log: IssueLog, tmp: Path, chunk_rows: int, progress: bool
) -> tuple[list[Path], list[str], int]:
    """Pass 1: validate chunks, spill them to per-user-bucket Parquet files."""
    n_buckets = _bucket_count(source.size_hint())
    paths = [tmp / f"bucket-{b:05d}.parquet" for b in range(n_buckets)]
    writers: dict[int, pq.ParquetWriter] = {}
    files: dict[str, int] = {}
    order = 0
    bar = tqdm(total=source.size_hint(), unit="B", unit_scale=True, desc="import events", disable=not progress)
    try:
        for chunk in source.event_chunks(chunk_rows):
            log.extend(chunk.issues)
            good = check_events(chunk.frame, source.field_names, known_ads, log)
            good["_file"] = [files.setdefault(f, len(files)) for f in good["_file"]]
            good["_order"] = np.arange(order, order + len(good), dtype=np.int64)
            order += len(good)
            bucket = good["user_id"].to_numpy() % n_buckets
            for b in np.unique(bucket):
                table = pa.Table.from_pandas(good[bucket == b], preserve_index=False)
                if b not in writers:
                    writers[b] = pq.ParquetWriter(paths[b], table.schema)
                writers[b].write_table(table)
            bar.update(chunk.bytes_read)
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    return [p for b, p in enumerate(paths) if b in writers], list(files), order


def _sort_buckets(
    buckets: list[Path], files: list[str], out: Path, log: IssueLog
) -> _Stats:
    """Pass 2: sort each bucket, drop duplicates, append to events.parquet."""
    stats = _Stats()
    positive = {ACTION_CODE["click"], ACTION_CODE["conversion"]}
    with pq.ParquetWriter(out, EVENT_SCHEMA) as writer:
        for path in tqdm(buckets, desc="sort events", disable=len(buckets) < 2):
            frame = pq.read_table(path).to_pandas()
            frame = frame.sort_values(["user_id", "timestamp", "_order"], kind="stable")
            dup = frame.duplicated(["user_id", "ad_id", "timestamp", "action"], keep="first").to_numpy()
            if dup.any():
                log.extend(
                    [
                        Issue(files[f], int(ln), "event", "duplicate",
                              "same user, ad, timestamp and action as an earlier line")
                        for f, ln in zip(frame["_file"][dup], frame["_line"][dup], strict=True)
                    ]
                )
                frame = frame[~dup]
            stats.add(frame, positive)
            writer.write_table(pa.Table.from_pandas(frame[list(EVENT_SCHEMA.names)], schema=EVENT_SCHEMA,
                                                    preserve_index=False))
            path.unlink()
    return stats


def _bare_catalogue(ads: np.ndarray) -> pd.DataFrame:
    """A catalogue of the ads seen in the events, for inputs without an item table."""
    n = len(ads)
    empty = [""] * n
    return pd.DataFrame({
        "ad_id": ads, "advertiser_id": np.full(n, -1), "title": empty, "description": empty,
        "category": empty, "brand": empty, "price": np.full(n, np.nan),
        "selling_points": [[] for _ in range(n)], "attributes": [[] for _ in range(n)],
        "bid": np.full(n, np.nan), "budget": np.full(n, np.nan),
    })


def _finish_catalogue(cat: pd.DataFrame, clicks: dict[int, int], params: bids.MarketParams) -> tuple[pa.Table, dict]:
    cat = cat.sort_values("ad_id", kind="stable").reset_index(drop=True)
    cat["advertiser_id"], rule = bids.assign_advertisers(cat)
    ad_clicks = np.array([clicks.get(int(a), 0) for a in cat["ad_id"]], dtype=float)
    bid, budget = bids.synthesize(cat["advertiser_id"].to_numpy(), ad_clicks, params)
    missing_bid = cat["bid"].isna().to_numpy()
    missing_budget = cat["budget"].isna().to_numpy()
    cat["bid"] = np.where(missing_bid, bid, cat["bid"])
    cat["budget"] = np.where(missing_budget, budget, cat["budget"])
    cat["embedding"] = None
    money = {
        "advertiser_rule": rule,
        "bid": {**bids.describe(params), "synthetic_rows": int(missing_bid.sum())} if missing_bid.any() else {"synthetic": False},
        "budget": {**bids.describe(params), "synthetic_rows": int(missing_budget.sum())} if missing_budget.any() else {"synthetic": False},
    }
    table = pa.Table.from_pandas(cat[list(CATALOGUE_SCHEMA.names)], schema=CATALOGUE_SCHEMA, preserve_index=False)
    return table, money


def import_dataset(
    source: Source,
    out: str | Path,
    *,
    on_error: OnError = "stop",
    market: bids.MarketParams | None = None,
    chunk_rows: int = 500_000,
    progress: bool = True,
) -> ImportReport:
    """Validate ``source`` and write it as a dataset folder at ``out`` (atomically replaced).

    Raises:
        ImportValidationError: on the first malformed row when ``on_error="stop"``; nothing is written.
    """
    out = Path(out)
    market = market or bids.MarketParams()
    log = IssueLog(on_error=on_error)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        raw_cat = source.catalogue()
        cat = check_catalogue(raw_cat, log) if raw_cat is not None else None
        known = np.sort(cat["ad_id"].to_numpy()) if cat is not None else None
        buckets, files, _ = _partition(source, known, log, tmp, chunk_rows, progress)
        stats = _sort_buckets(buckets, files, tmp / EVENTS_FILE, log)
        if cat is None:
            cat = _bare_catalogue(np.array(sorted(stats.ads), dtype=np.int64))
        table, money = _finish_catalogue(cat, stats.clicks, market)
        pq.write_table(table, tmp / CATALOGUE_FILE)
        meta = {
            "format": source.format,
            "n_ads": table.num_rows,
            "n_users": stats.n_users,
            "n_events": stats.n_events,
            "actions": {name: int(c) for name, c in zip(ACTIONS, stats.actions, strict=True)},
            "rejected": {k: int(v) for k, v in sorted(log.counts.items())},
            "source": source.notes,
            "market": money,
        }
        write_meta(tmp, meta)
        if log.issues:
            pd.DataFrame(log.records()).to_json(tmp / REJECTED_FILE, orient="records", lines=True, force_ascii=False)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImportReport(out, table.num_rows, stats.n_users, stats.n_events, log, meta)


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing target is swapped out, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
