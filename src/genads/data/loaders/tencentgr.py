"""The TencentGR / TAAC 2025 generative-recommendation format.

``seq.jsonl``: one user per line, a JSON array of records
``[user_id, item_id, user_feat, item_feat, action_type, timestamp]`` in time order. Records with a
null item_id carry only user features and are not events; a record with a null user_id belongs to
the line's user. ``action_type`` 0/1/2 is impression/click/conversion.
``item_feat_dict.json`` (optional): ``{item_id: {feature_id: value}}``; features become attributes
``"feature=value"``. ``creative_emb/emb_{feature}_{dim}/*.json`` (optional; ``mm_emb``/``emb_feature``):
the multimodal embeddings, JSON lines ``{"anonymous_cid": OID, "emb": [...]}``, go to the catalogue's
``embedding`` column (``genads tokenize --features embedding`` reads it); their ``anonymous_cid`` is the
original item id, mapped to seq.jsonl's re-indexed ids by ``indexer.pkl`` (``["i"]``, read as plain data only;
found beside seq.jsonl, or ``indexer=``); without it cids are taken as item ids (the synthetic set's layout). User-profile records
(``user_feat``) are not events: their features go to the dataset's users table (``users.parquet``: user_id,
features ``["feature=value", ...]``, the last profile of a user wins) and are counted in meta.json.
``advertiser_feature`` names the feature that identifies the advertiser; without it each ad is its own advertiser.
"""

from __future__ import annotations

import json
import pickle  # only through _NoCode: plain data, no code runs
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from genads.data.loaders.text import file_size, iter_json_object, line_batches
from genads.data.source import EventChunk, RawCatalogue
from genads.data.validate import Issue

RECORD = ("user_id", "item_id", "user_feat", "item_feat", "action_type", "timestamp")


class TencentGRSource:
    format = "tencentgr"

    def __init__(self, seq: str | Path, item_feat: str | Path | None = None, advertiser_feature: str | None = None,
                 mm_emb: str | Path | None = None, emb_feature: str | None = None,
                 indexer: str | Path | None = None) -> None:
        self.seq = Path(seq)
        if (indexer is None and mm_emb is not None) or (indexer is None and emb_feature is not None):
            guess = self.seq.with_name("indexer.pkl")
            indexer = guess if guess.is_file() else None
        self.indexer = Path(indexer) if indexer is not None else None
        """TAAC's ``indexer.pkl``: the embeddings are keyed by original ids (OID), seq.jsonl and item_feat by re-ids
        (RID); ``indexer["i"]`` maps OID -> RID. Read with :func:`read_indexer` (no code runs)."""
        self.field_names = {"user_id": "user_id (record[0])", "ad_id": "item_id (record[1])",
                            "timestamp": "timestamp (record[5])", "action": "action_type (record[4])"}
        if item_feat is None:
            guess = self.seq.with_name("item_feat_dict.json")
            item_feat = guess if guess.is_file() else None
        self.item_feat = Path(item_feat) if item_feat else None
        self.advertiser_feature = advertiser_feature
        if mm_emb is None and emb_feature is not None:
            mm_emb = self.seq.with_name("creative_emb")
        self.mm_emb = Path(mm_emb) if mm_emb is not None else None
        self.emb_feature = emb_feature
        self.user_features: dict[str, int] = {}
        """Profile features seen in user_feat (feature id -> users that have it), reported in meta.json."""
        self.user_profiles: dict[object, list[str]] = {}
        """Raw user id -> its profile features ("feature=value"), written as the dataset's users table."""
        self.notes = {"files": [str(self.seq)] + ([str(self.item_feat)] if self.item_feat else []),
                      "timestamps": "as given", "advertiser": f"feature {advertiser_feature}" if advertiser_feature else "each item"}

    def size_hint(self) -> int:
        return file_size(self.seq)

    def catalogue(self) -> RawCatalogue | None:
        if self.item_feat is None:
            return None
        name = str(self.item_feat)
        rows, issues = [], []
        for item, feats, line in iter_json_object(self.item_feat):
            if not isinstance(feats, dict):
                issues.append(Issue(name, line, "item_feat", "bad_value",
                                    "must be an object {feature_id: value}", f"{item}: {json.dumps(feats)[:80]}"))
                continue
            adv = feats.get(self.advertiser_feature) if self.advertiser_feature else None
            rows.append({"ad_id": item, "attributes": _attributes(feats),
                         "brand": f"{self.advertiser_feature}={adv}" if adv is not None else "",
                         "_file": name, "_line": line})
        frame = pd.DataFrame(rows, columns=["ad_id", "attributes", "brand", "_file", "_line"])
        names = {"ad_id": "item_id (key)"}
        if self.mm_emb is not None:
            vectors, emb_issues, where = self._embeddings()
            issues += emb_issues
            frame["embedding"] = [vectors.get(str(i)) for i in frame["ad_id"].tolist()]
            names["embedding"] = f"emb (by anonymous_cid, {where})"
            self.notes["embedding"] = {"files": where, "items_with_embedding": int(frame["embedding"].notna().sum()),
                                       "items": len(frame)}
        return RawCatalogue(frame, names, issues)

    def _embeddings(self) -> tuple[dict[str, list], list[Issue], str]:
        """Item id (text) -> vector from ``mm_emb/emb_{feature}_{dim}/*.json`` (JSON lines: anonymous_cid, emb)."""
        folders = sorted(self.mm_emb.glob(f"emb_{self.emb_feature or '*'}_*"))
        if not folders:
            raise FileNotFoundError(f"{self.mm_emb}: no emb_{self.emb_feature or '<feature>'}_<dim> folder "
                                    "(multimodal embeddings, JSON lines {anonymous_cid, emb})")
        if len(folders) > 1:
            raise ValueError(f"{self.mm_emb}: several embedding features ({', '.join(f.name for f in folders)}): "
                             "choose one with --emb-feature")
        out: dict[str, list] = {}
        issues: list[Issue] = []
        rid_of = None
        if self.indexer is not None:  # embeddings are keyed by OID: map them to the RIDs seq.jsonl uses
            rid_of = {str(k): str(v) for k, v in read_indexer(self.indexer)["i"].items()}
            self.notes["embedding_ids"] = f"anonymous_cid (OID) -> item_id (RID) by {self.indexer}['i']"
        else:
            self.notes["embedding_ids"] = ("anonymous_cid taken as item_id (no indexer.pkl: right for `genads data "
                                           "synth-tencentgr`, wrong for the real TAAC files, whose cids are OIDs)")
        for part in sorted(folders[0].glob("*.json")):
            with open(part, encoding="utf-8") as f:
                for n, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        rec = json.loads(text)
                        key = str(rec["anonymous_cid"])
                        if rid_of is not None:
                            key = rid_of.get(key)
                            if key is None:
                                continue  # an ad the sequences never name
                        out[key] = rec["emb"]
                    except (ValueError, KeyError, TypeError) as e:
                        issues.append(Issue(str(part), n, "emb", "malformed_row",
                                            f"expected {{\"anonymous_cid\": id, \"emb\": [numbers]}} ({e})", text[:80]))
        return out, issues, str(folders[0])

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        name = str(self.seq)
        for lines, nbytes in line_batches(self.seq, max(1, chunk_rows // 20)):
            cols: dict[str, list] = {"user_id": [], "ad_id": [], "timestamp": [], "action": [], "_line": []}
            issues: list[Issue] = []
            for number, text in lines:
                records = _parse_line(text)
                if isinstance(records, str):
                    issues.append(Issue(name, number, "line", "malformed_row", records, text[:80]))
                    continue
                line_user = next((r[0] for r in records if r[0] is not None), None)
                for rec in records:
                    if rec[1] is None:  # a user-profile record, not an event: the users table
                        if isinstance(rec[2], dict):
                            for k in rec[2]:
                                self.user_features[str(k)] = self.user_features.get(str(k), 0) + 1
                            self.notes["user_features"] = dict(sorted(self.user_features.items()))
                            user = rec[0] if rec[0] is not None else line_user
                            if user is not None:
                                self.user_profiles[user] = _attributes(rec[2])
                        continue
                    cols["user_id"].append(rec[0] if rec[0] is not None else line_user)
                    cols["ad_id"].append(rec[1])
                    cols["action"].append(rec[4])
                    cols["timestamp"].append(rec[5])
                    cols["_line"].append(number)
            frame = pd.DataFrame({k: pd.Series(v, dtype=object if k != "_line" else "int64") for k, v in cols.items()})
            frame["_file"] = name
            yield EventChunk(frame, nbytes, issues)


    def users(self) -> pd.DataFrame | None:
        """Raw user ids and their profile features (after event_chunks ran), or None without profiles."""
        if not self.user_profiles:
            return None
        return pd.DataFrame({"user_id": list(self.user_profiles), "features": list(self.user_profiles.values())})


class _NoCode(pickle.Unpickler):
    """Unpickles plain data only (dict, list, tuple, str, int, float, bool, None): any class or function a
    pickle names is refused, so reading a file runs no code from it."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused: the file asks for {module}.{name}; only plain data is read")


def read_indexer(path: str | Path) -> dict:
    """TAAC's ``indexer.pkl`` ({"i": {oid: rid}, "u": ..., "f": ...}) read as plain data; a file holding anything
    else (a class, a function: a pickle that could run code) is an error naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _NoCode(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a plain-data indexer pickle ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("i"), dict):
        raise ValueError(f"{path}: expected a dict with an 'i' mapping (item OID -> RID), got "
                         f"{type(data).__name__} with keys {sorted(map(str, data))[:5] if isinstance(data, dict) else ''}")
    return data


def _attributes(feats: dict) -> list[str]:
    """``{"112": 19, "113": [3, 4]}`` -> ``["112=19", "113=3", "113=4"]`` (multi-value features expand)."""
    out = []
    for k, v in sorted(feats.items()):
        for x in v if isinstance(v, list) else [v]:
            if x is not None:
                out.append(f"{k}={x}")
    return out


def _parse_line(text: str) -> list[list] | str:
    """The records of one line, or a message saying why the line is malformed."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e.msg} at column {e.colno})"
    if not isinstance(records, list):
        return "expected a JSON array of records"
    for k, rec in enumerate(records):
        if not isinstance(rec, list) or len(rec) != len(RECORD):
            return f"record {k} must be a list of {len(RECORD)} fields {list(RECORD)}"
    return records
