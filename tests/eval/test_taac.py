"""The TAAC 2025 score: 0.31 HR@10 + 0.69 NDCG@10, and its action-weighted form on cases that know their targets' actions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genads.data.dataset import Dataset
from genads.data.schema import ACTION_CODE
from genads.data.split import SplitConfig, leave_one_out
from genads.eval.metrics import TAAC_ACTION_WEIGHT, ranking_metrics, taac_score


def test_taac_is_the_weighted_sum_of_hr_and_ndcg_at_10():
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(50)[:20] + 1 for _ in range(200)])
    targets = rng.integers(1, 51, 200)
    m = ranking_metrics(ranked, targets, ks=(10,))
    assert taac_score(ranked, targets)["taac@10"] == pytest.approx(0.31 * m["hr@10"] + 0.69 * m["ndcg@10"])


def test_conversions_weigh_more_than_clicks():
    ranked = np.array([[1, *range(10, 19)], [2, *range(10, 19)]])
    targets = np.array([1, 3])  # the first case hits at rank 0, the second misses
    click, conversion = ACTION_CODE["click"], ACTION_CODE["conversion"]
    plain = taac_score(ranked, targets, np.array([click, click]))
    hit_conversion = taac_score(ranked, targets, np.array([conversion, click]))
    miss_conversion = taac_score(ranked, targets, np.array([click, conversion]))
    assert plain["taac_weighted@10"] == pytest.approx(plain["taac@10"]) == pytest.approx(0.5)
    w = TAAC_ACTION_WEIGHT[conversion]
    assert hit_conversion["taac_weighted@10"] == pytest.approx(w / (w + 1))
    assert miss_conversion["taac_weighted@10"] == pytest.approx(1 / (w + 1))
    assert "taac_weighted@10" not in taac_score(ranked, targets)


def test_leave_one_out_keeps_each_targets_action():
    rows = [(1, a, t, act) for t, (a, act) in enumerate([(10, "click"), (11, "click"), (12, "conversion"), (13, "click")])]
    rows += [(2, a, t, act) for t, (a, act) in enumerate([(10, "click"), (12, "click"), (11, "click"), (13, "conversion")])]
    events = pd.DataFrame(rows, columns=["user_id", "ad_id", "timestamp", "action"])
    events["action"] = events["action"].map(ACTION_CODE).astype("int8")
    catalogue = pd.DataFrame({"ad_id": [10, 11, 12, 13]})
    split = leave_one_out(Dataset(catalogue, events, {}), SplitConfig(min_events=3))
    assert split.valid.target_action.tolist() == [ACTION_CODE["conversion"], ACTION_CODE["click"]]
    assert split.test.target_action.tolist() == [ACTION_CODE["click"], ACTION_CODE["conversion"]]


def test_results_lines_show_taac_on_action_typed_data(tmp_path, capsys):
    """Synthetic TencentGR (targets are clicks and conversions): `genads baselines` prints TAAC and wTAAC."""
    from genads.cli import main

    assert main(["data", "synth-tencentgr", "--out", str(tmp_path / "raw"), "--users", "150", "--items", "60"]) == 0
    assert main(["data", "import", str(tmp_path / "raw/seq.jsonl"), "--format", "tencentgr", "--advertiser-feature",
                 "101", "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["baselines", str(tmp_path / "ds"), "--models", "popularity"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("popularity"))
    assert "  TAAC 0." in line and "  wTAAC 0." in line
