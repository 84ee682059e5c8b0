"""Statistics over paired runs (seeds): the t-interval of a mean, the paired t-test, Holm's correction.

Every benchmark that compares two systems over seeds reports through these, so an interval or an adjusted
p-value means the same thing in every table. Holm's step-down procedure (Holm 1979) controls the family-wise
error rate at ``alpha``: sort the p-values, compare the i-th smallest with ``alpha / (m - i)``, stop at the first
failure (here as adjusted p-values: ``max_{j <= i} min(1, (m - j) p_(j))``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def interval(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95% interval of the mean (a point when n = 1)."""
    x = np.asarray(x, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def paired_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean difference a - b with its 95% interval and the two-sided paired t-test p-value."""
    d = np.asarray(a, float) - np.asarray(b, float)
    mean, lo, hi = interval(d)
    if len(d) < 2 or np.allclose(d, d[0]):
        p = 0.0 if len(d) >= 2 and d[0] != 0 else 1.0
    else:
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return {"diff": mean, "ci95": [lo, hi], "p": p, "n": len(d)}


def holm(pvalues: list[float], alpha: float = 0.05) -> list[dict]:
    """Holm step-down: per hypothesis the adjusted p-value and whether it is rejected at ``alpha``."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[idx]))
        adjusted[idx] = running
    return [{"p_holm": float(adjusted[i]), "rejected": bool(adjusted[i] < alpha)} for i in range(m)]


def holm_table(tests: list[dict], alpha: float = 0.05) -> list[dict]:
    """Holm step-down over ``tests`` (each with per-seed paired relative differences ``d`` and a one-sided
    ``alternative``, 'greater' or 'less'), in place: the one-sided t-test's ``p``, the adjusted ``p_holm`` and
    ``rejected`` (:func:`holm`), and the t-interval of the mean whose each side is a one-sided bound at the test's
    Holm step (two-sided level 1 - 2 alpha / (m - rank)): the bound on the tested side excludes 0 exactly when that
    step's one-sided test rejects (``ci_level`` is the one-sided level 1 - alpha / (m - rank))."""
    m = len(tests)
    for t in tests:
        d = np.asarray(t["d"], float)
        if len(d) < 2 or np.allclose(d, d[0]):
            t["p"] = 1.0 if len(d) < 2 or (d[0] <= 0 if t["alternative"] == "greater" else d[0] >= 0) else 0.0
        else:
            t["p"] = float(stats.ttest_1samp(d, 0.0, alternative=t["alternative"]).pvalue)
    adjusted = holm([t["p"] for t in tests], alpha)
    for rank, i in enumerate(np.argsort([t["p"] for t in tests], kind="stable")):
        t = tests[i]
        t["p_holm"], t["rejected"] = adjusted[i]["p_holm"], adjusted[i]["rejected"]
        d = np.asarray(t["d"], float)
        level = 1.0 - alpha / (m - rank)  # one-sided
        half = float(stats.t.ppf(level, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        t["mean"], t["ci_holm"], t["ci_level"] = float(d.mean()), [float(d.mean() - half), float(d.mean() + half)], level
    return tests
