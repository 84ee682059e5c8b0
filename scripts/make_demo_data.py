"""Build the bundled demo data (data/demo/) from ../shared/data/amazon18 (Industrial_and_Scientific).

The source (MiniOneRec's release of Amazon 2018 reviews, Apache-2.0) ships item text and windows
of user histories (history <= 10 items -> next item). Each user's sequence is rebuilt by merging
their windows in file order (valid, then test), joining each window onto the sequence where they
overlap. Timestamps are ordinal positions. Descriptions are cut to 400 characters to keep the
bundle small; HTML entities in titles are unescaped and scraping debris
(a trailing '" />', a title that is only the category name) is removed. Run: python scripts/make_demo_data.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import sys
from pathlib import Path

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data") / "amazon18"
OUT = Path("data/demo")
NAME = "Industrial_and_Scientific"


def merge(seq: list[int], window: list[int]) -> list[int]:
    """Append ``window`` to ``seq`` over their longest overlap (seq suffix == window prefix)."""
    for k in range(min(len(seq), len(window)), 0, -1):
        if seq[-k:] == window[:k]:
            return seq + window[k:]
    if _contains(seq, window):
        return seq
    return seq + window


def _contains(seq: list[int], window: list[int]) -> bool:
    n = len(window)
    return any(seq[i:i + n] == window for i in range(len(seq) - n + 1))


CATEGORY_NAME = "Industrial & Scientific"


def clean_title(raw: str) -> str:
    """Unescape HTML entities and drop scraping debris (a trailing '" />'; a bare category name)."""
    title = html.unescape(raw).strip()
    title = title.removesuffix('" />').removesuffix("/>").strip()
    return "" if title == CATEGORY_NAME else title


def description(raw: str) -> str:
    try:
        parts = ast.literal_eval(raw) if raw.startswith("[") else [raw]
    except (ValueError, SyntaxError):
        parts = [raw]
    text = " ".join(str(p) for p in parts).replace("\n", " ").strip()
    return text[:400].rsplit(" ", 1)[0] if len(text) > 400 else text


def _gz(path: Path) -> io.TextIOWrapper:
    """A gzip text writer with a fixed mtime, so the bundle is byte-identical on every run."""
    raw = gzip.GzipFile(path, "wb", mtime=0)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def main() -> None:
    items = json.loads((SRC / f"{NAME}.item.json").read_text())
    sequences: dict[str, list[int]] = {}
    for split in ("valid", "test"):
        with open(SRC / f"{NAME}.{split}.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                window = [*ast.literal_eval(row["history_item_id"]), int(row["item_id"])]
                sequences[row["user_id"]] = merge(sequences.get(row["user_id"], []), window)
    OUT.mkdir(parents=True, exist_ok=True)
    users = sorted(sequences, key=lambda u: (len(u), u))
    with _gz(OUT / "events.csv.gz") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "ts", "action"])
        for uid, user in enumerate(users, start=1):
            for pos, item in enumerate(sequences[user]):
                w.writerow([uid, item, pos, "click"])
    with _gz(OUT / "catalogue.csv.gz") as f:
        w = csv.writer(f)
        w.writerow(["ad_id", "title", "description", "category", "brand"])
        for item_id in sorted(items, key=int):
            it = items[item_id]
            w.writerow([item_id, clean_title(it.get("title", "")), html.unescape(description(it.get("description", "") or "")),
                        (it.get("categories") or "").strip(), (it.get("brand") or "").strip()])
    n_events = sum(len(s) for s in sequences.values())
    print(f"wrote {OUT}: {len(users)} users, {len(items)} items, {n_events} events")


if __name__ == "__main__":
    main()
