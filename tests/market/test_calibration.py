"""The second world's calibration table (issue 28): every parameter has a value and a source, and the docs show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from genads.market.calibration import SOURCES, calibration_table, markdown
from genads.market.headroom import load_study
from genads.market.logs import LogConfig

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"published", "bounded", "assumed", "design", "not used"}


def rows() -> list[dict]:
    world, extra, study = load_study(ROOT / "configs" / "market_world2.yaml")
    return calibration_table(world, extra, study, LogConfig(logging_temperature=0.5, logging_noise=0.5))


def test_every_parameter_of_the_second_world_has_a_value_and_a_source() -> None:
    table = rows()
    names = [r["parameter"] for r in table]
    assert len(names) == len(set(names)) and set(names) == set(SOURCES)
    assert {r["status"] for r in table} <= STATUSES
    assert all(r["source"] for r in table)
    by_name = {r["parameter"]: r for r in table}
    assert by_name["world2.fatigue_same_ad"]["value"] == 0.8 and "1996" in by_name["world2.fatigue_same_ad"]["source"]
    assert by_name["world2.creatives.quality_std"]["status"] == "bounded"


def test_an_unsourced_parameter_is_refused() -> None:
    @dataclass(frozen=True)
    class Inner:
        new_knob: float = 1.0

    @dataclass(frozen=True)
    class Extended:
        creatives: Inner = field(default_factory=Inner)

    with pytest.raises(KeyError, match=r"world2\.creatives\.new_knob"):
        calibration_table(world2=Extended())


def test_the_docs_table_is_the_calibration_table() -> None:
    docs = (ROOT / "docs" / "market.md").read_text()
    for line in markdown(rows()).splitlines()[2:]:
        assert line in docs, f"docs/market.md lacks or differs on: {line[:80]}"
