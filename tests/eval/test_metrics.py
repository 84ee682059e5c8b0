import numpy as np
import pytest
import torch

from genads.eval.metrics import dedupe_ranked, hit_ranks, ranking_metrics, topk_from_scores


def test_recall_and_ndcg_by_hand():
    ranked = np.array([[3, 1, 2, 4, 5], [9, 8, 7, 6, 5], [1, 2, 3, 4, 5]])
    targets = np.array([1, 5, 42])  # hit at rank 1, hit at rank 4, miss
    m = ranking_metrics(ranked, targets, ks=(1, 5))
    assert m["recall@1"] == 0.0
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["hr@5"] == m["recall@5"]
    assert m["ndcg@5"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(6)) / 3)


def test_colliding_items_count_once():
    # A generative model that names item 7 three times gets one chance, not three.
    ranked = np.array([[7, 7, 7, 2, 3]])
    assert dedupe_ranked(ranked).tolist() == [[7, -1, -1, 2, 3]]
    assert hit_ranks(ranked, np.array([3])).tolist() == [4]
    assert ranking_metrics(ranked, np.array([7]), ks=(5,))["ndcg@5"] == pytest.approx(1.0)


def test_short_lists_are_refused():
    with pytest.raises(ValueError, match="fewer than K"):
        ranking_metrics(np.zeros((2, 5), dtype=int), np.array([1, 2]), ks=(10,))


def test_topk_never_returns_padding_or_excluded():
    scores = torch.tensor([[9.0, 1.0, 5.0, 3.0], [9.0, 4.0, 2.0, 8.0]])
    top = topk_from_scores(scores, 2, exclude=torch.tensor([[2, 0], [0, 0]]))
    assert top.tolist() == [[3, 1], [3, 1]]
