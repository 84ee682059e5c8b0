"""Page choice: a multinomial logit over the page's items with a no-click option and position effects.

The user looks at a page of ``P`` positions and clicks at most one item, or nothing. Item ``i`` at
position ``p`` has attraction weight ``kappa[p] * w_i`` (``w_i = exp(utility)``, ``kappa`` the position
effect) and the no-click option weight ``exp(no_click_logit)``, so

    P(click i) = kappa[p_i] * w_i / (exp(no_click_logit) + sum_j kappa[p_j] * w_j),
    P(no click) = exp(no_click_logit) / (same denominator).

This is RecSim NG's multinomial-logit slate choice with a no-click option, with the position effects of
the position-biased MNL (Abeliuk, Berbeglia, Cebrian & Van Hentenryck 2016, "Assortment optimization under
a multinomial logit model with position bias and social influence", 4OR 14). Items compete: a tempting
organic item or a second ad lowers every other item's clicks (substitution), which is what a slate-aware
allocation can exploit and a myopic one cannot. Click probabilities of a page sum to at most 1 (exactly
``1 - P(no click)``); at small weights the model is close to independent clicks ``kappa * w / exp(v0)``.

Position effects follow the propensity form ``kappa[p] = (1 / (1 + p)) ** eta`` used by Joachims,
Swaminathan & Schnabel 2017 ("Unbiased learning-to-rank with biased feedback", WSDM; eta = 1 their
default severity).
"""

from __future__ import annotations

import numpy as np


def position_effects(page_size: int, eta: float) -> np.ndarray:
    """(page_size,) ``kappa[p] = (1 / (1 + p)) ** eta`` (1 at the top)."""
    if page_size < 1 or eta < 0:
        raise ValueError(f"page_size={page_size} must be >= 1 and eta={eta} >= 0")
    return (1.0 / (1.0 + np.arange(page_size))) ** eta


def page_probs(weights: np.ndarray, kappa: np.ndarray, no_click_logit: float) -> np.ndarray:
    """(B, P) click probability of each position of pages with attraction ``weights`` (B, P) (0 = empty slot).

    ``kappa`` (P,) position effects. ``1 - out.sum(1)`` is the no-click probability (always > 0).
    """
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.shape[1] != len(kappa):
        raise ValueError(f"weights shape {weights.shape} must be (B, {len(kappa)})")
    if (weights < 0).any():
        raise ValueError("attraction weights must be >= 0")
    num = weights * kappa[None]
    return num / (np.exp(no_click_logit) + num.sum(1, keepdims=True))


def draw_choice(probs: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """(B,) clicked position of each page (-1 = no click) from its probabilities (B, P) and uniforms (B,)."""
    cum = np.cumsum(probs, axis=1)
    pos = (uniform[:, None] >= cum).sum(1)
    return np.where(pos < probs.shape[1], pos, -1)
