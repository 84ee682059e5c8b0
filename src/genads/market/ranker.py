"""The cascade's pCTR ranker: a DIN-style model (Zhou et al., KDD 2018) trained on the impression log.

An item is embedded as its id embedding plus a projection of its content vector (so rarely shown
ads still get a sensible embedding). The candidate attends over the user's clicked items with DIN's
local activation unit (an MLP over ``[h, t, h - t, h * t]``); the attention-pooled interest, the
candidate and their product go through an MLP to a logit. Training follows the position-based click
model: ``P(click) = slot_ctr[slot] * sigmoid(logit)``, with the platform's position CTRs (known from
randomised traffic), so ``sigmoid(logit)`` is the position-free pCTR the auction needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from genads.market.logs import Impressions
from genads.slate.checkpoint import Progress
from genads.training import EarlyStopping


@dataclass(frozen=True)
class RankerConfig:
    d_model: int = 32
    hidden: int = 64
    epochs: int = 4
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-6
    patience: int = 1
    """Early stopping (:func:`fit_ranker_early`): stop after this many epochs without a lower held-out log-loss."""

    def __post_init__(self) -> None:
        for name in ("d_model", "hidden", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr={self.lr} > 0 and weight_decay={self.weight_decay} >= 0")


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DIN(nn.Module):
    """DIN over item indices (0 = padding); ``features`` (n_items, f) content vectors of items 1..n."""

    def __init__(self, features: np.ndarray, cfg: RankerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        feats = np.concatenate([np.zeros((1, features.shape[1]), np.float32), features.astype(np.float32)])
        self.register_buffer("features", torch.from_numpy(feats))
        self.item = nn.Embedding(len(feats), d, padding_idx=0)
        nn.init.normal_(self.item.weight, std=0.01)
        self.feat = nn.Linear(features.shape[1], d)
        self.att = mlp([4 * d, cfg.hidden, 1])
        self.out = mlp([3 * d, cfg.hidden, cfg.hidden // 2, 1])

    def embed(self, items: Tensor) -> Tensor:
        return self.item(items) + self.feat(self.features[items])

    def forward(self, history: Tensor, target: Tensor) -> Tensor:
        """history (B, L) item indices, target (B,) -> logit (B,)."""
        h, t = self.embed(history), self.embed(target)  # (B, L, d), (B, d)
        te = t[:, None].expand_as(h)
        w = self.att(torch.cat([h, te, h - te, h * te], dim=-1))[..., 0]  # (B, L)
        w = w.masked_fill(history == 0, -1e9)
        w = torch.softmax(w, dim=1) * (history > 0)  # an all-padding history pools to 0
        pooled = (w[..., None] * h).sum(1)  # (B, d)
        return self.out(torch.cat([t, pooled, t * pooled], dim=-1))[:, 0]

    @torch.no_grad()
    def pctr(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(B, C) position-free pCTR of candidate items (B, C) for histories (B, L); 0 where item <= 0."""
        self.eval()
        b, c = candidates.shape
        hist = torch.from_numpy(np.repeat(history, c, axis=0))
        cand = torch.from_numpy(np.maximum(candidates, 0).reshape(-1))
        p = torch.sigmoid(self(hist, cand)).reshape(b, c).double().numpy()
        return np.where(candidates > 0, p, 0.0)


def fit_ranker(model: DIN, imp: Impressions, slot_ctr: np.ndarray, cfg: RankerConfig, seed: int) -> list[float]:
    """Train on the impression log with the position-based likelihood; returns the loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist, item = torch.from_numpy(imp.history), torch.from_numpy(imp.item)
    exam = torch.as_tensor(slot_ctr, dtype=torch.float32)[torch.from_numpy(imp.slot)]
    y = torch.from_numpy(imp.click)
    return [_epoch(model, opt, gen, cfg.batch_size, hist, item, exam, y) for _ in range(cfg.epochs)]


def fit_ranker_early(model: DIN, train: Impressions, held: Impressions, k: int, slot_ctr: np.ndarray,
                     cfg: RankerConfig, seed: int) -> dict:
    """Train on ``train`` with the position-based likelihood, early-stopped on the held-out requests ``held``
    (``k`` rows a request): after each epoch the held-out log-loss; the best epoch's weights are kept.

    Returns the curve and the best epoch's held-out log-loss and within-request AUC (the figures the value head
    reports on the same requests, :func:`genads.market.value.fit_value_head`).
    """
    from genads.eval.ctr_metrics import mean_request_auc  # one definition for DIN and the value head
    from genads.market.pctr_eval import log_loss

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist, item = torch.from_numpy(train.history), torch.from_numpy(train.item)
    exam = torch.as_tensor(slot_ctr, dtype=torch.float32)[torch.from_numpy(train.slot)]
    y = torch.from_numpy(train.click)
    n = len(held.item) // k
    h_exam = np.asarray(slot_ctr)[held.slot].reshape(n, k)
    h_click = held.click.reshape(n, k).astype(float)

    def held_out() -> tuple[float, float]:
        p = np.concatenate([model.pctr(held.history[s:s + 4096], held.item[s:s + 4096, None])[:, 0]
                            for s in range(0, len(held.item), 4096)]).reshape(n, k)
        req = np.repeat(np.arange(n), k)
        return log_loss(p, h_exam, h_click), mean_request_auc(p.reshape(-1), h_click.reshape(-1), req)

    curve, record, stopper = [], Progress(best=-math.inf), EarlyStopping(cfg.patience, min_delta=1e-6)
    for epoch in range(cfg.epochs):
        train = _epoch(model, opt, gen, cfg.batch_size, hist, item, exam, y)
        valid, auc = held_out()
        curve.append({"epoch": epoch + 1, "train_logloss": train, "valid_logloss": valid, "valid_auc": auc})
        if not stopper.update(record, -valid, model) and record.stale >= cfg.patience:  # on -(held-out log-loss)
            break
    stopper.restore(model)
    model.eval()
    valid, auc = held_out()
    return {"curve": curve, "epochs": len(curve), "valid_logloss": valid, "valid_auc_within_request": auc}


def _epoch(model, opt, gen: torch.Generator, batch_size: int, hist, item, exam, y) -> float:
    """One pass over the impressions in a random order; the mean position-aware click log-loss."""
    model.train()
    total = 0.0
    for idx in torch.randperm(len(y), generator=gen).split(batch_size):
        p = (exam[idx] * torch.sigmoid(model(hist[idx], item[idx]))).clamp(1e-6, 1 - 1e-6)
        loss = nn.functional.binary_cross_entropy(p, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / len(y)
