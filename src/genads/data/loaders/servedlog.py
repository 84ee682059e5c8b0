"""The service's served log (``genads serve`` -> state/served.jsonl) read back as training data.

Slate records give each request's user and the position of each ad; event records (impression,
click, conversion, as the client reported them) become events of that user on that ad, at the
event's time. Slates asked for by a history (no user) cannot be retrained on: their events are
counted in meta.json (``source.events_without_user``), not imported. Impressions and clicks per
position (the position-bias curve a reward model needs) go to meta.json too (``source.positions``).

A served log is what a live service wrote, so it is read forgivingly (``genads data import`` skips and
counts bad lines by default for this format): an event whose slate is not in the file (the log was
rotated after the slate) is counted (``source.events_without_slate``), not an error; events the service
recorded as invalid traffic (``"invalid": REASON``) and clicks refunded later (``refund`` records) are
left out of the training data and counted (``source.invalid_events``, ``source.refunded_clicks``).

With ``base`` (a dataset folder, normally the one the served model was trained on) the import
starts from that dataset: its catalogue (money and advertisers included) and its events come
first, then the log's, so the new dataset is the old one plus what was served since. Ids are the
user's own on both sides; importing the base catalogue and events in their stored order gives
every string id the same index as in the base dataset (genads.data.vocab), so a model trained on
the base can continue on the result (``genads train --init``) with the same SIDs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from genads.data.loaders.text import file_size
from genads.data.schema import ACTIONS, CATALOGUE_FILE, EVENTS_FILE
from genads.data.source import RAW_CATALOGUE_COLUMNS, EventChunk, RawCatalogue
from genads.data.validate import Issue
from genads.data.vocab import IdVocabulary

EVENT_TYPES = ("impression", "click", "conversion")


class ServedLogSource:
    format = "served-log"

    def __init__(self, log: str | Path, base: str | Path | None = None) -> None:
        self.log = Path(log)
        if not self.log.is_file():
            raise FileNotFoundError(f"{self.log} not found: `genads serve` writes RUN_DIR/state/served.jsonl")
        self.base = Path(base) if base is not None else None
        if self.base is not None:
            for name in (CATALOGUE_FILE, EVENTS_FILE):
                if not (self.base / name).is_file():
                    raise FileNotFoundError(f"{self.base / name} not found: --items for served-log takes the "
                                            "dataset folder the served model was trained on")
        self.vocab = IdVocabulary.load(self.base) if self.base is not None else IdVocabulary()
        self.field_names = {"user_id": "user_id (slate)", "ad_id": "ad_id", "timestamp": "ts", "action": "event"}
        self.positions: dict[int, Counter] = {}
        self.notes = {"files": [str(self.log)] + ([str(self.base)] if self.base else []),
                      "timestamps": "seconds since the epoch", "base": str(self.base) if self.base else None,
                      "events_without_user": 0, "events_without_slate": 0, "invalid_events": 0, "refunds": 0,
                      "refunded_clicks": 0, "positions": {}, "slates": 0, "model_versions": []}

    def size_hint(self) -> int:
        base = file_size(self.base / EVENTS_FILE) if self.base is not None else 0
        return file_size(self.log) + base

    def catalogue(self) -> RawCatalogue | None:
        if self.base is None:
            return None
        cat = pd.read_parquet(self.base / CATALOGUE_FILE)
        frame = pd.DataFrame({c: cat[c] for c in RAW_CATALOGUE_COLUMNS if c in cat})
        frame["ad_id"] = [str(v) for v in self.vocab.labels("ad", cat["ad_id"])]
        adv = cat["advertiser_id"].to_numpy()
        frame["advertiser_id"] = [str(self.vocab.label("advertiser", a)) if a >= 0 else "" for a in adv.tolist()]
        frame["selling_points"] = [list(v) for v in cat["selling_points"]]
        frame["attributes"] = [list(v) for v in cat["attributes"]]
        frame["_file"] = str(self.base / CATALOGUE_FILE)
        frame["_line"] = range(1, len(frame) + 1)
        return RawCatalogue(frame)

    def _base_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        path = self.base / EVENTS_FILE
        line = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            ev = batch.to_pandas()
            frame = pd.DataFrame({
                "user_id": [str(u) for u in self.vocab.labels("user", ev["user_id"])],
                "ad_id": [str(a) for a in self.vocab.labels("ad", ev["ad_id"])],
                "timestamp": ev["timestamp"].astype(str), "action": [ACTIONS[a] for a in ev["action"].tolist()],
                "_file": str(path), "_line": range(line, line + len(ev))})
            line += len(ev)
            yield EventChunk(frame, bytes_read=0)

    def _refunded(self) -> set[tuple[str, str]]:
        """(request_id, ad) of every click the log says was refunded (one pass over the refund lines only)."""
        out = set()
        with open(self.log, "rb") as f:
            for raw in f:
                if b'"refund"' not in raw:
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # the main pass names the bad line
                if isinstance(rec, dict) and rec.get("type") == "refund":
                    out.add((str(rec.get("request_id")), str(rec.get("ad_id"))))
        return out

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        if self.base is not None:
            yield from self._base_chunks(chunk_rows)
        refunded = self._refunded()
        slates: dict[str, tuple[object, dict[str, int]]] = {}
        versions: list[str] = []
        rows: list[tuple] = []
        issues: list[Issue] = []
        name = str(self.log)

        def flush(nbytes: int) -> EventChunk:
            frame = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp", "action", "_file", "_line"])
            chunk = EventChunk(frame.astype({"_line": "int64"}), bytes_read=nbytes, issues=list(issues))
            rows.clear()
            issues.clear()
            return chunk

        nbytes = 0
        with open(self.log, "rb") as f:
            for n, raw in enumerate(f, 1):
                nbytes += len(raw)
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                    kind = rec["type"] if isinstance(rec, dict) else rec["?"]
                except (ValueError, KeyError, TypeError) as e:
                    issues.append(Issue(name, n, "line", "malformed_row", f"not a served-log record ({e})"))
                    continue
                if kind == "slate":
                    ads, positions = rec.get("ads"), rec.get("positions")
                    if not isinstance(ads, list) or not isinstance(positions, list) or len(ads) != len(positions):
                        issues.append(Issue(name, n, "ads", "malformed_row", "ads and positions must be lists of one length"))
                        continue
                    slates[str(rec.get("request_id"))] = (rec.get("user_id"), dict(zip(map(str, ads), positions, strict=True)))
                    self.notes["slates"] += 1
                    if rec.get("model_version") not in versions:
                        versions.append(rec.get("model_version"))
                elif kind == "event":
                    served = slates.get(str(rec.get("request_id")))
                    if served is None:  # its slate was written before the file was rotated
                        self.notes["events_without_slate"] += 1
                        continue
                    user, positions = served
                    if user is None:
                        self.notes["events_without_user"] += 1
                        continue
                    ad, event = rec.get("ad_id"), rec.get("event")
                    if rec.get("invalid") is not None:
                        self.notes["invalid_events"] += 1
                        continue
                    if event == "click" and (str(rec.get("request_id")), str(ad)) in refunded:
                        self.notes["refunded_clicks"] += 1
                        continue
                    pos = positions.get(str(ad))
                    if pos is not None and event in EVENT_TYPES:
                        self.positions.setdefault(int(pos), Counter())[event] += 1
                    rows.append((str(user), "" if ad is None else str(ad), rec.get("ts"), event, name, n))
                elif kind == "refund":
                    self.notes["refunds"] += 1
                else:
                    issues.append(Issue(name, n, "type", "malformed_row", f"unknown record type {kind!r}", str(kind)))
                if len(rows) >= chunk_rows:
                    yield flush(nbytes)
                    nbytes = 0
        self.notes["positions"] = {str(p): dict(sorted(c.items())) for p, c in sorted(self.positions.items())}
        self.notes["model_versions"] = versions
        if rows or issues or nbytes:
            yield flush(nbytes)
