"""PQ codes, the parallel family's tokenizer (beside the SID tokenizers): every ad gets ``m`` codes of
``2**nbits`` values from product quantisation (PCA → OPQ → PQ).

Where Semantic IDs (RQ-KMeans, RQ-VAE) are short and hierarchical so that a trie can spell them, these
codes are long and flat (RPG, KDD'25: 32 × 256 for Amazon Beauty): each code describes one rotated
sub-space of the item vector, no code depends on another, and an item is scored by summing one
log-probability per code. Faiss fits the OPQ rotation and the PQ centroids; the fitted transform is
then kept as plain arrays (PCA mean/basis, rotation, centroids) in safetensors, so that encoding a new
ad at serving time (cold start) needs neither faiss nor retraining, and nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from genads.data.dataset import atomic_write_text
from genads.slate.checkpoint import _atomic

CODEBOOK_FILE, CODEBOOK_META = "codebook.safetensors", "codebook.json"


@dataclass(frozen=True)
class PQConfig:
    """How the codes are made. ``n_codes``/``nbits``/``dim`` are upper bounds: :func:`sized_for` fits them to the data."""

    n_codes: int = 32
    """m, codes per item (sub-spaces)."""
    nbits: int = 8
    """Each code takes 2**nbits values (8: 256)."""
    dim: int = 128
    """PCA dimension before the rotation (a multiple of n_codes)."""
    whiten: bool = True
    """Divide the PCA components by their standard deviation (RPG whitens before OPQ)."""
    opq: bool = True
    """Learn a rotation that balances the sub-spaces (OPQ); False: plain PQ."""
    opq_iterations: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.nbits <= 16:
            raise ValueError(f"nbits={self.nbits} must be in [1, 16]")
        for name in ("n_codes", "dim", "opq_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.dim % self.n_codes:
            raise ValueError(f"dim={self.dim} must be a multiple of n_codes={self.n_codes}")

    @property
    def codebook_size(self) -> int:
        return 2**self.nbits


def sized_for(cfg: PQConfig, n_items: int, in_dim: int) -> PQConfig:
    """The config, shrunk where the data is too small: at least 39 items per code value (faiss's k-means
    minimum), at most the input's dimension, and m dividing the PCA dimension. Beauty (12k items, 1.3k dims)
    keeps 32 × 256 over 128; the demo's 3.7k ads get 32 × 64."""
    nbits = max(1, min(cfg.nbits, int(math.log2(n_items / 39)) if n_items >= 78 else 1))
    dim = min(cfg.dim, in_dim, n_items - 1 if n_items > 1 else 1)
    n_codes = min(cfg.n_codes, dim)
    dim = max(n_codes, dim // n_codes * n_codes)
    return PQConfig(n_codes=n_codes, nbits=nbits, dim=dim, whiten=cfg.whiten, opq=cfg.opq,
                    opq_iterations=cfg.opq_iterations, seed=cfg.seed)


class PQCodebook:
    """A fitted PCA → rotation → PQ transform: ``encode(vectors) -> (n, m) codes``."""

    def __init__(self, config: PQConfig, mean: np.ndarray, basis: np.ndarray, rotation: np.ndarray,
                 centroids: np.ndarray) -> None:
        self.config = config
        self.mean = mean.astype(np.float32)            # (d_in,)
        self.basis = basis.astype(np.float32)          # (d_in, dim): PCA, whitening folded in
        self.rotation = rotation.astype(np.float32)    # (dim, dim): y = x @ rotation.T
        self.centroids = centroids.astype(np.float32)  # (m, K, dim / m)
        m, k, _ = self.centroids.shape
        if (m, k) != (config.n_codes, config.codebook_size):
            raise ValueError(f"centroids {self.centroids.shape} do not match the config ({config.n_codes} x "
                             f"{config.codebook_size})")

    @property
    def in_dim(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def fit(cls, vectors: np.ndarray, config: PQConfig | None = None) -> PQCodebook:
        """Fit on ``vectors`` (n, d_in); the config is first shrunk to the data (:func:`sized_for`)."""
        import faiss

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"vectors must be (n >= 2, d), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("vectors contain NaN or infinite values")
        cfg = sized_for(config or PQConfig(), len(x), x.shape[1])
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        basis = vt[:cfg.dim].T  # (d_in, dim)
        if cfg.whiten:
            std = s[:cfg.dim] / math.sqrt(len(x) - 1)
            basis = basis / np.maximum(std, 1e-6 * max(float(std.max()), 1e-12))
        z = np.ascontiguousarray((x - mean) @ basis, dtype=np.float32)
        if basis.shape[1] < cfg.dim:  # fewer components than asked (tiny data): pad with zeros
            z = np.pad(z, ((0, 0), (0, cfg.dim - basis.shape[1])))
            basis = np.pad(basis, ((0, 0), (0, cfg.dim - basis.shape[1])))
        rotation = np.eye(cfg.dim, dtype=np.float32)
        if cfg.opq and cfg.n_codes > 1:
            opq = faiss.OPQMatrix(cfg.dim, cfg.n_codes)
            opq.niter = cfg.opq_iterations
            opq.verbose = False
            inner = faiss.ProductQuantizer(cfg.dim, cfg.n_codes, cfg.nbits)  # OPQ's own PQ: our code size
            inner.cp.seed = cfg.seed
            opq.pq = inner
            opq.train(z)
            rotation = faiss.vector_to_array(opq.A).reshape(cfg.dim, cfg.dim)
            z = np.ascontiguousarray(z @ rotation.T, dtype=np.float32)
        pq = faiss.ProductQuantizer(cfg.dim, cfg.n_codes, cfg.nbits)
        pq.cp.seed = cfg.seed
        pq.verbose = False
        pq.train(z)
        centroids = faiss.vector_to_array(pq.centroids).reshape(cfg.n_codes, cfg.codebook_size, cfg.dim // cfg.n_codes)
        return cls(cfg, mean, basis, rotation, centroids)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"vectors must be (n, {self.in_dim}), got {x.shape}")
        return ((x - self.mean) @ self.basis) @ self.rotation.T

    def encode(self, vectors: np.ndarray, batch: int = 65536) -> np.ndarray:
        """(n, m) int64 codes: the nearest centroid in each sub-space (exactly faiss's PQ assignment)."""
        m, _, dsub = self.centroids.shape
        out = np.empty((len(vectors), m), dtype=np.int64)
        c_sq = (self.centroids**2).sum(-1)  # (m, K)
        for i in range(0, len(vectors), batch):
            z = self.transform(vectors[i:i + batch]).reshape(-1, m, dsub)  # (b, m, dsub)
            dist = c_sq[None] - 2 * np.einsum("bmd,mkd->bmk", z, self.centroids)
            out[i:i + batch] = dist.argmin(-1)
        return out

    def save(self, folder: str | Path) -> None:
        """``codebook.safetensors`` (arrays) + ``codebook.json`` (config), both written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"mean": self.mean, "basis": self.basis, "rotation": self.rotation, "centroids": self.centroids}
        _atomic(folder / CODEBOOK_FILE, lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                                                              tmp))
        atomic_write_text(folder / CODEBOOK_META, json.dumps(asdict(self.config), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> PQCodebook:
        folder = Path(folder)
        for name in (CODEBOOK_FILE, CODEBOOK_META):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: no parallel-code codebook in {folder}")
        arrays = load_file(str(folder / CODEBOOK_FILE))
        return cls(PQConfig(**json.loads((folder / CODEBOOK_META).read_text())), **arrays)
