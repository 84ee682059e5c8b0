"""Learned long codes for the parallel-code generator: OPQ/PQ codes refined end to end.

PQ codes (:mod:`genads.tokenize.pq`) minimise reconstruction error only: two items that users take
together but whose vectors sit a little apart get unrelated codes. This module starts from a fitted
:class:`~genads.tokenize.pq.PQCodebook` (PCA → OPQ rotation → PQ centroids) and trains the rotation and
the centroids as a differentiable product quantiser (DPQ, Chen et al. 2020; JPQ, Zhan et al. 2021):
every sub-vector picks its code by a straight-through softmax over negative squared distances, and the
quantised vector is trained with

* **reconstruction**: the squared error between the rotated vector and its quantisation (PQ's own
  objective, so the codes stay descriptive);
* **collaborative**: in-batch InfoNCE between the quantised vectors of item pairs that co-occur in
  training sequences (validation and test events never reach it: the caller passes training pairs);
* **balance**: KL of every sub-space's batch-mean code distribution to uniform (no dead codes);
* **orthogonality**: ||R Rᵀ − I||², so the rotation stays a rotation.

The input projection (PCA basis) is trained as well by default: PCA keeps the high-variance directions,
and the collaborative term can bring back a low-variance one on which co-occurring items agree.

The result is again a ``PQCodebook`` (same arrays, same nearest-centroid ``encode``), so the generator,
serving and cold-start encoding read it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from genads.tokenize.pq import PQCodebook


@dataclass(frozen=True)
class LearnedCodesConfig:
    """Training settings of the differentiable refinement."""

    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    tau: float = 1.0
    """Temperature of the soft code choice (over squared distances scaled by the sub-space's mean spread)."""
    temperature: float = 0.1
    """Temperature of the collaborative InfoNCE (cosine)."""
    w_reconstruction: float = 1.0
    w_collaborative: float = 1.0
    w_balance: float = 0.1
    w_orthogonal: float = 1.0
    learn_rotation: bool = True
    learn_projection: bool = True
    """Train the input projection (the PCA basis, d_in x dim) too: it can bring in directions PCA left out
    (low-variance features on which co-occurring items agree)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("lr", "tau", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("w_reconstruction", "w_collaborative", "w_balance", "w_orthogonal"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


class _DPQ(torch.nn.Module):
    def __init__(self, codebook: PQCodebook) -> None:
        super().__init__()
        self.basis = torch.nn.Parameter(torch.from_numpy(codebook.basis.copy()))  # (d_in, dim)
        self.rotation = torch.nn.Parameter(torch.from_numpy(codebook.rotation.copy()))
        self.centroids = torch.nn.Parameter(torch.from_numpy(codebook.centroids.copy()))  # (m, K, dsub)

    def forward(self, x: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centred vectors (B, d_in) -> (rotated sub-vectors (B, m, dsub), quantised (B, m, dsub) straight-through,
        soft codes (B, m, K))."""
        m, k, dsub = self.centroids.shape
        y = ((x @ self.basis) @ self.rotation.T).view(len(x), m, dsub)
        dist = (y**2).sum(-1, keepdim=True) - 2 * torch.einsum("bmd,mkd->bmk", y, self.centroids) \
            + (self.centroids**2).sum(-1)[None]
        scale = dist.detach().mean((0, 2), keepdim=True).clamp_min(1e-6)  # per sub-space spread
        soft = F.softmax(-dist / (scale * tau), dim=-1)
        hard = F.one_hot(dist.argmin(-1), k).float()
        onehot = hard + soft - soft.detach()
        return y, torch.einsum("bmk,mkd->bmd", onehot, self.centroids), soft


def refine_codebook(codebook: PQCodebook, vectors: np.ndarray, pairs: np.ndarray | None,
                    config: LearnedCodesConfig | None = None, seed: int = 0) -> tuple[PQCodebook, list[dict]]:
    """Train the rotation and centroids of ``codebook`` on ``vectors`` (n, d_in) and co-occurring row ``pairs``
    (m, 2) (training events only); return (the refined codebook, per-epoch mean losses)."""
    cfg = config or LearnedCodesConfig()
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != codebook.in_dim:
        raise ValueError(f"vectors must be (n, {codebook.in_dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"vectors row {int(np.flatnonzero(~np.isfinite(x).all(1))[0])} has NaN or infinite values")
    pairs_t = None
    if pairs is not None and len(pairs):
        pairs_t = torch.from_numpy(np.asarray(pairs, dtype=np.int64))
        if pairs_t.ndim != 2 or pairs_t.shape[1] != 2 or pairs_t.min() < 0 or pairs_t.max() >= len(x):
            raise ValueError(f"pairs must be (m, 2) rows in [0, {len(x)}), got shape {tuple(pairs_t.shape)}")
    z = torch.from_numpy(np.ascontiguousarray(x - codebook.mean, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    model = _DPQ(codebook)
    model.rotation.requires_grad_(cfg.learn_rotation)
    model.basis.requires_grad_(cfg.learn_projection)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    eye = torch.eye(model.rotation.shape[0])
    k = codebook.config.codebook_size
    history = []
    for _ in range(cfg.epochs):
        perm, sums, n_batches = torch.randperm(len(z), generator=gen), {}, 0
        for start in range(0, len(z), cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            y, q, soft = model(z[idx], cfg.tau)
            parts = {"reconstruction": ((y - q) ** 2).sum((1, 2)).mean() / y[0].numel()}
            mean_p = soft.mean(0)  # (m, K)
            parts["balance"] = (mean_p * torch.log(mean_p * k + 1e-9)).sum(-1).mean()
            parts["orthogonal"] = ((model.rotation @ model.rotation.T - eye) ** 2).sum() if cfg.learn_rotation \
                else z.new_zeros(())
            if pairs_t is not None and cfg.w_collaborative > 0:
                pick = pairs_t[torch.randint(len(pairs_t), (cfg.batch_size // 2,), generator=gen)]
                _, qa, _ = model(z[pick[:, 0]], cfg.tau)
                _, qb, _ = model(z[pick[:, 1]], cfg.tau)
                sim = F.normalize(qa.flatten(1), dim=-1) @ F.normalize(qb.flatten(1), dim=-1).T / cfg.temperature
                positive = (pick[:, 1][None, :] == pick[:, 1][:, None]).float()  # duplicates of a positive too
                parts["collaborative"] = -((F.log_softmax(sim, 1) * positive).sum(1) / positive.sum(1)).mean()
            loss = sum(getattr(cfg, f"w_{name}") * v for name, v in parts.items())
            opt.zero_grad()
            loss.backward()
            opt.step()
            n_batches += 1
            for name, v in parts.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach())
        history.append({name: v / n_batches for name, v in sums.items()})
    refined = PQCodebook(replace(codebook.config), codebook.mean, model.basis.detach().numpy(),
                         model.rotation.detach().numpy(), model.centroids.detach().numpy())
    return refined, history
