"""Helpers for data-layer tests: tiny inputs written to tmp_path, imports, and rejected-row checks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from genads.data.dataset import load_dataset
from genads.data.ingest import import_dataset
from genads.data.schema import REJECTED_FILE
from genads.data.validate import ImportValidationError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

CATALOGUE_CSV = """ad_id,title,brand,category,price
1,Red kettle,Acme,kitchen,19.5
2,Blue kettle,Acme,kitchen,21
3,Desk lamp,Lumo,office,35
4,Stapler,,office,
"""

EVENTS_CSV = """user_id,ad_id,timestamp,action
1,1,100,click
1,2,200,click
1,3,300,impression
2,3,100,click
2,4,150,conversion
2,1,175,click
3,2,50,click
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def do_import(source, out: Path, on_error: str = "stop", **kw):
    return import_dataset(source, out, on_error=on_error, progress=False, **kw)


def rejected(out: Path) -> list[dict]:
    path = out / REJECTED_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def where(path: Path, line: int, field: str) -> str:
    """The 'file:line: field' prefix every issue message starts with."""
    return f"{path}:{line}: field '{field}'"


def assert_stops(source, out: Path, path: Path, line: int, field: str, kind: str) -> ImportValidationError:
    """--on-error stop: raises naming file, line and field; writes nothing; an existing dataset survives."""
    with pytest.raises(ImportValidationError) as info:
        do_import(source, out, "stop")
    message = str(info.value)
    assert where(path, line, field) in message, message
    assert f": {kind}: " in message, message
    assert info.value.issue.kind == kind
    assert (info.value.issue.file, info.value.issue.line, info.value.issue.field) == (str(path), line, field)
    assert not out.exists(), "a failed import must not write the target"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temporary folder left behind"
    return info.value


def assert_skips(source, out: Path, path: Path, line: int, field: str, kind: str, n_events: int) -> dict:
    """--on-error skip: counted per kind in meta and the report, listed in rejected.jsonl, good rows kept."""
    report = do_import(source, out, "skip")
    assert report.issues.counts == {kind: 1}, report.issues.counts
    assert report.meta["rejected"] == {kind: 1}
    assert kind in report.issues.summary()
    rows = rejected(out)
    assert len(rows) == 1, rows
    assert (rows[0]["file"], rows[0]["line"], rows[0]["field"], rows[0]["kind"]) == (str(path), line, field, kind)
    ds = load_dataset(out)
    assert len(ds.events) == report.n_events == n_events
    return rows[0]


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
