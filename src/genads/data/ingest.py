"""Streaming import: any Source -> a validated dataset folder (catalogue, events, meta).

Events flow through in chunks (an external sort):

1. **partition**: each chunk is validated and its good rows are hash-partitioned by user into
   bucket files (about ``BUCKET_BYTES`` of input each, so their number grows with the input);
2. **sort**: each bucket is sorted by (user, timestamp, input order) and exact duplicates are
   dropped; a bucket with more than ``BUCKET_ROWS`` rows (the size hint was low, e.g. for gzip)
   is split again first, so pass 2 never holds more than about ``BUCKET_ROWS`` rows;
3. **merge**: the sorted runs (written in row groups of ``RUN_ROW_GROUP`` rows) are merged by
   user into events.parquet, reading each run in small batches (``MERGE_ROWS`` rows in all).

Memory is bounded by the chunk, bucket and merge sizes, not by the input (only per-ad counters
grow, with the catalogue). The output is the same whatever the number of buckets. Everything is
written to a temporary folder beside the target and renamed into place at the end: a failed import
leaves any existing dataset untouched.
"""

from __future__ import annotations

import math
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
from genads.data.dataset import default_mode, replace_dir, write_meta
from genads.data.schema import (
    ACTION_CODE,
    ACTIONS,
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    EVENT_SCHEMA,
    EVENTS_FILE,
    META_FILE,
    REJECTED_FILE,
)
from genads.data.source import Source
from genads.data.validate import Issue, IssueLog, OnError
from genads.data.vocab import IdVocabulary

BUCKET_BYTES = 24 * 2**20
"""Target input bytes per sort bucket (about a million CSV events)."""
MAX_BUCKETS = 256
"""Most bucket files open at once in pass 1 (file handles); beyond it buckets grow and pass 2 splits them."""
BUCKET_ROWS = 1_000_000
"""Most rows pass 2 sorts at once; a larger bucket is split again."""
MERGE_ROWS = 500_000
"""Rows held by the final merge, shared among the sorted runs."""
RUN_ROW_GROUP = 65_536
"""Largest row group of a sorted run. The merge decodes one row group per run at a time, so runs are
written in row groups of about MERGE_ROWS / (number of runs), at most this."""

_PART_SCHEMA = pa.schema([
    pa.field("user_id", pa.int64()), pa.field("ad_id", pa.int64()), pa.field("timestamp", pa.int64()),
    pa.field("action", pa.int8()), pa.field("_file", pa.int32()), pa.field("_line", pa.int64()),
    pa.field("_order", pa.int64()),
])


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

    def add(self, users: np.ndarray, ads: np.ndarray, actions: np.ndarray, positive: list[int]) -> None:
        """Count one sorted run (``users`` ascending)."""
        self.n_events += len(users)
        self.n_users += int(np.count_nonzero(np.diff(users))) + 1 if len(users) else 0
        self.ads.update(np.unique(ads).tolist())
        self.actions += np.bincount(actions, minlength=len(ACTIONS))
        ids, counts = np.unique(ads[np.isin(actions, positive)], return_counts=True)
        for ad, c in zip(ids.tolist(), counts.tolist(), strict=True):
            self.clicks[ad] = self.clicks.get(ad, 0) + c


def _release_memory() -> None:
    """Hand memory freed by the last bucket back to the OS (Arrow's pool keeps it otherwise)."""
    pa.default_memory_pool().release_unused()


def _bucket_count(size_hint: int) -> int:
    return min(MAX_BUCKETS, max(1, math.ceil(size_hint / BUCKET_BYTES)))


def _bucket_of(users: np.ndarray, n: int, salt: int = 0) -> np.ndarray:
    """Bucket of each user: a mixed hash (user ids in arithmetic progressions still spread evenly)."""
    with np.errstate(over="ignore"):
        mix = np.uint64((salt * 0x5851F42D4C957F2D) % 2**64)
        h = (users.astype(np.uint64) ^ mix) * np.uint64(0x9E3779B97F4A7C15)
    return ((h >> np.uint64(29)) % np.uint64(n)).astype(np.int64)


def _write_buckets(table: pa.Table, bucket: np.ndarray, paths: list[Path], writers: dict[int, pq.ParquetWriter]) -> None:
    order = np.argsort(bucket, kind="stable")
    ids, starts = np.unique(bucket[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    for b, lo, hi in zip(ids.tolist(), starts.tolist(), ends.tolist(), strict=True):
        if b not in writers:
            writers[b] = pq.ParquetWriter(paths[b], _PART_SCHEMA)
        writers[b].write_table(table.take(pa.array(order[lo:hi])))


def _partition(
    source: Source, known_ads: np.ndarray | None, log: IssueLog, tmp: Path, chunk_rows: int, progress: bool,
    vocab: IdVocabulary | None = None, action_map: dict[str, str] | None = None,
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
            good = check_events(chunk.frame, source.field_names, known_ads, log, chunk.issues, vocab, action_map)
            if len(good):
                names, codes = np.unique(good["_file"].to_numpy().astype(str), return_inverse=True)
                file_codes = np.array([files.setdefault(f, len(files)) for f in names.tolist()], dtype=np.int32)
                table = pa.table({
                    "user_id": good["user_id"].to_numpy(), "ad_id": good["ad_id"].to_numpy(),
                    "timestamp": good["timestamp"].to_numpy(), "action": good["action"].to_numpy(),
                    "_file": file_codes[codes.reshape(-1)], "_line": good["_line"].to_numpy(),
                    "_order": np.arange(order, order + len(good), dtype=np.int64),
                }, schema=_PART_SCHEMA)
                order += len(good)
                _write_buckets(table, _bucket_of(good["user_id"].to_numpy(), n_buckets), paths, writers)
            bar.update(chunk.bytes_read)
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    return [p for b, p in enumerate(paths) if b in writers], list(files), order


def _split_bucket(path: Path, depth: int) -> list[Path]:
    """Re-partition an oversized bucket file into smaller ones (a different hash salt per depth)."""
    pf = pq.ParquetFile(path, pre_buffer=False)
    n = max(2, math.ceil(2 * pf.metadata.num_rows / BUCKET_ROWS))
    paths = [path.with_name(f"{path.stem}-{b:03d}.parquet") for b in range(n)]
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for batch in pf.iter_batches(batch_size=BUCKET_ROWS // 4):
            table = pa.Table.from_batches([batch], schema=_PART_SCHEMA)
            users = table.column("user_id").to_numpy()
            _write_buckets(table, _bucket_of(users, n, salt=depth + 1), paths, writers)
    finally:
        for w in writers.values():
            w.close()
    path.unlink()
    return [p for b, p in enumerate(paths) if b in writers]


def _sort_buckets(buckets: list[Path], files: list[str], log: IssueLog, progress: bool) -> tuple[list[Path], _Stats]:
    """Pass 2: sort each bucket by (user, timestamp, input order), drop duplicates; returns sorted runs."""
    stats = _Stats()
    positive = [ACTION_CODE["click"], ACTION_CODE["conversion"]]
    dups = IssueLog(on_error="skip", keep=log.keep)
    runs: list[Path] = []
    todo = [(p, 0) for p in buckets]
    bar = tqdm(total=len(todo), desc="sort events", disable=not progress or len(todo) < 2)
    while todo:
        path, depth = todo.pop(0)
        if pq.ParquetFile(path).metadata.num_rows > BUCKET_ROWS and depth < 8:
            parts = _split_bucket(path, depth)
            todo[:0] = [(p, depth + 1) for p in parts]
            bar.total += len(parts) - 1
            bar.refresh()
            continue
        run = path.with_name(path.stem + "-sorted.parquet")
        # the merge decodes one row group per run at a time: keep their sum near MERGE_ROWS
        group = max(1024, min(RUN_ROW_GROUP, MERGE_ROWS // (len(runs) + len(todo) + 1)))
        pq.write_table(_sort_run(pq.read_table(path), files, dups, stats, positive), run, row_group_size=group)
        _release_memory()
        runs.append(run)
        path.unlink()
        bar.update(1)
    bar.close()
    log.absorb(dups)
    return runs, stats


def _sort_run(table: pa.Table, files: list[str], dups: IssueLog, stats: _Stats, positive: list[int]) -> pa.Table:
    """One bucket -> events sorted by (user, timestamp, input order), later exact duplicates dropped."""
    col = {name: table.column(name).to_numpy() for name in ("user_id", "ad_id", "timestamp", "action", "_order")}
    user, ad, ts, act, order = col["user_id"], col["ad_id"], col["timestamp"], col["action"], col["_order"]
    n = len(user)
    # duplicates are adjacent when sorted by every key, then input order (the first copy leads)
    perm = np.lexsort((order, act, ad, ts, user))
    same = np.zeros(n, dtype=bool)
    if n > 1:
        u, a, t, x = user[perm], ad[perm], ts[perm], act[perm]
        same[1:] = (u[1:] == u[:-1]) & (t[1:] == t[:-1]) & (a[1:] == a[:-1]) & (x[1:] == x[:-1])
        del u, a, t, x
    keep = np.ones(n, dtype=bool)
    if same.any():
        lines = table.column("_line").to_numpy()
        file_codes = table.column("_file").to_numpy()
        leaders = np.flatnonzero(~same)
        dup_rows = perm[same]
        first_rows = perm[leaders[np.cumsum(~same)[same] - 1]]
        for d, f in zip(dup_rows.tolist(), first_rows.tolist(), strict=True):
            dups.add(Issue(files[file_codes[d]], int(lines[d]), "event", "duplicate",
                           f"same user, ad, timestamp and action as line {int(lines[f])}"))
        keep[dup_rows] = False
    del perm, same
    idx = np.flatnonzero(keep)
    final = idx[np.lexsort((order[idx], ts[idx], user[idx]))]
    stats.add(user[final], ad[final], act[final], positive)
    return table.select(list(EVENT_SCHEMA.names)).take(pa.array(final)).cast(EVENT_SCHEMA)


def _merge_runs(runs: list[Path], out: Path) -> None:
    """Pass 3: merge runs (each sorted by user; a user lives in one run) into one file sorted by user."""
    if len(runs) == 1:
        runs[0].rename(out)
        return
    batch = max(1024, MERGE_ROWS // len(runs))
    readers = [pq.ParquetFile(p, pre_buffer=False).iter_batches(batch_size=batch) for p in runs]  # no read-ahead
    pending: list[pa.Table | None] = [None] * len(runs)

    def refill(i: int) -> None:
        nxt = next(readers[i], None)
        pending[i] = pa.Table.from_batches([nxt], schema=EVENT_SCHEMA) if nxt is not None else None

    for i in range(len(runs)):
        refill(i)
    with pq.ParquetWriter(out, EVENT_SCHEMA) as writer:
        while any(t is not None for t in pending):
            live = [i for i, t in enumerate(pending) if t is not None]
            # every user <= the smallest "last user" of the pending batches is complete in memory
            # or continues only in that run's next batch, which comes first in the next round
            limit = min(pending[i].column("user_id")[-1].as_py() for i in live)
            parts = []
            for i in live:
                users = pending[i].column("user_id").to_numpy()
                cut = int(np.searchsorted(users, limit, side="right"))
                parts.append(pending[i].slice(0, cut))
                pending[i] = pending[i].slice(cut)
                if pending[i].num_rows == 0:
                    refill(i)
            table = pa.concat_tables(parts)
            order = np.argsort(table.column("user_id").to_numpy(), kind="stable")
            writer.write_table(table.take(pa.array(order)))
            del table, parts, order
            _release_memory()
    for p in runs:
        p.unlink()


def _bare_catalogue(ads: np.ndarray) -> pd.DataFrame:
    """A catalogue of the ads seen in the events, for inputs without an item table."""
    n = len(ads)
    empty = pd.Series([""] * n, dtype=object)
    lists = lambda: pd.Series([[] for _ in range(n)], dtype=object)  # noqa: E731
    return pd.DataFrame({
        "ad_id": ads, "advertiser_id": np.full(n, -1, dtype=np.int64), "title": empty, "description": empty,
        "category": empty, "brand": empty, "price": np.full(n, np.nan),
        "selling_points": lists(), "attributes": lists(),
        "bid": np.full(n, np.nan), "budget": np.full(n, np.nan),
    })


def _finish_catalogue(cat: pd.DataFrame, clicks: dict[int, int], params: bids.MarketParams) -> tuple[pa.Table, dict]:
    cat = cat.sort_values("ad_id", kind="stable").reset_index(drop=True)
    keys = bids.advertiser_keys(cat)
    cat["advertiser_id"], rule = bids.assign_advertisers(cat)
    ad_clicks = np.array([clicks.get(a, 0) for a in cat["ad_id"].tolist()], dtype=float)
    bid, budget = bids.synthesize(keys, ad_clicks, params, ad_id=cat["ad_id"].to_numpy())
    missing_bid = cat["bid"].isna().to_numpy()
    missing_budget = cat["budget"].isna().to_numpy()
    cat["bid"] = np.where(missing_bid, bid, cat["bid"].to_numpy(dtype=float, na_value=np.nan))
    cat["budget"] = np.where(missing_budget, budget, cat["budget"].to_numpy(dtype=float, na_value=np.nan))
    if "embedding" not in cat:  # loaders with precomputed vectors (TencentGR multimodal embeddings) keep them
        cat["embedding"] = None
    money = {
        "advertiser_rule": rule,
        "bid": {**bids.describe(params), "synthetic_rows": int(missing_bid.sum())} if missing_bid.any() else {"synthetic": False},
        "budget": {**bids.describe(params), "synthetic_rows": int(missing_budget.sum())} if missing_budget.any() else {"synthetic": False},
    }
    table = pa.Table.from_pandas(cat[list(CATALOGUE_SCHEMA.names)], schema=CATALOGUE_SCHEMA, preserve_index=False)
    return table, money


def _write_rejected(log: IssueLog, path: Path) -> None:
    """rejected.jsonl: one issue per line, in input order (files in the order they were read, then line)."""
    rank: dict[str, int] = {}
    for issue in log.issues:
        rank.setdefault(issue.file, len(rank))
    records = sorted(log.records(), key=lambda r: (rank[r["file"]], r["line"]))
    pd.DataFrame(records).to_json(path, orient="records", lines=True, force_ascii=False)


def _check_target(out: Path) -> None:
    """Refuse to replace anything but a dataset folder (or an empty folder) at ``out``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder: choose another --out")
    if any(out.iterdir()) and not (out / META_FILE).is_file():
        raise FileExistsError(f"{out} is a non-empty folder without {META_FILE} (not a genads dataset): "
                              "refusing to replace it; choose another --out")


def import_dataset(
    source: Source,
    out: str | Path,
    *,
    on_error: OnError = "stop",
    market: bids.MarketParams | None = None,
    chunk_rows: int = 200_000,
    progress: bool = True,
    action_map: dict[str, str] | None = None,
    string_ids: bool = True,
) -> ImportReport:
    """Validate ``source`` and write it as a dataset folder at ``out`` (atomically replaced).

    ``action_map`` names the input's own actions (``{"purchase": "conversion"}``). With ``string_ids``
    (the default) ids that are not integers (``u1``, ``ad-8f3a``) are kept in the dataset's id vocabulary
    (``ids.parquet``, see genads.data.vocab); without it they are rejected as bad_id.

    Raises:
        ImportValidationError: on the first malformed row when ``on_error="stop"``; nothing is written
            and an existing dataset at ``out`` is left as it was.
        FileExistsError: if ``out`` exists and is neither a dataset folder nor empty.
    """
    out = Path(out)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} must be >= 1")
    market = market or bids.MarketParams()
    log = IssueLog(on_error=on_error)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    default_mode(tmp, directory=True)
    try:
        vocab = IdVocabulary() if string_ids else None
        raw_cat = source.catalogue()
        cat = check_catalogue(raw_cat, log, vocab) if raw_cat is not None else None
        del raw_cat
        known = np.sort(cat["ad_id"].to_numpy()) if cat is not None else None
        buckets, files, _ = _partition(source, known, log, tmp, chunk_rows, progress, vocab, action_map)
        runs, stats = _sort_buckets(buckets, files, log, progress)
        if runs:
            _merge_runs(runs, tmp / EVENTS_FILE)
        else:
            pq.write_table(EVENT_SCHEMA.empty_table(), tmp / EVENTS_FILE)
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
        if action_map:
            meta["action_map"] = dict(sorted(action_map.items()))
        if vocab is not None and len(vocab):
            vocab.save(tmp)
            meta["string_ids"] = {k: vocab.size(k) for k in ("user", "ad", "advertiser") if vocab.size(k)}
        if log.total > len(log.issues):
            meta["rejected_listed"] = len(log.issues)
        write_meta(tmp, meta)
        if log.issues:
            _write_rejected(log, tmp / REJECTED_FILE)
        _check_target(out)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImportReport(out, table.num_rows, stats.n_users, stats.n_events, log, meta)

