"""The import's fast path for plain CSV/TSV events: DuckDB reads and validates, Python judges the rest.

DuckDB parses the file in parallel (every field as text) and classifies each row in SQL: a row is
*clean* when every field has the common shape whose meaning is beyond doubt (an integer id of at
most 18 digits or a plain string id, an integer timestamp, a known action spelling, an ad of the
catalogue). Every other row (*suspect*: empty fields, floats, odd whitespace, bad values, unknown
ads...) goes, in input order, through the same Python checks as every other format
(:func:`genads.data.checks.check_events`), which accept it or report it with file, line and field.
A clean row is therefore exactly a row those checks accept, with the same values: the output and
the issues are the same as the general path's, only faster.

The path applies to a delimited file (optionally gzipped) without quote characters and without blank
lines (one record per line, so row ``k`` is line ``k + 2``); DuckDB must parse it strictly. When
it does not (quotes, gzip, a row with the wrong number of fields), :func:`scan_events` returns
None before anything is logged and the importer takes the general path.
"""

from __future__ import annotations

import functools
import gzip
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from genads.data.checks import check_events
from genads.data.loaders.tabular import TabularSource, _is_parquet
from genads.data.schema import ACTION_CODE
from genads.data.validate import ACTION_ALIASES, IssueLog
from genads.data.vocab import MAX_ID, IdVocabulary

_LOG = logging.getLogger(__name__)
SUSPECT_CHUNK = 100_000
"""Suspect rows handed to the Python checks at a time."""
_STR_ID = r"[A-Za-z0-9_.:@#/=-]{1,200}"  # a plain string id (no spaces, quotes or '+'), unless numeric
_FLOAT = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"  # = genads.data.validate._FLOAT
_PADDED = r"(\+[0-9]{1,200}|0[0-9]{1,200})"  # 0042, +123: string ids kept as written (genads.data.vocab._PADDED)
_ACTION_TEXT = r"[A-Za-z0-9_ -]{1,64}"  # ASCII: SQL lower() and Python str.lower() agree


_BREAKS = (b'"', b"\n\n", b"\n\r\n", b"\r\r")
"""Bytes that end the fast path: a quote (the csv module's rules) or a blank line (lines != rows)."""


def eligible(source: object) -> bool:
    """True for a TabularSource whose events file the fast path can read (see the module doc).

    A plain file is read once, block by block (:func:`_plain_file`): a quote rules it out, and so does a
    blank line with a carriage return; other blank lines are found by :func:`scan_events` comparing
    DuckDB's row count with the line count of the same pass."""
    if not isinstance(source, TabularSource) or _is_parquet(source.events):
        return False
    path = source.events
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if path.suffix == ".gz":
        return _plain_gzip(path)
    return _plain_file(path).eligible


@dataclass(frozen=True)
class _PlainFile:
    eligible: bool
    lines: int
    """Lines (a last line without a newline counts); 0 when not eligible (the pass stopped early)."""


def _plain_file(path: Path, block: int = 1 << 24) -> _PlainFile:
    """One pass over a plain file into one reused buffer (an mmap's pages would count in the import's resident
    memory: 3.5 GB at 100M events): no quote, no blank line that involves a carriage return, a non-blank
    header; and the line count, with numpy. Cached by path, size and modification time."""
    st = path.stat()
    return _plain_file_cached(str(path), st.st_size, st.st_mtime_ns, block)


@functools.lru_cache(maxsize=4)
def _plain_file_cached(path: str, size: int, mtime_ns: int, block: int) -> _PlainFile:
    buf = bytearray(block)
    lines, last, prev, header = 0, 10, b"", None
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if buf.find(b'"', 0, n) >= 0:
                return _PlainFile(False, 0)
            carriage = buf.find(b"\r", 0, n) >= 0 or b"\r" in prev  # the patterns with a CR, also across blocks
            if carriage and any(pattern in prev + bytes(buf[:n]) for pattern in _BREAKS):
                return _PlainFile(False, 0)
            prev = (prev + bytes(buf[max(0, n - 2):n]))[-2:]
            if header is None:
                header = bytes(buf[:n]).split(b"\n", 1)[0]
            lines += int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=n) == 10))
            last = buf[n - 1]
    ok = bool((header or b"").decode("utf-8", errors="replace").strip())
    return _PlainFile(ok, lines + int(last != 10) if ok else 0)


def _plain_gzip(path: Path, block: int = 1 << 24) -> bool:
    """The same test on a gzipped file, decompressed block by block (a pattern may straddle two blocks)."""
    tail, first = b"", None
    with gzip.open(path, "rb") as f:
        while chunk := f.read(block):
            text = tail + chunk
            if any(pattern in text for pattern in _BREAKS):
                return False
            first = text if first is None else first
            tail = text[-2:]
    header = (first or b"").split(b"\n", 1)[0]
    return bool(header.decode("utf-8", errors="replace").strip())


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Execute one statement, logging its time at DEBUG level."""
    start = time.perf_counter()
    con.execute(sql)
    _LOG.debug("%.2fs %s", time.perf_counter() - start, " ".join(sql.split())[:80])


def _canonical(value: str, text: str) -> str:
    """SQL: the integer ``value`` parsed from ``text`` prints back as ``text`` exactly."""
    return f"({value} IS NOT NULL AND CAST({value} AS VARCHAR) = {text})"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _header(source: TabularSource, path: Path, delim: str) -> tuple[str, dict[str, str], str]:
    """(read_csv's all-VARCHAR column spec, canonical field -> column name, the action column or constant)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        header = [h.strip() for h in f.readline().rstrip("\r\n").split(delim)]
    missing = [src for src in source.event_map.values() if src not in header]
    if missing:
        raise ValueError(f"{path}:1: header has no column {missing[0]!r} (columns: {', '.join(header)})")
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    pick = {canon: f"c{header.index(src)}" for canon, src in source.event_map.items()}
    action = f"c{header.index(source.event_map['action'])}" if source.has_action else _sql_text(source.default_action)
    return columns, pick, action


def _load_known_ads(con: duckdb.DuckDBPyConnection, known_ads: np.ndarray | None, vocab: IdVocabulary | None) -> bool:
    """Tables ``known_ads`` (integer ids of the catalogue) and ``catalogue_ads`` (its string ids -> indices);
    True when events must be joined to the latter (a catalogue with string ids)."""
    con.execute("CREATE TABLE known_ads (ad_id BIGINT)")
    con.execute("CREATE TABLE catalogue_ads (txt VARCHAR, idx BIGINT)")
    if known_ads is None:
        return False
    con.register("known_ads_arrow", pa.table({"ad_id": pa.array(known_ads, pa.int64())}))
    con.execute("INSERT INTO known_ads SELECT ad_id FROM known_ads_arrow")
    con.unregister("known_ads_arrow")
    if vocab is None or not vocab.size("ad"):
        return False
    labels = vocab.labels("ad", MAX_ID + np.arange(vocab.size("ad")))
    con.register("cat_arrow", pa.table({"txt": pa.array(labels, pa.string()),
                                        "idx": pa.array(MAX_ID + np.arange(len(labels)), pa.int64())}))
    con.execute("INSERT INTO catalogue_ads SELECT txt, idx FROM cat_arrow")
    con.unregister("cat_arrow")
    return True


def _id_kind(col: str, strings: bool) -> str:
    """SQL: 1 for an integer id (canonical decimal below 10**18 < MAX_ID), 2 for a string id, 0 for a suspect."""
    text = (f"WHEN {strings} AND regexp_full_match({col}, '{_STR_ID}') AND NOT regexp_full_match({col}, "
            f"'{_FLOAT}') THEN 2 WHEN {strings} AND regexp_full_match({col}, '{_PADDED}') THEN 2")
    return f"CASE WHEN {_canonical(col + 'v', col)} AND {col}v >= 0 AND {col}v < {10**18} THEN 1 {text} ELSE 0 END"


def _action_sql(action_map: dict[str, str] | None) -> str:
    """SQL: the action code of ``x``, exact spellings first, then lower case (ASCII only: SQL and Python agree)."""
    aliases = {**ACTION_ALIASES, **{k.lower(): v for k, v in (action_map or {}).items()}}
    whens = " ".join(f"WHEN {_sql_text(k)} THEN {ACTION_CODE[v]}" for k, v in sorted(aliases.items()))
    return (f"CASE x {whens} ELSE CASE WHEN regexp_full_match(x, '{_ACTION_TEXT}') THEN CASE lower(x) {whens} END "
            "END END")


def _typed_sql(pick: dict[str, str], action: str, strings: bool, known: bool, string_ads: bool,
               action_map: dict[str, str] | None, scan: str) -> str:
    """SQL: table ``typed_t`` from ``scan``: typed values for the clean rows, the raw text only for the suspect
    ones. Integers are clean when the text is the canonical decimal of the parsed value (no sign, space or
    leading zero): exactly what the Python checks read the same way.

    ``scan`` is the CSV reader itself (the table's rowid is then the file order) or, when string ads are joined
    to the catalogue (a join may reorder rows), the materialised table ``raw`` whose rowid is kept as ``_line``."""
    if not known:
        ad_ok, ad_value = "ak > 0", "CASE WHEN ak = 1 THEN av END"
    else:
        ad_ok = "((ak = 1 AND av IN (SELECT ad_id FROM known_ads)) OR (ak = 2 AND cat_idx IS NOT NULL))"
        ad_value = "CASE WHEN ak = 1 THEN av ELSE cat_idx END"
    join = f"LEFT JOIN catalogue_ads c ON c.txt = {pick['ad_id']}" if string_ads else ""
    line = "_line, " if string_ads else ""
    return f"""
            CREATE TABLE typed_t AS
            SELECT {line}clean,
                   CASE WHEN clean AND uk = 1 THEN uv END AS user_id,
                   CASE WHEN clean AND uk = 2 THEN u END AS u_txt,
                   CASE WHEN clean THEN {ad_value} END AS ad_id,
                   CASE WHEN clean AND ak = 2 AND {not known} THEN a END AS a_txt,
                   CASE WHEN clean THEN tv END AS timestamp,
                   CAST(act AS TINYINT) AS action,
                   CASE WHEN NOT clean THEN u END AS u, CASE WHEN NOT clean THEN a END AS a,
                   CASE WHEN NOT clean THEN t END AS t, CASE WHEN NOT clean THEN x END AS x
            FROM (SELECT *, coalesce(uk > 0 AND tk AND act IS NOT NULL AND {ad_ok}, false) AS clean
                  FROM (SELECT {'rid + 2 AS _line, ' if string_ads else ''}u, a, t, x, uv, av, tv, cat_idx,
                               {_id_kind('u', strings)} AS uk, {_id_kind('a', strings)} AS ak,
                               {_canonical('tv', 't')} AND abs(tv) < {10**17} AS tk,
                               {_action_sql(action_map)} AS act
                        FROM (SELECT {'raw.rowid AS rid, ' if string_ads else ''}{pick['user_id']} AS u, {pick['ad_id']} AS a,
                                     {pick['timestamp']} AS t, {action} AS x,
                                     TRY_CAST({pick['user_id']} AS BIGINT) AS uv,
                                     TRY_CAST({pick['ad_id']} AS BIGINT) AS av,
                                     TRY_CAST({pick['timestamp']} AS BIGINT) AS tv,
                                     {'c.idx' if string_ads else 'NULL::BIGINT'} AS cat_idx
                              FROM {scan} {join})))"""


def scan_events(
    con: duckdb.DuckDBPyConnection,
    source: TabularSource,
    known_ads: np.ndarray | None,
    log: IssueLog,
    vocab: IdVocabulary | None,
    action_map: dict[str, str] | None,
) -> str | None:
    """Create the view ``accepted`` (user_id, ad_id, timestamp, action, _file, _line, _order) of the events file.

    Returns the table's name, or None (nothing logged, nothing kept) when DuckDB cannot parse the file
    strictly as one record per line. Issues of rejected rows go to ``log`` in input order; string ids
    of accepted rows enter ``vocab`` in input order, as on the general path.
    """
    path = source.events
    delim = source.delimiter(path)
    columns, pick, action = _header(source, path, delim)
    string_ads = _load_known_ads(con, known_ads, vocab)
    reader = (f"read_csv({_sql_text(str(path))}, delim = {_sql_text(delim)}, header = true, quote = '\"', "
              f"columns = {columns}, auto_detect = false, strict_mode = true, null_padding = false)")
    typed = _typed_sql(pick, action, vocab is not None, known_ads is not None, string_ads, action_map,
                       "raw" if string_ads else reader)
    try:
        if string_ads:  # the file as text first: a table's rowid is the insertion (file) order
            _run(con, f"CREATE TABLE raw AS SELECT {', '.join(dict.fromkeys(pick.values()))} FROM {reader}")
        _run(con, typed)  # without the join, straight from the file: typed_t's rowid is the file order
    except duckdb.Error as e:
        _LOG.debug("fast path declined: %s", e)
        con.execute("DROP TABLE IF EXISTS raw")
        con.execute("DROP TABLE IF EXISTS typed_t")
        return None
    con.execute("DROP TABLE IF EXISTS raw")
    rows = con.execute("SELECT count(*) FROM typed_t").fetchone()[0]
    lines = _plain_file(path).lines if path.suffix != ".gz" else rows + 1  # gzip: eligible() ruled them out
    if rows + 1 != lines:  # DuckDB skips blank lines: row k would no longer be line k + 2
        _LOG.debug("fast path declined: %d rows in %d lines", rows, lines)
        con.execute("DROP TABLE typed_t")
        return None
    con.execute(f"CREATE VIEW typed AS SELECT {'' if string_ads else 'rowid + 2 AS _line, '}* FROM typed_t")
    # accepted rows are never copied: the clean ones stay in typed_t, the judged suspects go to a small table
    con.execute("CREATE TABLE judged (user_id BIGINT, u_txt VARCHAR, ad_id BIGINT, a_txt VARCHAR, timestamp BIGINT, "
                "action TINYINT, _file INTEGER, _line BIGINT)")
    _judge_suspects(con, "NOT clean", source, known_ads, log, vocab, action_map)
    con.execute("""
        CREATE VIEW accepted_text AS
        SELECT user_id, u_txt, ad_id, a_txt, timestamp, action, 0 AS _file, _line FROM typed WHERE clean
        UNION ALL SELECT * FROM judged""")
    joins = _assign_indices(con, vocab, known_ads is None) if vocab is not None else {}
    user = "coalesce(e.user_id, u.idx)" if "user" in joins else "e.user_id"
    ad = "coalesce(e.ad_id, d.idx)" if "ad" in joins else "e.ad_id"
    con.execute(f"""
        CREATE VIEW accepted AS
        SELECT {user} AS user_id, {ad} AS ad_id, e.timestamp, e.action, e._file, e._line, e._line AS _order
        FROM accepted_text e {joins.get('user', '')} {joins.get('ad', '')}""")
    return "accepted"


def _judge_suspects(con, where: str, source: TabularSource, known_ads, log: IssueLog, vocab, action_map) -> None:
    """Suspect rows, in input order, through check_events; the rows it accepts go to ``judged`` (ids as text)."""
    name = str(source.events)
    reader = con.cursor()  # reads the suspects while ``con`` inserts the accepted ones
    result = reader.sql(f"SELECT _line, u, a, t, x FROM typed WHERE {where} ORDER BY _line")
    scratch = IdVocabulary.from_frame(vocab.to_frame()) if vocab is not None else None  # the catalogue's ads
    try:
        for batch in result.to_arrow_reader(SUSPECT_CHUNK):
            raw = batch.to_pandas()
            frame = pd.DataFrame({"user_id": raw["u"].astype(object), "ad_id": raw["a"].astype(object),
                                  "timestamp": raw["t"].astype(object), "action": raw["x"].astype(object)})
            frame = frame.where(frame.notna(), None)
            frame["_file"] = name
            frame["_line"] = raw["_line"].to_numpy(dtype=np.int64)
            good = check_events(frame, source.field_names, known_ads, log, None, scratch, action_map)
            if not len(good):
                continue
            users, ads = good["user_id"].to_numpy(), good["ad_id"].to_numpy()
            u_txt = [scratch.label("user", u) if u >= MAX_ID else None for u in users.tolist()] if scratch else None
            a_txt = ([scratch.label("ad", a) if a >= MAX_ID else None for a in ads.tolist()]
                     if scratch and known_ads is None else None)
            n = len(good)
            table = pa.table({
                "user_id": pa.array(np.where(users >= MAX_ID, 0, users) if scratch else users, pa.int64(),
                                    mask=(users >= MAX_ID) if scratch else None),
                "u_txt": pa.array(u_txt if u_txt is not None else [None] * n, pa.string()),
                "ad_id": pa.array(ads, pa.int64(), mask=(ads >= MAX_ID) if a_txt is not None else None),
                "a_txt": pa.array(a_txt if a_txt is not None else [None] * n, pa.string()),
                "timestamp": pa.array(good["timestamp"].to_numpy(), pa.int64()),
                "action": pa.array(good["action"].to_numpy(), pa.int8()),
                "_file": pa.array(np.zeros(n, np.int32)), "_line": pa.array(good["_line"].to_numpy(), pa.int64()),
            })
            con.register("judged_arrow", table)
            con.execute("INSERT INTO judged SELECT * FROM judged_arrow")
            con.unregister("judged_arrow")
    finally:
        reader.close()


def _assign_indices(con, vocab: IdVocabulary, ads_too: bool) -> dict[str, str]:
    """String ids of accepted rows -> vocabulary indices, in the order of their first accepted line; returns the
    LEFT JOIN (by kind) that puts the indices into ``accepted`` (none for a kind without string ids)."""
    joins = {}
    for kind, txt, alias in (("user", "u_txt", "u"), ("ad", "a_txt", "d"))[: 2 if ads_too else 1]:
        order = con.execute(f"SELECT {txt} FROM accepted_text WHERE {txt} IS NOT NULL "
                            f"GROUP BY {txt} ORDER BY min(_line)").fetchnumpy()[txt]
        if not len(order):
            continue
        texts = [str(s) for s in order.tolist()]
        index = vocab.encode(kind, texts)
        con.register("ids_arrow", pa.table({"txt": pa.array(texts, pa.string()), "idx": pa.array(index, pa.int64())}))
        con.execute(f"CREATE TABLE {kind}_ids AS SELECT * FROM ids_arrow")
        con.unregister("ids_arrow")
        joins[kind] = f"LEFT JOIN {kind}_ids {alias} ON e.{txt} = {alias}.txt"
    return joins
