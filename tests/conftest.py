"""Shared fixtures: tiny synthetic datasets built through the real importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from genads.data.dataset import Dataset, load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import TabularSource

# No wall-clock deadline on property tests: tests never assert on time (a busy CI machine made 200 ms flaky);
# speed lives in benchmarks/. Explicit @settings still set their own example counts.
settings.register_profile("genads", deadline=None)
settings.load_profile("genads")


def write_cycle_dataset(folder: Path, n_users: int = 60, n_items: int = 30, length: int = 8, seed: int = 0) -> Path:
    """Users walk a cycle over items (next = current + 1): a pattern a sequence model must learn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,ts,action"]
    for u in range(1, n_users + 1):
        start = int(rng.integers(n_items))
        for t in range(length):
            lines.append(f"{u},{(start + t) % n_items + 1},{t},click")
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    cat = ["ad_id,title,brand"] + [f"{i},Item {i},brand{i % 5}" for i in range(1, n_items + 1)]
    (folder / "items.csv").write_text("\n".join(cat) + "\n")
    return folder


@pytest.fixture
def cycle_dataset(tmp_path: Path) -> Dataset:
    raw = write_cycle_dataset(tmp_path / "raw")
    source = TabularSource(raw / "events.csv", catalogue=raw / "items.csv",
                           column_map={"user_id": "user", "ad_id": "item", "timestamp": "ts"})
    import_dataset(source, tmp_path / "ds", progress=False)
    return load_dataset(tmp_path / "ds")
