"""The embedded ledger backend: SQLite in WAL mode (the default ``state/ledger.sqlite``)."""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from genads.serve.ledger import SQLLedger


class SQLiteLedger(SQLLedger):
    """The embedded ledger: one SQLite file in WAL mode, a connection per thread.

    ``synchronous=FULL`` fsyncs every commit, so an accepted event survives a crash of the
    machine, not only of the process.
    """

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # a new file is never world-readable
        for part in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            if part.exists():
                part.chmod(0o600)  # and files written before this rule are closed up
        self.synchronous = synchronous
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        self._init_schema()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.create_function("FLOOR", 1, math.floor, deterministic=True)  # SQLite builds without math functions
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, write: bool = True):
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # writers take the lock up front: no interleaving
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
