"""How well a click model predicts clicks: two AUCs (named for what they average) and the log-losses.

- :func:`roc_auc`: the area under the ROC curve over every (click, non-click) pair of the whole set.
- :func:`pooled_pair_auc`: only pairs shown in the *same request* count, pooled over requests: the share of all
  such pairs ordered right. It measures what an auction needs (ranking one request's candidates) and ignores how
  well the model separates users.
- :func:`mean_request_auc`: the same pairs, but the AUC of each request (with both a click and a non-click)
  averaged with equal weight per request.
- :func:`log_loss`: Bernoulli log-loss; :func:`position_log_loss` the position-based likelihood
  ``click ~ Bernoulli(examination * pCTR)`` the market's pCTR models are trained with.

Ties count one half in every AUC; an AUC without a pair to compare is NaN.
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve over the whole set (mid-ranks for ties)."""
    labels, scores = np.asarray(labels).ravel().astype(bool), np.asarray(scores, dtype=float).ravel()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # mid-ranks, 1-based
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pooled_pair_auc(score: np.ndarray, click: np.ndarray) -> float:
    """Share of (clicked, unclicked) pairs of the same request ordered right, pooled; ``score``, ``click`` (N, k)."""
    pos = click[:, :, None] > 0.5
    neg = click[:, None, :] < 0.5
    pair = pos & neg  # (N, i clicked, j not)
    diff = score[:, :, None] - score[:, None, :]
    wins = ((diff > 0) + 0.5 * (diff == 0))[pair].sum()
    n = pair.sum()
    return float(wins / n) if n else float("nan")


def mean_request_auc(score: np.ndarray, click: np.ndarray, request: np.ndarray) -> float:
    """Mean over requests (each with a click and a non-click) of the request's AUC; flat arrays with a request id."""
    order = np.argsort(request, kind="stable")
    score, click, request = score[order], click[order], request[order]
    starts = np.flatnonzero(np.r_[True, request[1:] != request[:-1]])
    aucs = []
    for s, e in zip(starts, np.r_[starts[1:], len(request)], strict=True):
        pos, neg = score[s:e][click[s:e] > 0], score[s:e][click[s:e] <= 0]
        if len(pos) and len(neg):
            diff = pos[:, None] - neg[None]
            aucs.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(aucs)) if aucs else float("nan")


def log_loss(labels: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    """Mean Bernoulli log-loss of probabilities ``p`` (clipped to [eps, 1 - eps]); NaN for no rows."""
    p = np.clip(np.asarray(p, dtype=float).ravel(), eps, 1 - eps)
    y = np.asarray(labels, dtype=float).ravel()
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else float("nan")


def position_log_loss(pctr: np.ndarray, exam: np.ndarray, click: np.ndarray) -> float:
    """Log-loss of ``click ~ Bernoulli(exam * pctr)`` (the position-based click model)."""
    p = np.clip(exam * pctr, 1e-6, 1 - 1e-6)
    return float(-(click * np.log(p) + (1 - click) * np.log(1 - p)).mean())
