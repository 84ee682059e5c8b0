"""RQ-VAE (as in TIGER): an MLP auto-encoder whose latent is residual-quantised by L codebooks.

Codebooks are initialised by residual k-means on the initial latents (GPR's RQ-Kmeans+ idea),
trained with the VQ-VAE codebook + commitment losses and a straight-through estimator; codes that
no item used in an epoch are restarted on random residuals of that epoch's last batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from genads.tokenize.base import ShapeFromConfig, check_vectors
from genads.tokenize.rq_kmeans import RQKMeansConfig, RQKMeansTokenizer


@dataclass(frozen=True)
class RQVAEConfig:
    """Model and training settings."""

    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: tuple[int, ...] = (256, 128)
    """Encoder widths (the decoder mirrors them)."""
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    beta: float = 0.25
    """Commitment weight: beta * ||r - sg(e)||^2."""
    restart_dead: bool = True
    """Re-seed codes unused during an epoch on random residuals."""

    def __post_init__(self) -> None:
        for name in ("levels", "latent_dim", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size={self.codebook_size} must be >= 2")
        if self.lr <= 0 or self.beta < 0:
            raise ValueError(f"lr={self.lr} must be > 0 and beta={self.beta} >= 0")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Encoder -> residual quantiser (L x K x latent) -> decoder."""

    def __init__(self, in_dim: int, config: RQVAEConfig) -> None:
        super().__init__()
        sizes = [in_dim, *config.hidden, config.latent_dim]
        self.encoder = _mlp(sizes)
        self.decoder = _mlp(sizes[::-1])
        self.codebooks = nn.Parameter(torch.zeros(config.levels, config.codebook_size, config.latent_dim))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(z_q (B, D), codes (B, L), per-level VQ losses (L,) unweighted parts, residuals per level)."""
        residual, z_q, codes, residuals = z, torch.zeros_like(z), [], []
        codebook_loss, commit_loss = [], []
        for books in self.codebooks:  # books: (K, D)
            residuals.append(residual.detach())
            code = torch.cdist(residual.detach(), books.detach()).argmin(dim=1)  # (B,)
            e = books[code]  # (B, D)
            codebook_loss.append(((residual.detach() - e) ** 2).sum(1).mean())
            commit_loss.append(((residual - e.detach()) ** 2).sum(1).mean())
            z_q = z_q + e
            residual = residual - e.detach()
            codes.append(code)
        return z_q, torch.stack(codes, 1), torch.stack([torch.stack(codebook_loss), torch.stack(commit_loss)]), residuals

    def forward(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
        z = self.encoder(x)
        z_q, codes, vq, residuals = self.quantize(z)
        z_st = z + (z_q - z).detach()  # straight-through
        recon = self.decoder(z_st)
        loss = ((recon - x) ** 2).sum(1).mean() + vq[0].sum() + beta * vq[1].sum()
        return loss, codes, recon, residuals


class RQVAETokenizer(ShapeFromConfig):
    """RQ-VAE Semantic-ID tokenizer."""

    method = "rq-vae"

    def __init__(self, config: RQVAEConfig | None = None) -> None:
        self.config = config or RQVAEConfig()
        self.model: RQVAE | None = None
        self.history: list[dict[str, float]] = []
        """Per epoch: loss, restarted codes."""

    def _kmeans_init(self, x: torch.Tensor, seed: int) -> None:
        with torch.no_grad():
            z = self.model.encoder(x).numpy()
        rq = RQKMeansTokenizer(RQKMeansConfig(levels=self.levels, codebook_size=self.codebook_size, n_iter=10))
        rq.fit(z, seed=seed)
        self.model.codebooks.data.copy_(torch.from_numpy(rq.centroids))

    def _restart(self, used: torch.Tensor, residuals: list[torch.Tensor], gen: torch.Generator) -> int:
        restarted = 0
        with torch.no_grad():
            for level, res in enumerate(residuals):
                dead = torch.nonzero(~used[level]).flatten()
                if len(dead) and len(res):
                    pick = torch.randint(len(res), (len(dead),), generator=gen)
                    self.model.codebooks.data[level, dead] = res[pick]
                    restarted += len(dead)
        return restarted

    def fit(self, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
        """Train the RQ-VAE on (n, d) vectors; return codes (n, L) int64."""
        x = torch.from_numpy(check_vectors(vectors))
        cfg = self.config
        if len(x) < cfg.codebook_size:
            raise ValueError(f"codebook_size={cfg.codebook_size} is larger than the {len(x)} items to fit")
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = RQVAE(x.shape[1], cfg)
        self._kmeans_init(x, seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.history = []
        for _ in range(cfg.epochs):
            used = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.bool)
            perm, total = torch.randperm(len(x), generator=gen), 0.0
            for start in range(0, len(x), cfg.batch_size):
                loss, codes, _, residuals = self.model(x[perm[start:start + cfg.batch_size]], cfg.beta)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(codes)
                used[torch.arange(cfg.levels)[None, :].expand_as(codes), codes] = True
            restarted = self._restart(used, residuals, gen) if cfg.restart_dead else 0
            self.history.append({"loss": total / len(x), "restarted": restarted})
        return self.encode(x.numpy())

    def _check_fitted(self) -> RQVAE:
        if self.model is None:
            raise ValueError("RQVAETokenizer used before fit: call fit() or load a fitted tokenizer")
        return self.model

    @torch.no_grad()
    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes (n, L) of new vectors (nearest code per level on latent residuals)."""
        model = self._check_fitted()
        x = torch.from_numpy(check_vectors(vectors, dim=model.encoder[0].in_features))
        out = [model.quantize(model.encoder(x[s:s + 8192]))[1] for s in range(0, len(x), 8192)]
        return torch.cat(out).numpy().astype(np.int64) if out else np.zeros((0, self.levels), dtype=np.int64)

    @torch.no_grad()
    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """Decoded vectors (n, d) of codes (n, >= L)."""
        model = self._check_fitted()
        codes = torch.as_tensor(np.asarray(codes)[:, : self.levels], dtype=torch.int64)
        z_q = sum(model.codebooks[level][codes[:, level]] for level in range(self.levels))
        return model.decoder(z_q).numpy()

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        model = self._check_fitted()
        tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        return tensors, {"config": asdict(self.config), "in_dim": model.encoder[0].in_features,
                         "history": self.history}

    @classmethod
    def from_state(cls, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> RQVAETokenizer:
        tok = cls(RQVAEConfig(**meta["config"]))
        tok.model = RQVAE(int(meta["in_dim"]), tok.config)
        tok.model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        tok.history = list(meta.get("history", []))
        return tok
