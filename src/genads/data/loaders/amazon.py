"""The S3-Rec sequence format used for Amazon Beauty / Sports (and by TIGER and P5).

``NAME.txt``: one user per line, ``user_id item_id item_id ...`` in time order; ids from 1.
``NAME_item2attributes.json`` (optional): ``{item_id: [attribute ids]}``, anonymised categories and brand.

The files carry no timestamps: an event's timestamp is its position in the user's sequence
(``meta.json`` says so: ``timestamps: ordinal``). All events are clicks (reviews stand in for them).
Without brand names, the advertiser of an item is its rarest attribute (brand ids are rarer than
category ids), a heuristic that ``meta.json`` records.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from genads.data.loaders.text import file_size, iter_json_object, line_batches
from genads.data.source import EventChunk, RawCatalogue
from genads.data.validate import Issue

_ID = re.compile(r"\+?\d{1,18}")


class S3RecSource:
    format = "s3rec"

    def __init__(self, sequences: str | Path, attributes: str | Path | None = None) -> None:
        self.sequences = Path(sequences)
        self.field_names = {"user_id": "user_id (first token)", "ad_id": "item_id", "timestamp": "position", "action": "action"}
        if attributes is None:
            guess = self.sequences.with_name(self.sequences.stem + "_item2attributes.json")
            attributes = guess if guess.is_file() else None
        self.attributes = Path(attributes) if attributes else None
        self.notes = {
            "files": [str(self.sequences)] + ([str(self.attributes)] if self.attributes else []),
            "timestamps": "ordinal",
            "advertiser": "rarest attribute of the item" if self.attributes else "each item",
        }

    def size_hint(self) -> int:
        return file_size(self.sequences)

    def catalogue(self) -> RawCatalogue | None:
        if self.attributes is None:
            return None
        entries = list(iter_json_object(self.attributes))
        name = str(self.attributes)
        freq = Counter(a for _, attrs, _ in entries if isinstance(attrs, list) for a in attrs if _is_token(a))
        rows, issues = [], []
        for item, attrs, line in entries:
            if not isinstance(attrs, list) or not all(_is_token(a) for a in attrs):
                issues.append(Issue(name, line, "attributes", "bad_value",
                                    "must be a list of attribute ids", f"{item}: {json.dumps(attrs)[:80]}"))
                continue
            rarest = min(attrs, key=lambda a: (freq[a], str(a))) if attrs else None
            rows.append({
                "ad_id": item, "attributes": [f"attr:{a}" for a in attrs],
                "brand": f"attr:{rarest}" if rarest is not None else "", "_file": name, "_line": line,
            })
        frame = pd.DataFrame(rows, columns=["ad_id", "attributes", "brand", "_file", "_line"])
        return RawCatalogue(frame, {"ad_id": "item_id (key)"}, issues)

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        batch = max(1, chunk_rows // 10)
        name = str(self.sequences)
        seen: dict[str, int] = {}
        for lines, nbytes in line_batches(self.sequences, batch):
            users, items, positions, numbers = [], [], [], []
            issues: list[Issue] = []
            for number, text in lines:
                tokens = text.split()
                if not _ID.fullmatch(tokens[0]):
                    issues.append(Issue(name, number, self.field_names["user_id"], "bad_id",
                                        "must be a non-negative integer", tokens[0]))
                    continue
                earlier = seen.setdefault(tokens[0].lstrip("+0") or "0", number)
                if earlier != number:
                    issues.append(Issue(name, number, self.field_names["user_id"], "duplicate",
                                        f"user already has a sequence on line {earlier}", tokens[0]))
                    continue
                n = len(tokens) - 1
                users.extend([tokens[0]] * n)
                items.extend(tokens[1:])
                positions.extend(range(n))
                numbers.extend([number] * n)
            frame = pd.DataFrame({
                "user_id": pd.Series(users, dtype=object), "ad_id": pd.Series(items, dtype=object),
                "timestamp": pd.Series(positions, dtype=np.int64), "action": "click",
                "_file": name, "_line": pd.Series(numbers, dtype=np.int64),
            })
            yield EventChunk(frame, nbytes, issues)


def _is_token(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)
