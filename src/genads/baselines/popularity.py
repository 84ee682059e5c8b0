"""Most-popular items: the floor every personalised model must clear."""

from __future__ import annotations

import numpy as np

from genads.data.split import SequenceSplit


class Popularity:
    """Ranks items by their count in the training sequences (ties: lower index first)."""

    name = "popularity"

    def __init__(self, exclude_history: bool = False) -> None:
        self.exclude_history = exclude_history
        self.order: np.ndarray | None = None

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = True) -> list[dict]:
        counts = np.bincount(np.concatenate(split.train) if split.train else np.zeros(0, np.int64),
                             minlength=split.n_items + 1).astype(np.float64)
        counts[0] = -1.0  # padding is never recommended
        self.order = np.argsort(-counts, kind="stable")[: split.n_items]
        return []

    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        if self.order is None:
            raise RuntimeError("Popularity.recommend called before fit")
        if not self.exclude_history:
            return np.tile(self.order[:k], (len(history), 1))
        out = np.empty((len(history), k), dtype=np.int64)
        for i, h in enumerate(history):
            seen = set(h[h > 0].tolist())
            out[i] = [j for j in self.order[: k + len(seen)] if j not in seen][:k]
        return out
