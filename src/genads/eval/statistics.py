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
