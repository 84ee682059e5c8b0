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


PROTOCOLS: dict[str, bool] = {"all": False, "excl": True}
"""The two ranking protocols every table reports: "all" = nothing ruled out (TIGER and the generative papers),
"excl" = the user's history ruled out (S3-Rec, RecBole, the eSASRec benchmark: RecTools' ``filter_viewed``)."""


def rule_out_history(ranked: np.ndarray, history: np.ndarray, k: int) -> np.ndarray:
    """(n, k): each row of ``ranked`` (n, K) without the items of its ``history`` row (n, L), order kept.

    Padding (0) and empty slots (-1) are dropped too; a row left with fewer than k items is filled with -1.
    """
    ranked, history = np.asarray(ranked, dtype=np.int64), np.asarray(history, dtype=np.int64)
    n = len(ranked)
    span = int(max(ranked.max(initial=0), history.max(initial=0))) + 1
    base = (np.arange(n, dtype=np.int64) * span)[:, None]  # row i's items become i * span + item: one isin for all
    kind = "table" if n * span <= 1 << 27 else None  # a lookup table of n * span bits when it is small
    seen = np.isin(ranked + base, (history + base)[history > 0], kind=kind)  # (n, K)
    keep = (ranked > 0) & ~seen
    pos = np.cumsum(keep, axis=1) - 1  # where each kept item lands
    rows, cols = np.nonzero(keep & (pos < k))
    out = np.full((n, k), -1, dtype=np.int64)
    out[rows, pos[rows, cols]] = ranked[rows, cols]
    return out


def rank_all(model: Recommender, eval_set: EvalSet, k: int, batch_size: int = 1024,
             exclude_history: bool = False) -> np.ndarray:
    """Ranked lists (n, k) for every case of ``eval_set``.

    ``exclude_history``: rule the history out. The model is asked for k + (distinct history items of the batch)
    items and the history is then removed, so any model, a generator that may repeat a history item included, is
    ranked under that protocol; for a model that ranks by scores this equals masking the history's scores.
    A model with a ``max_k`` attribute (beam search: its beam width) is asked for at most that many (at least k),
    so where history items fill its beam its list comes back shorter than k (-1 slots, never a hit).
    A model whose ``uses_users`` attribute is true (the slate model with a user token) also gets each
    case's raw user id as ``recommend(history, k, users=...)``, so it is scored exactly as it was trained.
    """
    with_users = bool(getattr(model, "uses_users", False))
    cap = getattr(model, "max_k", None)
    parts = []
    for i in range(0, len(eval_set), batch_size):
        history = eval_set.history[i:i + batch_size]
        fetch = k + int((history > 0).sum(1).max(initial=0)) if exclude_history else k
        fetch = max(k, min(fetch, cap)) if cap else fetch
        ranked = (model.recommend(history, fetch, users=eval_set.users[i:i + batch_size]) if with_users
                  else model.recommend(history, fetch))
        parts.append(rule_out_history(ranked, history, k) if exclude_history else ranked)
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.int64)


def evaluate(model: Recommender, eval_set: EvalSet, ks: tuple[int, ...] = KS, batch_size: int = 1024,
             exclude_history: bool = False) -> dict[str, float]:
    """Recall/HR/NDCG@K of ``model`` on ``eval_set`` (full ranking; the history ruled out when
    ``exclude_history``), and the TAAC 2025 score when K = 10 is asked for (action-weighted too when the cases
    know their targets' actions)."""
    ranked = rank_all(model, eval_set, max(ks), batch_size, exclude_history)
    out = ranking_metrics(ranked, eval_set.target, ks)
    if 10 in ks:
        out.update(taac_score(ranked, eval_set.target, getattr(eval_set, "target_action", None)))
    return out


def evaluate_split(model: Recommender, split: SequenceSplit, ks: tuple[int, ...] = KS,
                   exclude_history: bool = False) -> dict[str, dict[str, float]]:
    """Metrics on the validation and the test cases, under one protocol."""
    return {"valid": evaluate(model, split.valid, ks, exclude_history=exclude_history),
            "test": evaluate(model, split.test, ks, exclude_history=exclude_history)}


def evaluate_split_both(model: Recommender, split: SequenceSplit, ks: tuple[int, ...] = KS) -> dict:
    """``evaluate_split`` with nothing ruled out (keys "valid", "test") and with the history ruled out (under
    "history_ruled_out": {"valid", "test"}): the record every command writes for every model."""
    return {**evaluate_split(model, split, ks), "history_ruled_out": evaluate_split(model, split, ks, True)}


def evaluate_protocols(model: Recommender, eval_set: EvalSet, ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """Metrics under both protocols side by side: ``{"all": ..., "excl": ...}`` (see PROTOCOLS)."""
    return {name: evaluate(model, eval_set, ks, exclude_history=excl) for name, excl in PROTOCOLS.items()}


def drop_unseen_targets(eval_set: EvalSet, seen: np.ndarray) -> tuple[EvalSet, int]:
    """The cases whose target is among the ``seen`` item indices, and how many were dropped.

    The eSASRec benchmark's protocol: a model that knows only the items of its training data cannot rank an item it
    never saw, so users whose test item never occurs in training (train + validation) are left out.
    """
    keep = np.isin(eval_set.target, np.asarray(seen))
    action = eval_set.target_action[keep] if eval_set.target_action is not None else None
    kept = EvalSet(eval_set.users[keep], eval_set.history[keep], eval_set.target[keep], action)
    return kept, int((~keep).sum())


def seen_items(split: SequenceSplit) -> np.ndarray:
    """Item indices that occur in training: the training sequences and the validation targets."""
    return np.union1d(np.concatenate(split.train) if split.train else np.zeros(0, np.int64), split.valid.target)
