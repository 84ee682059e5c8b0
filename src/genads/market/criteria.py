"""Pre-declared success criteria with Holm's multiple-comparison correction, and the attribution ladder.

The criteria are fixed here, before a run: each is a paired comparison over evaluation seeds
(Student-t on the per-seed differences, two-sided), in every world x market of the run. Holm's
step-down procedure (Holm 1979) controls the family-wise error rate over all of them at ``alpha``:
sort the p-values, compare the i-th smallest with ``alpha / (m - i)``, stop at the first failure.
"""

from __future__ import annotations

import itertools

import numpy as np

from genads.eval.statistics import holm, interval, paired_test  # noqa: F401 (re-exported: the market's criteria)

CRITERIA = (("e2e", "cascade", "rpm", "greater"), ("e2e", "cascade", "ctr", "greater"),
            ("e2e", "cascade", "advertiser_welfare_per_mille", "greater"), ("e2e", "cascade", "psi", "less"),
            ("e2e", "cascade", "gross_rpm", "greater"), ("e2e_gsp", "cascade", "rpm", "greater"),
            ("e2e_oracle", "cascade_oracle", "rpm", "greater"))
"""(variant, baseline, metric, direction EGA claims): e2e beats the cascade on RPM, CTR, advertiser
welfare and gross RPM and lowers Ψ; with GSP prices; and with both pCTRs replaced by the truth."""


def per_seed(per_seed_runs: list[dict], market: str, variant: str, metric: str) -> np.ndarray:
    return np.array([s["markets"][market]["variants"][variant][metric] for s in per_seed_runs], dtype=float)


def judge(runs: dict[str, list[dict]], alpha: float = 0.05) -> list[dict]:
    """Every criterion in every (world, market) of ``runs`` ({world: per-seed results}), Holm-corrected together."""
    rows = []
    for world, seeds in runs.items():
        for market in seeds[0]["markets"]:
            have = seeds[0]["markets"][market]["variants"]
            for variant, base, metric, direction in CRITERIA:
                if variant not in have or base not in have:
                    continue
                t = paired_test(per_seed(seeds, market, variant, metric), per_seed(seeds, market, base, metric))
                ok_direction = t["diff"] > 0 if direction == "greater" else t["diff"] < 0
                rows.append({"world": world, "market": market, "claim": f"{variant} {'>' if direction == 'greater' else '<'} "
                             f"{base} on {metric}", **t, "direction_as_claimed": bool(ok_direction)})
    for row, h in zip(rows, holm([r["p"] for r in rows], alpha), strict=True):
        row.update(h)
        row["verdict"] = ("holds" if row["direction_as_claimed"] else "reversed") if h["rejected"] else "not shown"
    return rows


def ladder(seeds: list[dict], market: str, metrics: tuple[str, ...] = ("rpm", "ctr", "psi", "gross_rpm")) -> list[dict]:
    """Each rung's paired change over the previous rung (:data:`genads.market.variants.LADDER`), with CIs."""
    from genads.market.variants import LADDER

    have = seeds[0]["markets"][market]["variants"]
    rungs = [v for v in LADDER if v in have]
    rows = []
    for prev, cur in itertools.pairwise(rungs):
        row = {"step": f"{prev} -> {cur}"}
        for m in metrics:
            t = paired_test(per_seed(seeds, market, cur, m), per_seed(seeds, market, prev, m))
            row[m] = {"diff": t["diff"], "ci95": t["ci95"], "p": t["p"]}
        rows.append(row)
    return rows
