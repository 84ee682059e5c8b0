"""The import's sort stage on DuckDB: accepted events -> events.parquet, duplicates, counts.

Input: a DuckDB table (or view) of validated events with columns ``user_id, ad_id, timestamp,
action, _file, _line, _order`` (``_order``: input order, unique). DuckDB sorts by (user, timestamp,
input order) out of core (spilling to ``temp_directory`` beyond ``memory_limit``) and streams the
result; exact duplicates (same user, ad, timestamp and action; the first in input order is kept)
are dropped from that stream, which is written to Parquet. The Parquet file is written by pyarrow in fixed row groups of
``ROW_GROUP`` rows from a total order, so the same input gives the same bytes whatever DuckDB's
thread scheduling.
"""

from __future__ import annotations

import itertools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genads.data.schema import ACTION_CODE, ACTIONS, EVENT_SCHEMA
from genads.data.validate import Issue, IssueLog

_LOG = logging.getLogger(__name__)
ROW_GROUP = 1 << 20
"""Rows per row group of events.parquet."""
ENCODING = {"use_dictionary": False,
            "column_encoding": {"user_id": "DELTA_BINARY_PACKED", "timestamp": "DELTA_BINARY_PACKED"}}
"""events.parquet's encodings: sorted users and their times as deltas. At 10M events against pyarrow's default
dictionaries: 0.43 vs 0.79 CPU s to write, 88 vs 107 MB, read back in 0.34 vs 1.44 s."""


@dataclass(frozen=True)
class DuckConfig:
    """Resources DuckDB may use during an import."""

    memory_limit: str = "1500MB"
    """DuckDB's buffer pool; it spills sorts and aggregates to disk beyond it."""
    threads: int | None = None
    """Worker threads (None: DuckDB's default, one per core)."""


@dataclass
class SortStats:
    """Counts of the sorted, deduplicated events."""

    n_events: int = 0
    n_users: int = 0
    ads: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Distinct ad ids seen, ascending."""
    clicks: dict[int, int] = field(default_factory=dict)
    """Ad id -> click and conversion events."""
    actions: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS), dtype=np.int64))


def connect(work: Path, config: DuckConfig, progress: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database that spills to ``work/spill`` (a temporary folder) beyond its memory limit.

    With ``progress``, DuckDB draws its own progress bar for statements that run longer than 2 s."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{config.memory_limit}'")
    if config.threads is not None:
        con.execute(f"SET threads = {int(config.threads)}")
    con.execute(f"SET temp_directory = '{(work / 'spill').as_posix()}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET enable_progress_bar = {bool(progress)}")
    return con


def sort_events(con: duckdb.DuckDBPyConnection, table: str, files: list[str], out: Path, log: IssueLog) -> SortStats:
    """Deduplicate and sort ``table`` into ``out`` (EVENT_SCHEMA); duplicates go to ``log``.

    One ORDER BY, no grouping: copies share user and timestamp, so :class:`_Dedup` finds them in the sorted
    stream, within runs of equal (user, timestamp), while a writer thread encodes the previous row group."""
    start = time.perf_counter()
    per = con.execute(f"SELECT ad_id, action, count(*) AS n FROM {table} GROUP BY ad_id, action").fetchnumpy()
    reader = con.sql(f"SELECT user_id, ad_id, timestamp, action, _order, _file, _line FROM {table} "
                     "ORDER BY user_id, timestamp, _order").to_arrow_reader(ROW_GROUP)
    dedup, users = _Dedup(), _UserCount()
    pending: list[pa.Table] = []
    rows = 0
    with pq.ParquetWriter(out, EVENT_SCHEMA, **ENCODING) as writer, ThreadPoolExecutor(1) as pool:
        written: Future | None = None

        def write(group: pa.Table) -> None:
            nonlocal written
            if written is not None:
                written.result()
            written = pool.submit(writer.write_table, _typed(group), row_group_size=ROW_GROUP)

        for batch in itertools.chain(reader, [None]):  # streamed: a list would hold the whole result
            kept = dedup.push(batch)
            if kept is None or not kept.num_rows:
                continue
            users.add(kept.column(0).to_numpy())
            pending.append(kept)
            rows += kept.num_rows
            while rows >= ROW_GROUP:
                table_ = pa.concat_tables(pending)
                write(table_.slice(0, ROW_GROUP))
                pending, rows = [table_.slice(ROW_GROUP)], rows - ROW_GROUP
        if rows or not (dedup.kept or written):
            write(pa.concat_tables(pending) if pending else EVENT_SCHEMA.empty_table())
        if written is not None:
            written.result()
    _LOG.debug("%.2fs sorted and written", time.perf_counter() - start)
    dups = dedup.duplicates()
    _log_duplicates(dups, files, log)
    stats = _stats(per, dups)
    stats.n_users = users.n
    return stats


class _UserCount:
    """Distinct values of a sorted stream of user ids: the changes, plus the first."""

    def __init__(self) -> None:
        self.n, self.last = 0, None

    def add(self, users: np.ndarray) -> None:
        if len(users):
            self.n += int(np.count_nonzero(users[1:] != users[:-1])) + int(self.last is None or users[0] != self.last)
            self.last = users[-1]


class _Dedup:
    """Drops later exact copies from a stream sorted by (user, timestamp, input order).

    Copies (same user, ad, timestamp and action) lie in one run of equal (user, timestamp); within a run the
    first copy in input order is kept. A run may straddle two batches, so each batch's last run waits for the
    next batch (``push(None)`` flushes it)."""

    def __init__(self) -> None:
        self.carry: pa.Table | None = None
        self.found: list[dict[str, np.ndarray]] = []
        self.kept = 0

    def push(self, batch: pa.RecordBatch | None) -> pa.Table | None:
        parts = [t for t in (self.carry, None if batch is None else pa.Table.from_batches([batch])) if t is not None]
        if not parts:
            return None
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        u, t = table.column("user_id").to_numpy(), table.column("timestamp").to_numpy()
        starts = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (t[1:] != t[:-1])]) if len(u) else np.zeros(0, int)
        cut = len(u) if batch is None or not len(starts) else int(starts[-1])
        self.carry = None if cut == len(u) else table.slice(cut)
        done = table.slice(0, cut)
        keep = self._judge(done, starts[starts < cut], cut)
        out = done if keep is None else done.filter(pa.array(keep))
        self.kept += out.num_rows
        return out.select(["user_id", "ad_id", "timestamp", "action"])

    def _judge(self, done: pa.Table, starts: np.ndarray, n: int) -> np.ndarray | None:
        """The keep mask of ``done`` (None: keep all); copies found are recorded."""
        lengths = np.diff(np.r_[starts, n])
        if not len(lengths) or lengths.max() < 2:
            return None
        run = np.repeat(np.arange(len(lengths)), lengths)
        idx = np.flatnonzero(np.repeat(lengths > 1, lengths))  # rows of runs that could hold a copy
        a, x = done.column("ad_id").to_numpy()[idx], done.column("action").to_numpy()[idx]
        order = np.lexsort((idx, x, a, run[idx]))  # by run, ad, action, then input order
        pos, a, x, r = idx[order], a[order], x[order], run[idx][order]
        same = (r[1:] == r[:-1]) & (a[1:] == a[:-1]) & (x[1:] == x[:-1])
        if not same.any():
            return None
        first = pos[np.maximum.accumulate(np.where(np.r_[True, ~same], np.arange(len(pos)), 0))]
        dup, first = pos[1:][same], first[1:][same]
        line = done.column("_line").to_numpy()
        self.found.append({"order": done.column("_order").to_numpy()[dup], "file": done.column("_file").to_numpy()[dup],
                           "line": line[dup], "first": line[first], "ad": a[1:][same], "action": x[1:][same]})
        keep = np.ones(n, dtype=bool)
        keep[dup] = False
        return keep

    def duplicates(self) -> dict[str, np.ndarray]:
        """Every copy dropped, in input order."""
        keys = ("order", "file", "line", "first", "ad", "action")
        if not self.found:
            return {k: np.zeros(0, dtype=np.int64) for k in keys}
        found = {k: np.concatenate([f[k] for f in self.found]) for k in keys}
        order = np.argsort(found["order"], kind="stable")
        return {k: v[order] for k, v in found.items()}


def _typed(table: pa.Table) -> pa.Table:
    return pa.table([table.column(i).cast(f.type) for i, f in enumerate(EVENT_SCHEMA)], schema=EVENT_SCHEMA)


def _log_duplicates(dups: dict[str, np.ndarray], files: list[str], log: IssueLog) -> None:
    """One ``duplicate`` issue per later copy, in input order (counted in full, listed up to ``log.keep``)."""
    total = len(dups["line"])
    if not total:
        return
    room = max(1, log.keep - len(log.issues))
    for file_code, line, first in zip(*(dups[k][:room].tolist() for k in ("file", "line", "first")), strict=True):
        log.add(Issue(files[file_code], int(line), "event", "duplicate",
                      f"same user, ad, timestamp and action as line {int(first)}"))
    log.counts["duplicate"] += total - min(room, total)


def _stats(per: dict[str, np.ndarray], dups: dict[str, np.ndarray]) -> SortStats:
    """Events, actions, ads and their clicks: the (ad, action) counts of every accepted row less the copies."""
    stats = SortStats()
    ad = np.concatenate([np.asarray(per["ad_id"], dtype=np.int64), dups["ad"].astype(np.int64)])
    action = np.concatenate([np.asarray(per["action"], dtype=np.int64), dups["action"].astype(np.int64)])
    n = np.concatenate([np.asarray(per["n"], dtype=np.int64), -np.ones(len(dups["ad"]), dtype=np.int64)])
    stats.n_events = int(n.sum())
    np.add.at(stats.actions, action, n)
    positive = np.isin(action, (ACTION_CODE["click"], ACTION_CODE["conversion"]))
    ads, inverse = np.unique(ad, return_inverse=True)
    clicks = np.bincount(inverse.reshape(-1), weights=n * positive, minlength=len(ads)).astype(np.int64)
    stats.ads = ads
    stats.clicks = {a: c for a, c in zip(ads.tolist(), clicks.tolist(), strict=True) if c}
    return stats
