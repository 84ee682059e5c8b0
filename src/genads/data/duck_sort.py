"""The import's sort stage on DuckDB: accepted events -> events.parquet, duplicates, counts.

Input: a DuckDB table (or view) of validated events with columns ``user_id, ad_id, timestamp,
action, _file, _line, _order`` (``_order``: input order, unique). DuckDB groups exact duplicates
(same user, ad, timestamp and action; the first in input order is kept), sorts by (user,
timestamp, input order) out of core (spilling to ``temp_directory`` beyond ``memory_limit``) and
streams the result to Parquet. The Parquet file is written by pyarrow in fixed row groups of
``ROW_GROUP`` rows from a total order, so the same input gives the same bytes whatever DuckDB's
thread scheduling.
"""

from __future__ import annotations

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
    """Deduplicate and sort ``table`` into ``out`` (EVENT_SCHEMA); duplicates go to ``log`` (never stop)."""
    start = time.perf_counter()
    con.execute(f"""
        CREATE TABLE dedup AS
        SELECT user_id, ad_id, timestamp, action, min(_order) AS _order, count(*) AS copies,
               arg_min(_line, _order) AS first_line
        FROM {table} GROUP BY user_id, ad_id, timestamp, action""")
    _LOG.debug("%.2fs dedup", time.perf_counter() - start)
    _log_duplicates(con, table, files, log)
    stats = _stats(con)
    _LOG.debug("%.2fs duplicates and counts", time.perf_counter() - start)
    reader = con.sql("SELECT user_id, ad_id, timestamp, action FROM dedup ORDER BY user_id, timestamp, _order")\
        .to_arrow_reader(ROW_GROUP)
    pending: list[pa.RecordBatch] = []
    rows, last_user = 0, None
    # one writer thread: pyarrow encodes a row group (without the GIL) while DuckDB sorts the next batches
    with pq.ParquetWriter(out, EVENT_SCHEMA) as writer, ThreadPoolExecutor(1) as pool:
        written: Future | None = None

        def write(group: pa.Table) -> None:
            nonlocal written
            if written is not None:
                written.result()
            written = pool.submit(writer.write_table, _typed(group), row_group_size=ROW_GROUP)

        for batch in reader:
            users = batch.column(0).to_numpy()
            if len(users):  # distinct users of a sorted stream: the changes, plus the first
                stats.n_users += int(np.count_nonzero(users[1:] != users[:-1])) + int(users[0] != last_user)
                last_user = users[-1]
            pending.append(batch)
            rows += batch.num_rows
            while rows >= ROW_GROUP:
                table_ = pa.Table.from_batches(pending)
                write(table_.slice(0, ROW_GROUP))
                rest = table_.slice(ROW_GROUP)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows or stats.n_events == 0:
            write(pa.Table.from_batches(pending) if pending else EVENT_SCHEMA.empty_table())
        if written is not None:
            written.result()
    con.execute("DROP TABLE dedup")
    _LOG.debug("%.2fs sorted and written", time.perf_counter() - start)
    return stats


def _typed(table: pa.Table) -> pa.Table:
    return pa.table([table.column(i).cast(f.type) for i, f in enumerate(EVENT_SCHEMA)], schema=EVENT_SCHEMA)


def _log_duplicates(con: duckdb.DuckDBPyConnection, table: str, files: list[str], log: IssueLog) -> None:
    """One ``duplicate`` issue per later copy, in input order (counted in full, listed up to ``log.keep``)."""
    total = con.execute("SELECT coalesce(sum(copies - 1), 0) FROM dedup WHERE copies > 1").fetchone()[0]
    if not total:
        return
    room = max(1, log.keep - len(log.issues))
    dups = con.execute(f"""
        SELECT e._file, e._line, d.first_line
        FROM {table} e JOIN (SELECT * FROM dedup WHERE copies > 1) d
          USING (user_id, ad_id, timestamp, action)
        WHERE e._order <> d._order ORDER BY e._order LIMIT {room}""").fetchall()
    for file_code, line, first in dups:
        log.add(Issue(files[file_code], int(line), "event", "duplicate",
                      f"same user, ad, timestamp and action as line {int(first)}"))
    log.counts["duplicate"] += int(total) - len(dups)


def _stats(con: duckdb.DuckDBPyConnection) -> SortStats:
    """Events, actions, ads and their clicks from one (ad, action) aggregate; users are counted while writing."""
    stats = SortStats()
    per = con.execute("SELECT ad_id, action, count(*) AS n FROM dedup GROUP BY ad_id, action").fetchnumpy()
    ad, action, n = (np.asarray(per[k], dtype=np.int64) for k in ("ad_id", "action", "n"))
    stats.n_events = int(n.sum())
    np.add.at(stats.actions, action, n)
    positive = np.isin(action, (ACTION_CODE["click"], ACTION_CODE["conversion"]))
    ads, inverse = np.unique(ad, return_inverse=True)
    clicks = np.bincount(inverse.reshape(-1), weights=n * positive, minlength=len(ads)).astype(np.int64)
    stats.ads = ads
    stats.clicks = {a: c for a, c in zip(ads.tolist(), clicks.tolist(), strict=True) if c}
    return stats
