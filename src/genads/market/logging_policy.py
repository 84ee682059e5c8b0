"""A logging policy that is not uniform: the logs of the second world come from a previous system.

The previous system scores each live ad by its own (noisy) pCTR times the bid and shows ``k`` ads drawn by
Plackett-Luce sampling from ``softmax(log score / temperature)``: good ads are shown far more often than bad
ones, as in a production log, yet every ad keeps a known, non-zero probability. The propensity of each shown
ad (its probability of being drawn at that slot given those above it) is logged with it, so a learner can
correct the bias (inverse propensity scoring) or, as a naive one would, ignore it: the mean logged CTR is then
the CTR of what the old system liked, not of the catalogue.
"""

from __future__ import annotations

import numpy as np


def plackett_luce(log_scores: np.ndarray, k: int, temperature: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``k`` items per row without replacement from ``softmax(log_scores / temperature)`` (B, n).

    Returns the items (B, k) in draw order and each one's propensity (B, k): the probability it had of
    being drawn at that step. ``-inf`` scores are never drawn; a row with fewer than ``k`` drawable items
    gets -1 (propensity 0) in the rest.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    B = len(log_scores)
    z = np.asarray(log_scores, dtype=float) / temperature
    items, props = np.full((B, k), -1), np.zeros((B, k))
    for j in range(k):
        top = np.max(z, axis=1, keepdims=True)
        ok = np.isfinite(top[:, 0])
        p = np.where(np.isfinite(z), np.exp(z - np.where(ok[:, None], top, 0.0)), 0.0)
        p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
        pick = (rng.random(B)[:, None] >= np.cumsum(p, axis=1)).sum(1).clip(max=z.shape[1] - 1)
        items[ok, j], props[ok, j] = pick[ok], p[np.arange(B), pick][ok]
        z[np.arange(B)[ok], pick[ok]] = -np.inf
    return items, props


def logging_scores(true_logit: np.ndarray, bids: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(B, n) the previous system's log score: its pCTR logit (truth + Gaussian error) plus log bid."""
    return true_logit + noise * rng.standard_normal(true_logit.shape) + np.log(np.maximum(bids, 1e-300))[None]


def ips_mean(rewards: np.ndarray, propensity: np.ndarray, n_items: int) -> float:
    """Inverse-propensity estimate of the mean reward of a uniformly random item, from first-slot logs."""
    return float(np.mean(rewards / (n_items * propensity)))
