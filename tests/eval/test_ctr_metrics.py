"""The click-model metrics against naive pair counting: each AUC averages the pairs its name says."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from genads.eval.ctr_metrics import log_loss, mean_request_auc, pooled_pair_auc, position_log_loss, roc_auc


def _pairs(score, click):
    """(wins, pairs) over every (click, non-click) pair of the given rows, ties one half."""
    wins = n = 0.0
    for i, j in itertools.product(range(len(score)), repeat=2):
        if click[i] > 0.5 and click[j] < 0.5:
            n += 1
            wins += 1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0
    return wins, n


def test_each_auc_equals_naive_pair_counting():
    rng = np.random.default_rng(0)
    score = np.round(rng.random((30, 4)), 1)  # rounded: ties occur
    click = (rng.random((30, 4)) < 0.3).astype(float)
    w, n = _pairs(score.ravel(), click.ravel())
    assert roc_auc(click.ravel(), score.ravel()) == pytest.approx(w / n)
    per = [_pairs(s, c) for s, c in zip(score, click, strict=True)]
    assert pooled_pair_auc(score, click) == pytest.approx(sum(w for w, _ in per) / sum(n for _, n in per))
    request = np.repeat(np.arange(30), 4)
    assert mean_request_auc(score.ravel(), click.ravel(), request) == pytest.approx(
        np.mean([w / n for w, n in per if n]))


def test_pooled_and_mean_request_auc_weigh_requests_differently():
    score = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    click = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # 3 pairs all right, then 4 pairs all wrong
    assert pooled_pair_auc(score, click) == pytest.approx(3 / 7)
    assert mean_request_auc(score.ravel(), click.ravel(), np.repeat([0, 1], 4)) == pytest.approx(0.5)
    assert np.isnan(roc_auc(np.ones(3), np.arange(3.0))) and np.isnan(pooled_pair_auc(score[:, :1], click[:, :1]))


def test_log_losses():
    y, p = np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.2, 0.5])
    assert log_loss(y, p) == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.5])))
    assert position_log_loss(np.array([0.9, 0.4]), np.array([1.0, 0.5]), np.array([1.0, 0.0])) == pytest.approx(
        -np.mean(np.log([0.9, 0.8])))
    assert np.isnan(log_loss(np.zeros(0), np.zeros(0)))
