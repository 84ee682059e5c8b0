"""Import: any Source -> a validated dataset folder (catalogue, events, meta), sorted on DuckDB.

Two ways in, one way out:

* **fast path** (plain CSV/TSV events, see genads.data.duck_scan): DuckDB reads the file in
  parallel and validates the common row shapes in SQL; the other rows go through the Python checks;
* **general path** (every format): the format's loader streams chunks, each is validated
  (genads.data.checks) and its good rows are appended to a Parquet spool file.

Either way DuckDB then drops exact duplicates (the first in input order is kept), sorts by (user,
timestamp, input order) out of core and the result is written as events.parquet
(genads.data.duck_sort). Memory is bounded by DuckDB's ``memory_limit`` (it spills to disk), the
chunk size and the catalogue, not by the input. The same input gives the same bytes. Everything is
written to a temporary folder beside the target and renamed into place at the end: a failed import
(``--on-error stop`` on a bad row) leaves any existing dataset untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from genads.data import bids, duck_scan, duck_sort
from genads.data.checks import check_catalogue, check_events
from genads.data.dataset import default_mode, replace_dir, write_meta
from genads.data.schema import (
    ACTIONS,
    CATALOGUE_FILE,
    CATALOGUE_SCHEMA,
    EVENTS_FILE,
    META_FILE,
    REJECTED_FILE,
    USERS_FILE,
)
from genads.data.source import Source
from genads.data.validate import IssueLog, OnError, parse_ids
from genads.data.vocab import IdVocabulary

_SPOOL_SCHEMA = pa.schema([
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
    engine: str = "general"
    """"fast" (DuckDB read and validated the CSV) or "general" (the format's loader and Python checks)."""


def _spool(
    source: Source, known_ads: np.ndarray | None, log: IssueLog, work: Path, chunk_rows: int, progress: bool,
    vocab: IdVocabulary | None = None, action_map: dict[str, str] | None = None,
) -> tuple[Path | None, list[str]]:
    """The general path: validate the source's chunks and append the good rows to one Parquet spool file."""
    path = work / "spool.parquet"
    writer: pq.ParquetWriter | None = None
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
                }, schema=_SPOOL_SCHEMA)
                order += len(good)
                if writer is None:
                    writer = pq.ParquetWriter(path, _SPOOL_SCHEMA)
                writer.write_table(table)
            bar.update(chunk.bytes_read)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return (path if writer is not None else None), list(files)


def _accepted_events(
    con, source: Source, known: np.ndarray | None, log: IssueLog, work: Path, chunk_rows: int, progress: bool,
    vocab: IdVocabulary | None, action_map: dict[str, str] | None, fast: bool,
) -> tuple[str, list[str], str]:
    """The validated events as a DuckDB table: (table name, file names by code, engine used)."""
    if fast and duck_scan.eligible(source):
        bar = tqdm(total=source.size_hint(), unit="B", unit_scale=True, desc="import events (DuckDB)",
                   disable=not progress)
        table = duck_scan.scan_events(con, source, known, log, vocab, action_map)
        bar.update(source.size_hint())
        bar.close()
        if table is not None:
            return table, [str(source.events)], "fast"
    spool, files = _spool(source, known, log, work, chunk_rows, progress, vocab, action_map)
    if spool is None:
        con.execute("CREATE TABLE spooled (user_id BIGINT, ad_id BIGINT, timestamp BIGINT, action TINYINT, "
                    "_file INTEGER, _line BIGINT, _order BIGINT)")
    else:
        con.execute(f"CREATE VIEW spooled AS SELECT * FROM read_parquet('{spool.as_posix()}')")
    return "spooled", files, "general"


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


def _user_profiles(source, vocab: IdVocabulary | None) -> pd.DataFrame | None:
    """The source's user profiles (TencentGR ``user_feat``) keyed by the dataset's user index, sorted; users
    whose id is neither an integer id nor a user of the events are left out (no index to key them by)."""
    raw = source.users() if hasattr(source, "users") else None
    if raw is None or raw.empty:
        return None
    ids, ok = parse_ids(raw["user_id"].astype(object), vocab is not None)
    if vocab is not None:
        found = vocab.lookup("user", [str(v).strip() for v in raw["user_id"].tolist()])
        text = ~ok & (found >= 0)
        ids[text], ok = found[text], ok | text
    out = pd.DataFrame({"user_id": ids[ok], "features": [list(f) for f in raw["features"][ok]]})
    return out.drop_duplicates("user_id", keep="last").sort_values("user_id", kind="stable").reset_index(drop=True)


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
    fast: bool = True,
    duck: duck_sort.DuckConfig | None = None,
) -> ImportReport:
    """Validate ``source`` and write it as a dataset folder at ``out`` (atomically replaced).

    ``action_map`` names the input's own actions (``{"purchase": "conversion"}``). With ``string_ids``
    (the default) ids that are not integers (``u1``, ``ad-8f3a``) are kept in the dataset's id vocabulary
    (``ids.parquet``, see genads.data.vocab); without it they are rejected as bad_id. ``fast=False`` takes
    the general path even for a plain CSV (the output is the same; tests compare the two).

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
        work = tmp / ".work"
        work.mkdir()
        con = duck_sort.connect(work, duck or duck_sort.DuckConfig(), progress)
        try:
            name, files, engine = _accepted_events(con, source, known, log, work, chunk_rows, progress, vocab,
                                                   action_map, fast)
            stats = duck_sort.sort_events(con, name, files, tmp / EVENTS_FILE, log)
        finally:
            con.close()
            shutil.rmtree(work, ignore_errors=True)
        if stats.n_events == 0:  # a header-only file, or every row rejected: no dataset, and the old one stays
            where = f"; first: {log.issues[0]}" if log.issues else ""
            name = getattr(source, "events", None) or f"the {source.format} input"
            raise ValueError(f"{name}: no event was accepted ({log.summary()}{where}); nothing written"
                             + (f", {out} left as it was" if out.exists() else ""))
        if cat is None:
            cat = _bare_catalogue(stats.ads)
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
        profiles = _user_profiles(source, vocab)
        if profiles is not None:
            pq.write_table(pa.Table.from_pandas(profiles, preserve_index=False), tmp / USERS_FILE)
            meta["user_profiles"] = len(profiles)
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
    return ImportReport(out, table.num_rows, stats.n_users, stats.n_events, log, meta, engine)

