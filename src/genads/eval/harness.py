"""The evaluation harness: any recommender, one protocol, full ranking over the catalogue."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from genads.data.split import EvalSet, SequenceSplit
from genads.eval.metrics import KS, ranking_metrics, taac_score


class Recommender(Protocol):
    """Anything that ranks items for histories: popularity, SASRec, the generative slate model."""

    name: str

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = True) -> list[dict]:
        """Train on ``split.train`` (validation may steer early stopping); return a log row per epoch."""
        ...

    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        """Ranked item indices (n, k) for left-padded histories (n, L); no padding index 0."""
        ...


def rank_all(model: Recommender, eval_set: EvalSet, k: int, batch_size: int = 1024) -> np.ndarray:
    """Ranked lists (n, k) for every case of ``eval_set``.

    A model whose ``uses_users`` attribute is true (the slate model with a user token) also gets each
    case's raw user id as ``recommend(history, k, users=...)``, so it is scored exactly as it was trained.
    """
    with_users = bool(getattr(model, "uses_users", False))
    parts = []
    for i in range(0, len(eval_set), batch_size):
        history = eval_set.history[i:i + batch_size]
        parts.append(model.recommend(history, k, users=eval_set.users[i:i + batch_size]) if with_users
                     else model.recommend(history, k))
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.int64)


def evaluate(model: Recommender, eval_set: EvalSet, ks: tuple[int, ...] = KS, batch_size: int = 1024) -> dict[str, float]:
    """Recall/HR/NDCG@K of ``model`` on ``eval_set`` (full ranking), and the TAAC 2025 score when K = 10 is
    asked for (action-weighted too when the cases know their targets' actions)."""
    ranked = rank_all(model, eval_set, max(ks), batch_size)
    out = ranking_metrics(ranked, eval_set.target, ks)
    if 10 in ks:
        out.update(taac_score(ranked, eval_set.target, getattr(eval_set, "target_action", None)))
    return out


def evaluate_split(model: Recommender, split: SequenceSplit, ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """Metrics on the validation and the test cases."""
    return {"valid": evaluate(model, split.valid, ks), "test": evaluate(model, split.test, ks)}
