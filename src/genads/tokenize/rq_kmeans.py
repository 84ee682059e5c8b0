"""RQ-KMeans: residual k-means with faiss (as in OneRec / GPR), with optional balanced assignment.

Level 1 clusters the vectors; level l clusters what is left after subtracting the chosen centroids
of levels 1..l-1. Balanced assignment (OneRec's balanced k-means) caps every cluster at
ceil(n / K) items, which spreads items over the codebook and lowers collisions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from genads.tokenize.base import check_vectors


@dataclass(frozen=True)
class RQKMeansConfig:
    """Residual k-means settings."""

    levels: int = 3
    """Number of code levels L."""
    codebook_size: int = 256
    """Centroids per level K."""
    n_iter: int = 20
    """Lloyd iterations of faiss k-means per level."""
    max_points_per_centroid: int = 256
    """faiss trains each level on at most K * this many sampled points (assignment uses all)."""
    balanced: bool = False
    """Cap clusters at ceil(n/K) items (balanced k-means refinement + capacity-constrained assignment)."""
    balanced_iter: int = 5
    """Balanced Lloyd refinement rounds after the faiss initialisation (only with ``balanced``)."""

    def __post_init__(self) -> None:
        for name in ("levels", "codebook_size", "n_iter", "max_points_per_centroid"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size={self.codebook_size} must be >= 2")
        if self.balanced_iter < 0:
            raise ValueError(f"balanced_iter={self.balanced_iter} must be >= 0")


def sq_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, K) squared Euclidean distances."""
    d = (x * x).sum(1, keepdims=True) - 2.0 * (x @ centroids.T) + (centroids * centroids).sum(1)[None, :]
    return np.maximum(d, 0.0)


def balanced_assign(distances: np.ndarray, capacity: int | None = None) -> np.ndarray:
    """Capacity-constrained assignment: each point to a near centroid, no centroid over ``capacity``.

    Rounds of proposals: every unassigned point proposes to its nearest centroid that still has
    room; each centroid keeps its closest proposers up to its remaining room. Deterministic.

    Args:
        distances: (n, K) point-centroid distances.
        capacity: items per centroid, default ceil(n / K).

    Returns:
        (n,) int64 assignment.
    """
    n, k = distances.shape
    capacity = capacity or -(-n // k)
    if capacity * k < n:
        raise ValueError(f"capacity={capacity} x {k} centroids cannot hold {n} points")
    room = np.full(k, capacity, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        d = distances[todo].copy()
        d[:, room == 0] = np.inf
        choice = d.argmin(1)
        dist = d[np.arange(len(todo)), choice]
        order = np.lexsort((dist, choice))  # by centroid, then distance
        ch = choice[order]
        starts = np.r_[0, np.flatnonzero(np.diff(ch)) + 1]
        rank = np.arange(len(ch)) - np.repeat(starts, np.diff(np.r_[starts, len(ch)]))
        accept = rank < room[ch]
        winners = todo[order[accept]]
        out[winners] = ch[accept]
        np.subtract.at(room, ch[accept], 1)
        todo = np.setdiff1d(todo, winners, assume_unique=True)
    return out


class RQKMeansTokenizer:
    """Residual k-means tokenizer (faiss)."""

    method = "rq-kmeans"

    def __init__(self, config: RQKMeansConfig | None = None) -> None:
        self.config = config or RQKMeansConfig()
        self.centroids: np.ndarray | None = None
        """(L, K, d) float32 after fit."""

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _kmeans(self, x: np.ndarray, seed: int) -> np.ndarray:
        cfg = self.config
        km = faiss.Kmeans(x.shape[1], cfg.codebook_size, niter=cfg.n_iter, seed=seed, verbose=False,
                          max_points_per_centroid=cfg.max_points_per_centroid, min_points_per_centroid=1)
        km.train(x)
        return np.asarray(km.centroids, dtype=np.float32)

    def _balanced(self, x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = balanced_assign(sq_distances(x, centroids))
        for _ in range(self.config.balanced_iter):
            sums = np.zeros_like(centroids, dtype=np.float64)
            np.add.at(sums, codes, x)
            counts = np.bincount(codes, minlength=len(centroids))[:, None]
            centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids).astype(np.float32)
            codes = balanced_assign(sq_distances(x, centroids))
        return centroids, codes

    def fit(self, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
        """Fit L levels of k-means on residuals; return codes (n, L) int64."""
        x = check_vectors(vectors)
        cfg = self.config
        if len(x) < cfg.codebook_size:
            raise ValueError(f"codebook_size={cfg.codebook_size} is larger than the {len(x)} items to fit")
        residual = x.copy()
        books, codes = [], []
        for level in range(cfg.levels):
            centroids = self._kmeans(residual, seed + 1000 * level)
            if cfg.balanced:
                centroids, code = self._balanced(residual, centroids)
            else:
                code = self._nearest(residual, centroids)
            residual -= centroids[code]
            books.append(centroids)
            codes.append(code)
        self.centroids = np.stack(books)
        return np.stack(codes, axis=1)

    @staticmethod
    def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        index = faiss.IndexFlatL2(centroids.shape[1])
        index.add(centroids)
        _, idx = index.search(x, 1)
        return idx[:, 0].astype(np.int64)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Nearest centroid per level on residuals (no capacity limit for new items)."""
        if self.centroids is None:
            raise ValueError("RQKMeansTokenizer.encode before fit: call fit() or load a fitted tokenizer")
        residual = check_vectors(vectors, dim=self.centroids.shape[2]).copy()
        codes = []
        for books in self.centroids:
            code = self._nearest(residual, books)
            residual -= books[code]
            codes.append(code)
        return np.stack(codes, axis=1)

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """Sum of the chosen centroids: (n, d)."""
        if self.centroids is None:
            raise ValueError("RQKMeansTokenizer.reconstruct before fit")
        codes = np.asarray(codes, dtype=np.int64)[:, : self.levels]
        return sum(self.centroids[level][codes[:, level]] for level in range(self.levels))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.centroids is None:
            raise ValueError("cannot save an RQKMeansTokenizer before fit")
        return {"centroids": self.centroids}, {"config": asdict(self.config)}

    @classmethod
    def from_state(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> RQKMeansTokenizer:
        tok = cls(RQKMeansConfig(**meta["config"]))
        tok.centroids = tensors["centroids"].astype(np.float32)
        return tok
