from __future__ import annotations

import numpy as np

from genads.market.logs import Impressions
from genads.market.pctr_eval import log_loss, score_pctr, within_request_auc


def test_within_request_auc_counts_pairs_of_the_same_request_only() -> None:
    score = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.8]])
    click = np.array([[1, 0, 0], [1, 0, 0]])
    # request 0: clicked 0.9 beats both (2/2); request 1: clicked 0.2 loses both (0/2)
    assert within_request_auc(score, click) == 0.5
    assert np.isnan(within_request_auc(score, np.zeros((2, 3))))
    # a user effect that shifts a whole request does not change it
    assert within_request_auc(score + np.array([[5.0], [-5.0]]), click) == 0.5


def test_log_loss_is_minimised_by_the_true_rate() -> None:
    rng = np.random.default_rng(0)
    click = (rng.random(20000) < 0.2).astype(float)
    exam = np.full(20000, 0.5)
    assert log_loss(np.full(20000, 0.4), exam, click) < min(log_loss(np.full(20000, 0.3), exam, click),
                                                             log_loss(np.full(20000, 0.5), exam, click))


def test_score_pctr_groups_rows_by_request() -> None:
    imp = Impressions(user=np.repeat([0, 1], 2), history=np.zeros((4, 3), np.int64), item=np.array([1, 2, 3, 4]),
                      slot=np.tile([0, 1], 2), click=np.array([1, 0, 0, 1], np.float32))
    out = score_pctr(lambda h, i, u: i / 10.0, imp, 2, np.array([1.0, 0.5]))
    assert out["requests"] == 2 and out["within_request_auc"] == 0.5
