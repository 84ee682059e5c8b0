"""Fitting the slate reward model to (logged or simulated) impressions: per-slot binary cross-entropy.

pCTR is trained on every shown slot; pCVR (conversion given click) only on clicked slots. A
held-out share of the impressions gives log-loss and AUC beside the same figures for a
position-only baseline (the mean CTR of each slot), so a report can show what the model adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from genads.eval.ctr_metrics import log_loss, roc_auc
from genads.reward.model import RewardConfig, SlateRewardModel, slate_inputs
from genads.reward.simulate import ImpressionLog
from genads.slate.checkpoint import Progress
from genads.training import EarlyStopping


@dataclass(frozen=True)
class RewardTrainConfig:
    """Optimisation settings."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.01
    valid_share: float = 0.1
    """Share of requests (all their impressions) held out for the reported log-loss / AUC."""
    dev_share: float = 0.1
    """Share of requests held out for early stopping (best epoch's weights kept); 0 = no early stopping."""
    patience: int = 2
    """Epochs without a better dev log-loss before stopping."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RewardTrainConfig.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"RewardTrainConfig: lr={self.lr} must be > 0, weight_decay={self.weight_decay} >= 0")
        if not (self.valid_share >= 0.0 and self.dev_share >= 0.0 and self.valid_share + self.dev_share < 1.0):
            raise ValueError(f"RewardTrainConfig: valid_share={self.valid_share} and dev_share={self.dev_share} "
                             "must be >= 0 with a sum < 1")
        if self.patience < 1:
            raise ValueError(f"RewardTrainConfig.patience={self.patience} must be >= 1")


def with_score_scale(config: RewardConfig, scores: np.ndarray | None) -> RewardConfig:
    """``config`` with score_mean / score_std from the finite generator scores (unchanged without)."""
    if scores is None:
        return config
    x = np.asarray(scores, dtype=float)
    x = x[np.isfinite(x)]
    return replace(config, score_mean=float(x.mean()), score_std=float(max(x.std(), 1e-3))) if len(x) else config


def _score_inputs(log: ImpressionLog, part: np.ndarray, model: SlateRewardModel) -> torch.Tensor | None:
    if not model.config.use_score:
        return None
    if log.scores is None:
        raise ValueError("the reward model reads generator scores: the log has none (simulate with a slate model)")
    return torch.as_tensor(np.nan_to_num(log.scores[part].astype(np.float32), neginf=-1e4))


def with_bid_scale(config: RewardConfig, bids: np.ndarray) -> RewardConfig:
    """``config`` with bid_mean / bid_std set from the log bids of the ads that have one."""
    logb = np.log(np.asarray(bids, dtype=float)[np.asarray(bids) > 0])
    if not len(logb):
        return replace(config, bid_mean=0.0, bid_std=1.0)
    return replace(config, bid_mean=float(logb.mean()), bid_std=float(max(logb.std(), 1e-3)))


def _history_inputs(history: np.ndarray | None, rows: np.ndarray, sids: np.ndarray):
    if history is None:
        return None, None
    h = np.asarray(history, dtype=np.int64)[rows]
    return torch.as_tensor(np.asarray(sids, dtype=np.int64)[np.maximum(h, 0)]), torch.as_tensor(h > 0)


def predict_log(model: SlateRewardModel, log: ImpressionLog, sids: np.ndarray, bids: np.ndarray,
                history: np.ndarray | None = None, idx: np.ndarray | None = None,
                batch_size: int = 1024) -> np.ndarray:
    """(n, S, 1 or 2) predicted probabilities for impressions ``idx`` (default all) of ``log``."""
    idx = np.arange(len(log)) if idx is None else np.asarray(idx)
    out = []
    for lo in range(0, len(idx), batch_size):
        part = idx[lo:lo + batch_size]
        s, b, v = slate_inputs(log.slates[part], sids, bids)
        hs, hv = _history_inputs(history, log.rows[part], sids) if model.config.use_history else (None, None)
        out.append(model.predict(s, b, v, hs, hv, _score_inputs(log, part, model)).numpy())
    return np.concatenate(out) if out else np.zeros((0, log.slates.shape[1], 1))


def fit(model: SlateRewardModel, log: ImpressionLog, sids: np.ndarray, bids: np.ndarray, cfg: RewardTrainConfig,
        *, seed: int, history: np.ndarray | None = None) -> dict:
    """Train ``model`` in place on ``log``; returns losses per epoch and held-out figures.

    Args:
        sids: (n_items + 1, L) SIDs by item index; bids: (n_items + 1,) bid by item index.
        history: (n_requests, H) left-padded item indices per request (``log.rows`` indexes it);
            required when the model's config has ``use_history``.
    """
    if model.config.use_history and history is None:
        raise ValueError("the reward model uses the history: pass history=")
    if log.slates.shape[1] > model.config.max_slate:
        raise ValueError(f"log slates have {log.slates.shape[1]} slots > max_slate={model.config.max_slate}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    requests = rng.permutation(np.unique(log.rows))  # split by request: a user's impressions stay together
    n_valid, n_dev = round(cfg.valid_share * len(requests)), round(cfg.dev_share * len(requests))
    part_of = np.zeros(int(log.rows.max()) + 1 if len(log) else 0, dtype=np.int8)
    part_of[requests[:n_valid]], part_of[requests[n_valid:n_valid + n_dev]] = 1, 2
    valid_idx, dev_idx, train_idx = (np.nonzero(part_of[log.rows] == k)[0] for k in (1, 2, 0))
    train_idx = rng.permutation(train_idx)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * max(1, -(-len(train_idx) // cfg.batch_size))
    warm = max(1, steps // 10)  # linear warm-up over 10% of the steps, then cosine decay to 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    clicks = torch.as_tensor(log.clicks, dtype=torch.float32)
    conv = torch.as_tensor(log.conversions, dtype=torch.float32) if log.conversions is not None else None
    losses, dev_losses = [], []
    record, stopper = Progress(best=-math.inf), EarlyStopping(cfg.patience)  # on -(dev log-loss)
    model.train()
    for _ in range(cfg.epochs):
        total, count = 0.0, 0
        for lo in range(0, len(train_idx), cfg.batch_size):
            part = train_idx[lo:lo + cfg.batch_size]
            s, b, v = slate_inputs(log.slates[part], sids, bids)
            hs, hv = _history_inputs(history, log.rows[part], sids) if model.config.use_history else (None, None)
            logits = model(s, b, v, hs, hv, _score_inputs(log, part, model))
            y = clicks[part]
            loss = F.binary_cross_entropy_with_logits(logits[..., 0][v], y[v])
            if model.config.cvr and conv is not None:
                clicked = v & (y > 0)
                if clicked.any():
                    loss = loss + F.binary_cross_entropy_with_logits(logits[..., 1][clicked], conv[part][clicked])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()) * len(part), count + len(part)
        losses.append(total / max(count, 1))
        train_idx = rng.permutation(train_idx)
        if len(dev_idx):
            p = predict_log(model, log, sids, bids, history if model.config.use_history else None, dev_idx)[..., 0]
            filled = log.slates[dev_idx] > 0
            dev_losses.append(log_loss(log.clicks[dev_idx][filled], p[filled]))
            if not stopper.update(record, -dev_losses[-1], model) and record.stale >= cfg.patience:
                break
    stopper.restore(model)
    model.eval()
    return {"train_loss": losses, "dev_loss": dev_losses, "best_epoch": int(np.argmin(dev_losses)) + 1 if dev_losses
            else len(losses), "impressions": len(log), "valid_impressions": len(valid_idx),
            **evaluate_log(model, log, sids, bids, valid_idx, history=history)}


def evaluate_log(model: SlateRewardModel, log: ImpressionLog, sids: np.ndarray, bids: np.ndarray,
                 idx: np.ndarray, *, history: np.ndarray | None = None) -> dict:
    """Held-out log-loss / AUC of the model and of the per-slot mean CTR (position-only baseline)."""
    if not len(idx):
        return {}
    p = predict_log(model, log, sids, bids, history, idx)[..., 0]
    y = log.clicks[idx]
    valid = log.slates[idx] > 0
    slot_ctr = np.nanmean(np.where(valid, y, np.nan), axis=0)
    base = np.broadcast_to(np.nan_to_num(slot_ctr), y.shape)
    return {"valid_logloss": log_loss(y[valid], p[valid]), "valid_auc": roc_auc(y[valid], p[valid]),
            "position_only_logloss": log_loss(y[valid], base[valid]), "position_only_auc": roc_auc(y[valid], base[valid]),
            "valid_ctr": float(y[valid].mean()), "predicted_ctr": float(p[valid].mean()),
            "slot_ctr": np.nan_to_num(slot_ctr).tolist(),
            "slot_pctr": np.nan_to_num(np.nanmean(np.where(valid, p, np.nan), axis=0)).tolist()}
