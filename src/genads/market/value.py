"""Value-aware generation: a calibrated pCTR head on the parallel generator's own state.

The generator (:mod:`genads.parallel`) knows what a user will click next but not what a click is
worth. GR4AD and GPR put value inside generation; here the value head turns the generator's
history state ``h`` and an ad's representation (its code embeddings and ID embedding, the
generator's own) into a position-free pCTR, so the generation score can be the expected value of
showing the ad, ``log pCTR + alpha * log bid`` (eCPM), optionally mixed with the generator's
relevance ``log P(ad | history)``.

The head is bilinear with a per-ad bias and a learned weight on the generator's log-probability:

    logit(h, ad) = <U h, V x_ad> + b_ad + a * log P(ad | h) + c

so all live ads are scored with one matrix product (exact eCPM over the whole live catalogue, no
pre-selection). It is fitted on the impression log with the position-based click model
``P(click) = slot_ctr[slot] * sigmoid(logit)`` (the same likelihood as the cascade's DIN ranker), on
the first ``1 - holdout`` of the log's requests; the rest measures log-loss and within-request AUC,
and early stopping keeps the best epoch. ``factors=False`` keeps only ``a * log P + c`` (Platt
scaling of the generator's score): the "no value head" ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ValueConfig:
    d_value: int = 16
    """Width of the bilinear user/ad factors."""
    factors: bool = True
    """False: Platt scaling of the generator's log-probability only (the ablation without a value head)."""
    epochs: int = 20
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    holdout: float = 0.2
    """Share of the log's requests (the latest) held out for early stopping and the reported metrics."""
    patience: int = 3

    def __post_init__(self) -> None:
        for name in ("d_value", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr={self.lr} > 0 and weight_decay={self.weight_decay} >= 0")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout={self.holdout} must be in (0, 1)")


class ValueHead(nn.Module):
    """Position-free pCTR logits from a history state and ads (see the module docstring).

    Args:
        d_state: width of the generator's history state.
        item_features: (n_items + 1, f) fixed representation of every item index (row 0: padding).
    """

    def __init__(self, d_state: int, item_features: Tensor, cfg: ValueConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("features", item_features.detach().float().clone())
        n, f = item_features.shape
        self.user = nn.Linear(d_state, cfg.d_value)
        self.item = nn.Linear(f, cfg.d_value, bias=False)
        self.bias = nn.Embedding(n, 1)
        nn.init.zeros_(self.bias.weight)
        self.rel = nn.Parameter(torch.tensor(0.1))
        self.const = nn.Parameter(torch.tensor(-2.0))

    def logits(self, h: Tensor, logp: Tensor, items: Tensor | None = None) -> Tensor:
        """``h`` (B, D), ``logp`` (B, N) generator log-probabilities of ``items`` (N,) (default: every item
        index, in order) -> (B, N) logits."""
        out = self.rel * logp + self.const
        if not self.cfg.factors:
            return out
        idx = torch.arange(len(self.features)) if items is None else items
        ad = self.item(self.features[idx])  # (N, d)
        return out + self.user(h) @ ad.T + self.bias(idx)[:, 0][None]

    def pair_logits(self, h: Tensor, logp: Tensor, items: Tensor) -> Tensor:
        """One (history, ad) pair per row: ``h`` (M, D), ``logp`` (M,), ``items`` (M,) -> (M,) logits."""
        out = self.rel * logp + self.const
        if not self.cfg.factors:
            return out
        return out + (self.user(h) * self.item(self.features[items])).sum(-1) + self.bias(items)[:, 0]


def within_request_auc(score: np.ndarray, click: np.ndarray, request: np.ndarray) -> float:
    """Mean over requests with both a click and a non-click of the share of (click, non-click) pairs ranked right
    (ties count one half): how well a pCTR orders the ads one auction actually compares."""
    order = np.argsort(request, kind="stable")
    score, click, request = score[order], click[order], request[order]
    starts = np.flatnonzero(np.r_[True, request[1:] != request[:-1]])
    aucs = []
    for s, e in zip(starts, np.r_[starts[1:], len(request)], strict=True):
        pos, neg = score[s:e][click[s:e] > 0], score[s:e][click[s:e] <= 0]
        if len(pos) and len(neg):
            diff = pos[:, None] - neg[None]
            aucs.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(aucs)) if aucs else float("nan")


def position_logloss(p_click: Tensor, click: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy(p_click.clamp(1e-6, 1 - 1e-6), click)


def fit_value_head(head: ValueHead, h: Tensor, logp: Tensor, items: Tensor, slot: np.ndarray, click: np.ndarray,
                   request: np.ndarray, slot_ctr: np.ndarray, cfg: ValueConfig, seed: int) -> dict:
    """Fit on logged impressions (one row each): the history state ``h`` (M, D), the generator's ``logp`` (M,) of the
    shown ``items`` (M,), their ``slot``, ``click`` and ``request`` id (rows of one request share it; requests are
    in time order). Returns the training curve and the held-out log-loss / within-request AUC of the best epoch.
    """
    n_req = int(request.max()) + 1
    cut = round(n_req * (1.0 - cfg.holdout))
    train_rows = np.flatnonzero(request < cut)
    held = np.flatnonzero(request >= cut)
    if not len(train_rows) or not len(held):
        raise ValueError(f"value head: {n_req} requests are too few for holdout={cfg.holdout}")
    exam = torch.as_tensor(np.asarray(slot_ctr, dtype=np.float32)[slot])
    y = torch.as_tensor(click, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    t_rows = torch.from_numpy(train_rows)

    def held_out() -> tuple[float, np.ndarray]:
        with torch.no_grad():
            p = torch.sigmoid(head.pair_logits(h[held], logp[held], items[held]))
            return float(position_logloss(exam[held] * p, y[held])), p.numpy()

    best, best_state, curve, bad = float("inf"), None, [], 0
    for epoch in range(cfg.epochs):
        head.train()
        total = 0.0
        for idx in t_rows[torch.randperm(len(t_rows), generator=gen)].split(cfg.batch_size):
            p = exam[idx] * torch.sigmoid(head.pair_logits(h[idx], logp[idx], items[idx]))
            loss = position_logloss(p, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        head.eval()
        valid, _ = held_out()
        curve.append({"epoch": epoch + 1, "train_logloss": total / len(train_rows), "valid_logloss": valid})
        if valid < best - 1e-6:
            best, bad = valid, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    valid, p = held_out()
    base = float(y[torch.from_numpy(train_rows)].mean())
    prior = float(position_logloss(torch.full((len(held),), base), y[held]))
    return {"curve": curve, "valid_logloss": valid, "valid_logloss_constant": prior,
            "valid_auc_within_request": within_request_auc(p, click[held], request[held]),
            "valid_pctr_mean": float(p.mean()), "epochs": len(curve)}
