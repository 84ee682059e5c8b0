"""The served log: every slate the service answered and every event it recorded, as JSON lines.

This closes the loop serve -> log -> retrain: ``genads data import LOG --format served-log`` reads the
file back as training data (impressions with their positions, clicks, conversions). One line a record::

    {"type": "slate", "ts": 1733200000.12, "request_id": "9f…", "user_id": "u17", "model_version": "3a…",
     "mechanism": "gsp", "ads": ["ad-2f", "ad-11"], "ad_index": [4611…, 4611…], "positions": [1, 2],
     "prices": [0.41, 0.2], "history": false}
    {"type": "event", "ts": 1733200003.5, "request_id": "9f…", "event": "click", "ad_id": "ad-2f",
     "ad_index": 4611…, "charged": 0.41}

Ids are the user's own (``genads.data.vocab``); ``ad_index`` is the service's integer id beside them.
A slate asked for by a ``history`` instead of a ``user_id`` has ``user_id`` null (it cannot be retrained on).
Each record is one ``write`` on a file opened with O_APPEND, so several worker processes can share
the file: the kernel appends whole records (lines are far below the size where writes may split).
Only recorded events are logged (a duplicate or refused event is not); an event recorded as invalid
traffic carries ``"invalid": REASON``, and a click refunded later is followed by a ``refund`` record
(``request_id``, ``ad_id``, ``ad_index``, ``amount``, ``reason``: a slot has one click). The importer leaves both out of the
training data and counts them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from genads.data.vocab import IdVocabulary

SERVED_LOG = "served.jsonl"


class ServedLog:
    """Appends slate and event records to ``path`` (created 0600 if missing: it names users, like the ledger)."""

    def __init__(self, path: str | Path, model_version: str, vocab: IdVocabulary | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.model_version = model_version
        self.vocab = vocab or IdVocabulary()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def _write(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, line)

    def slate(self, request_id: str, user_id: int | str | None, placements: list, mechanism: str,
              from_history: bool = False, ts: float | None = None) -> None:
        """One answered request (``placements``: genads.serve.engine.Placement, in position order)."""
        self._write(self._slate(request_id, user_id, placements, mechanism, from_history, ts))

    def slates(self, answered: list[tuple[str, int | str | None, list, str, bool]]) -> None:
        """Several answered requests ((request_id, user_id, placements, mechanism, from_history) each), in one
        write (a micro-batch's: one system call, the records still whole lines)."""
        if not answered:
            return
        ts = time.time()
        data = "".join(json.dumps(self._slate(*a, ts), separators=(",", ":"), ensure_ascii=False) + "\n"
                       for a in answered).encode("utf-8")
        with self._lock:
            os.write(self._fd, data)

    def _slate(self, request_id: str, user_id: int | str | None, placements: list, mechanism: str,
               from_history: bool = False, ts: float | None = None) -> dict:
        return {"type": "slate", "ts": round(time.time() if ts is None else ts, 3), "request_id": request_id,
                "user_id": user_id, "model_version": self.model_version, "mechanism": mechanism,
                "ads": [self.vocab.label("ad", p.ad_id) for p in placements],
                "ad_index": [int(p.ad_id) for p in placements],
                "positions": [int(p.position) for p in placements],
                "prices": [round(float(p.price), 6) for p in placements], "history": bool(from_history)}

    def event(self, request_id: str, event: str, ad_id: int, charged: float, ts: float | None = None,
              invalid: str | None = None) -> None:
        """One recorded impression, click or conversion of a served slot (``invalid``: why it is invalid traffic)."""
        record = {"type": "event", "ts": round(time.time() if ts is None else ts, 3), "request_id": request_id,
                  "event": event, "ad_id": self.vocab.label("ad", ad_id), "ad_index": int(ad_id),
                  "charged": round(float(charged), 6)}
        if invalid is not None:
            record["invalid"] = invalid
        self._write(record)

    def refund(self, request_id: str, ad_id: int, amount: float, reason: str, ts: float | None = None) -> None:
        """The slot's click, charged earlier, refunded as invalid traffic (the importer drops that click)."""
        self._write({"type": "refund", "ts": round(time.time() if ts is None else ts, 3), "request_id": request_id,
                     "ad_id": self.vocab.label("ad", ad_id), "ad_index": int(ad_id), "amount": round(float(amount), 6),
                     "reason": reason})

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
