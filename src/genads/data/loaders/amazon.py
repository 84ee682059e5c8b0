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
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from genads.data.loaders.text import file_size, line_batches
from genads.data.source import EventChunk, RawCatalogue


class S3RecSource:
    format = "s3rec"
    field_names = {"user_id": "user_id (first token)", "ad_id": "item_id", "timestamp": "position", "action": "action"}

    def __init__(self, sequences: str | Path, attributes: str | Path | None = None) -> None:
        self.sequences = Path(sequences)
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
        try:
            table = json.loads(self.attributes.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.attributes}:{e.lineno}: not valid JSON: {e.msg}") from e
        freq = Counter(a for attrs in table.values() for a in attrs)
        rows = []
        for line, (item, attrs) in enumerate(table.items(), start=1):
            attrs = attrs if isinstance(attrs, list) else []
            rarest = min(attrs, key=lambda a: (freq[a], a)) if attrs else None
            rows.append({
                "ad_id": item, "attributes": [f"attr:{a}" for a in attrs],
                "brand": f"attr:{rarest}" if rarest is not None else "", "_file": str(self.attributes), "_line": line,
            })
        return RawCatalogue(pd.DataFrame(rows), {"ad_id": "item_id (key)"})

    def event_chunks(self, chunk_rows: int) -> Iterator[EventChunk]:
        batch = max(1, chunk_rows // 10)
        name = str(self.sequences)
        for lines, nbytes in line_batches(self.sequences, batch):
            users, items, positions, numbers = [], [], [], []
            for number, text in lines:
                tokens = text.split()
                n = len(tokens) - 1
                users.extend([tokens[0]] * n)
                items.extend(tokens[1:])
                positions.extend(range(n))
                numbers.extend([number] * n)
            frame = pd.DataFrame({
                "user_id": users, "ad_id": items, "timestamp": positions, "action": "click",
                "_file": name, "_line": numbers,
            })
            yield EventChunk(frame, nbytes)
