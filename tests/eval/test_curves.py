"""Training curves reach TensorBoard (when installed) with the numbers of metrics.jsonl, from a real training run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genads.eval.curves import TENSORBOARD_DIR, log_epoch, tensorboard_available


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_log_epoch_writes_jsonl_and_tensorboard(tmp_path):
    log_epoch(tmp_path, {"epoch": 1, "loss": 2.5, "valid_ndcg@10": 0.1, "improved": True, "note": "x"})
    log_epoch(tmp_path, {"epoch": 2, "loss": 2.0, "valid_ndcg@10": float("nan")})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    if not tensorboard_available():
        pytest.skip("tensorboard is not installed (it is in the dev extra): jsonl only")
    scalars = _scalars(tmp_path / TENSORBOARD_DIR)
    assert scalars["loss"] == [(1, 2.5), (2, 2.0)]
    assert scalars["valid_ndcg@10"] == [(1, pytest.approx(0.1))]  # NaN is not plotted; flags and text are not
    assert "improved" not in scalars and "note" not in scalars


def test_parallel_training_run_has_curves(tmp_path, cycle_dataset):
    from genads.data.split import leave_one_out
    from genads.parallel import fit
    from tests.parallel.test_train import TINY, _random_codes, build

    pytest.importorskip("tensorboard")
    cycle_split = leave_one_out(cycle_dataset)
    codes = _random_codes(cycle_split.n_items)
    log = fit(build(codes), codes, cycle_split, TINY, seed=0, run_dir=tmp_path, progress=False)
    scalars = _scalars(tmp_path / TENSORBOARD_DIR)
    assert [v for _, v in scalars["loss"]] == pytest.approx([r["loss"] for r in log])
    assert np.all(np.diff([s for s, _ in scalars["loss"]]) > 0)
