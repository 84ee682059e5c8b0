"""Code stability across re-training: the share of items whose code did not change.

A served ID must not move when its item did not change: caches, live-ad tries and logged slates key
on it. :func:`code_stability` compares two code tables row by row; :func:`retrain_stability` fits a
tokenizer on a catalogue, re-fits a fresh one on the catalogue plus new items (the item vectors of
the old ones unchanged), and measures the old items' stability.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def code_stability(before: np.ndarray, after: np.ndarray) -> dict[str, float | list[float]]:
    """Share of rows whose full code is unchanged, and per level.

    Args:
        before, after: (n, L) codes of the same n items (same row order).
    """
    a, b = np.asarray(before), np.asarray(after)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"code tables must both be (n, L) of one shape, got {a.shape} and {b.shape}")
    if not len(a):
        raise ValueError("no items to compare")
    same = a == b
    return {"unchanged": float(same.all(1).mean()), "unchanged_levels": [float(v) for v in same.mean(0)]}


def retrain_stability(make: Callable[[], object], vectors: np.ndarray, new_vectors: np.ndarray, seed: int = 0,
                      fit_kwargs: Callable[[int], dict] | None = None) -> dict[str, float | list[float] | int]:
    """Fit ``make()`` on ``vectors``, fit a fresh ``make()`` with the same seed on ``vectors`` + ``new_vectors``,
    and return :func:`code_stability` of the first ``len(vectors)`` items (whose inputs did not change).

    Args:
        make: a tokenizer factory (``fit(vectors, seed=..., **kw) -> codes``).
        fit_kwargs: n_rows -> extra keyword arguments of ``fit`` (e.g. the e2e tokenizer's features).
    """
    x = np.asarray(vectors, dtype=np.float32)
    grown = np.concatenate([x, np.asarray(new_vectors, dtype=np.float32)])
    kw = fit_kwargs or (lambda n: {})
    before = make().fit(x, seed=seed, **kw(len(x)))
    after = make().fit(grown, seed=seed, **kw(len(grown)))[: len(x)]
    return {**code_stability(before, after), "items": len(x), "new_items": len(grown) - len(x)}
