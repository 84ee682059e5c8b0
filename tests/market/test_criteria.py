from __future__ import annotations

import numpy as np

from genads.market.criteria import holm, judge, ladder, paired_test


def test_holm_matches_the_step_down_by_hand() -> None:
    out = holm([0.01, 0.04, 0.03, 0.20], alpha=0.05)
    # sorted: .01 (x4 = .04), .03 (x3 = .09), .04 (x2 = .08 -> monotone .09), .20 (x1 = .20)
    np.testing.assert_allclose([o["p_holm"] for o in out], [0.04, 0.09, 0.09, 0.20])
    assert [o["rejected"] for o in out] == [True, False, False, False]


def test_paired_test_reads_the_sign_and_interval() -> None:
    t = paired_test(np.array([1.1, 2.1, 3.2, 4.0]), np.array([1.0, 2.0, 3.0, 4.1]))
    assert t["n"] == 4 and t["ci95"][0] < t["diff"] < t["ci95"][1] and 0 < t["p"] < 1


def _seeds(rpm_e2e: list[float]) -> list[dict]:
    out = []
    for i, r in enumerate(rpm_e2e):
        base = {"rpm": 10.0 + i, "ctr": 0.1, "psi": 0.1, "gross_rpm": 11.0 + i, "advertiser_welfare_per_mille": 5.0}
        out.append({"markets": {"budget_bound": {"variants": {
            "cascade": base, "e2e_gsp": {**base, "rpm": r - 0.5}, "e2e": {**base, "rpm": r}}}}})
    return out


def test_judge_corrects_over_all_criteria_and_ladder_steps() -> None:
    seeds = _seeds([12.0, 13.1, 13.9, 15.2, 16.0])  # e2e beats the cascade by ~2 every seed
    rows = judge({"w": seeds})
    rpm = next(r for r in rows if r["claim"] == "e2e > cascade on rpm")
    assert rpm["verdict"] == "holds" and rpm["p_holm"] >= rpm["p"]
    ctr = next(r for r in rows if r["claim"] == "e2e > cascade on ctr")
    assert ctr["verdict"] == "not shown"  # identical CTR: no evidence
    steps = ladder(seeds, "budget_bound", metrics=("rpm",))
    assert [s["step"] for s in steps] == ["cascade -> e2e_gsp", "e2e_gsp -> e2e"]
    assert abs(steps[1]["rpm"]["diff"] - 0.5) < 1e-9
