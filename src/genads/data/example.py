"""A small shop with string ids, written as CSV: the input of the walk-through (docs/walkthrough.md).

``genads data example --out DIR`` writes ``DIR/events.csv`` (user, item, ts, kind) and
``DIR/catalogue.csv`` (ad_id, title, category, brand, advertiser, price, attributes): ids like ``u0007``,
``ad-01f`` and ``shop-3``, actions named ``view``, ``click`` and ``purchase`` (the last one mapped with
``--action-map purchase=conversion``). Each user mostly browses one category, so a sequence model has
something to learn. Seeded: the same arguments always write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genads.data.dataset import atomic_write_text

CATEGORIES = ("shoes", "kitchen", "books", "garden", "toys", "audio")
KINDS = ("view", "click", "click", "purchase")


@dataclass(frozen=True)
class ExampleConfig:
    users: int = 120
    ads: int = 48
    advertisers: int = 5
    min_events: int = 5
    max_events: int = 9
    focus: float = 0.8
    """Share of a user's events in their own category."""
    seed: int = 0


def write_example_shop(out: str | Path, config: ExampleConfig | None = None) -> tuple[Path, Path]:
    """Write the example's events.csv and catalogue.csv into ``out``; returns their paths."""
    cfg = config or ExampleConfig()
    if cfg.ads < len(CATEGORIES) or cfg.users < 1 or not 1 <= cfg.min_events <= cfg.max_events:
        raise ValueError(f"{cfg}: need ads >= {len(CATEGORIES)}, users >= 1, 1 <= min_events <= max_events")
    rng = np.random.default_rng(cfg.seed)
    out = Path(out)
    ads = [f"ad-{i:03x}" for i in range(cfg.ads)]
    category = np.arange(cfg.ads) % len(CATEGORIES)
    lines = ["ad_id,title,category,brand,advertiser,price,attributes"]
    for i, ad in enumerate(ads):
        c = CATEGORIES[category[i]]
        lines.append(f"{ad},{c} pick {i},{c},brand{i % 7},shop-{i % cfg.advertisers},{5 + (i * 37) % 90},"
                     f"{c}|brand{i % 7}")
    catalogue = out / "catalogue.csv"
    atomic_write_text(catalogue, "\n".join(lines) + "\n")
    lines = ["user,item,ts,kind"]
    for u in range(cfg.users):
        own = np.flatnonzero(category == rng.integers(len(CATEGORIES)))
        t = 1_700_000_000 + int(rng.integers(0, 86_400))
        for _ in range(int(rng.integers(cfg.min_events, cfg.max_events + 1))):
            i = int(rng.choice(own)) if rng.random() < cfg.focus else int(rng.integers(cfg.ads))
            t += int(rng.integers(10, 1000))
            lines.append(f"u{u:04d},{ads[i]},{t},{KINDS[int(rng.integers(len(KINDS)))]}")
    events = out / "events.csv"
    atomic_write_text(events, "\n".join(lines) + "\n")
    return events, catalogue
