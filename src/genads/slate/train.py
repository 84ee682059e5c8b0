"""Training the slate model: next-item cross-entropy over SID tokens plus multi-token prediction.

One loop serves one process and ``torchrun --nproc_per_node=N`` (DDP; gloo on CPU, NCCL on GPU).
Every rank draws the same global batch order (seeded by ``seed`` and the epoch) and takes its
share of each global batch; losses are sums divided by the *global* number of targets, so N
processes take the same steps as one process with the same global batch. AdamW with linear
warm-up and cosine decay, gradient clipping, early stopping on validation NDCG@10 (constrained
beam search, so validation measures what serving returns). With ``run_dir`` the loop writes
``metrics.jsonl`` and a checkpoint that resumes exactly (weights, optimiser, RNG, data position).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genads import training
from genads.data.split import EvalSet, SequenceSplit, left_pad
from genads.decode.beam import generate_slate, live_trie
from genads.eval.metrics import ranking_metrics
from genads.slate.model import N_SPECIAL, PAD, SlateModel, WithPrefix, history_tokens, user_bucket
from genads.training import all_sum, init_distributed, train_device, world_info  # noqa: F401 (their old home)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and early-stopping settings."""

    batch_size: int = 256
    """Global batch (sequences), split over the DDP ranks."""
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    """The cosine decays to ``lr * min_lr_ratio``."""
    warmup_steps: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    epochs: int = 50
    mtp_weight: float = 0.3
    """Weight of each multi-token-prediction head's loss (the next-token loss has weight 1)."""
    label_smoothing: float = 0.0
    """Label smoothing of every token cross-entropy (over the codes of the token's level)."""
    eval_every: int = 2
    """Validate every this many epochs."""
    patience: int = 4
    """Stop after this many validations without a better NDCG@10; the best weights are restored."""
    eval_users: int = 0
    """Validation cases used for early stopping (evenly spaced; 0 = all)."""
    beam: int = 20
    """Beam width for validation (and the recommender's default)."""
    time_budget_s: float = 0.0
    """Stop at the first epoch end after this many seconds of training in this call (0 = no limit)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "eval_every", "patience", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("warmup_steps", "weight_decay", "mtp_weight", "eval_users", "time_budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(batch_size=16, lr=3e-3, warmup_steps=2, epochs=2, eval_every=1, patience=2, beam=20),
    "small": TrainConfig(batch_size=128, lr=3e-3, warmup_steps=50, epochs=20, eval_every=2, patience=3,
                         eval_users=1000),
    "beauty": TrainConfig(batch_size=256, lr=3e-3, warmup_steps=300, epochs=45, eval_every=3, patience=10,
                          eval_users=2000),
}


def training_windows(split: SequenceSplit, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``max_items + 1`` training items, left-padded, and each window's user row.

    Every user's last ``max_items + 1`` items, then for longer users earlier windows, each ending
    with the item just after the previous window's first one, so every training item is the target
    of some prefix (with up to ``max_items`` items of history), as in SASRec/TIGER, instead of only
    the last ``max_items`` of each user.

    Returns:
        windows (n_windows, max_items + 1) item indices and owners (n_windows,) rows of ``split.users``.
    """
    rows, owners = [], []
    for u, seq in enumerate(split.train):
        end = len(seq)
        while end > 0:
            start = max(0, end - max_items - 1)
            rows.append(seq[start:end])
            owners.append(u)
            end = start + 1 if start > 0 else 0
    return left_pad(rows, max_items + 1), np.asarray(owners, dtype=np.int64)


def shifted(tokens: Tensor, by: int) -> Tensor:
    """targets[:, t] = tokens[:, t + by] (PAD past the end)."""
    out = torch.full_like(tokens, PAD)
    if by < tokens.shape[1]:
        out[:, : tokens.shape[1] - by] = tokens[:, by:]
    return out


class Objective(nn.Module):
    """Summed token cross-entropies divided by given normalisers (the unit DDP wraps)."""

    def __init__(self, model: SlateModel, mtp_weight: float, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.model, self.mtp_weight, self.label_smoothing = model, mtp_weight, label_smoothing

    def targets(self, tokens: Tensor) -> list[Tensor]:
        """Next-token targets, then the multi-token targets (j items further on)."""
        L = self.model.config.levels
        return [shifted(tokens, 1 + j * L) for j in range(self.model.config.mtp_heads + 1)]

    def _ce_sum(self, h: Tensor, target: Tensor) -> Tensor:
        total = h.new_zeros(())
        level = self.model.token_level(target)
        for lv in range(self.model.config.levels):
            sel = (level == lv) & (target >= N_SPECIAL)  # may be empty: keeps every head in the graph
            codes = target[sel] - N_SPECIAL - lv * self.model.config.codebook_size
            total = total + F.cross_entropy(self.model.level_logits(h[sel], lv), codes, reduction="sum",
                                            label_smoothing=self.label_smoothing)
        return total

    def forward(self, tokens: Tensor, positions: Tensor, norms: Tensor,
                users: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(weighted loss, per-head mean losses); ``norms`` (1 + mtp_heads,) global target counts."""
        h = self.model(tokens, positions, users=users)  # (B, T, D)
        targets = self.targets(tokens)
        sums = [self._ce_sum(h, targets[0])]
        sums += [self._ce_sum(self.model.mtp_hidden(h, j), targets[j + 1]) for j in range(len(targets) - 1)]
        means = torch.stack(sums) / norms.clamp(min=1)
        weights = torch.tensor([1.0] + [self.mtp_weight] * (len(sums) - 1), device=h.device)
        return (means * weights).sum(), means.detach()


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``total`` steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, world: int) -> list[np.ndarray]:
    """Shuffled global batches of similar-length rows; the same on every rank (seeded by epoch)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    noisy = torch.from_numpy(lengths).double() + torch.rand(len(lengths), generator=gen, dtype=torch.float64)
    batches = list(torch.argsort(noisy).split(batch_size))
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i].numpy() for i in order if len(batches[i]) >= world]


def make_optimizer(model: SlateModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (nanoGPT)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))


@torch.no_grad()
def validate(model: SlateModel, sids: np.ndarray, eval_set: EvalSet, cfg: TrainConfig, trie=None) -> float:
    """NDCG@10 of constrained beam search on (a subset of) ``eval_set``; ranks share the cases."""
    rank, world = world_info()
    n = len(eval_set)
    cases = np.linspace(0, n - 1, cfg.eval_users).round().astype(int) if 0 < cfg.eval_users < n else np.arange(n)
    mine = cases[rank::world]
    trie = trie or live_trie(sids)
    total = 0.0
    for i in range(0, len(mine), 256):
        idx = mine[i:i + 256]
        reader = model
        if model.config.user_buckets:
            users = torch.from_numpy(user_bucket(eval_set.users[idx], model.config.user_buckets))
            reader = WithPrefix(model, users, None)
        slate = generate_slate(reader, trie, sids, eval_set.history[idx], beam=cfg.beam, slate_size=10)
        total += ranking_metrics(slate.ads, eval_set.target[idx], ks=(10,))["ndcg@10"] * len(idx)
    return float(all_sum(torch.tensor([total], dtype=torch.float64))[0]) / max(len(cases), 1)


def _step(objective: nn.Module, opt: torch.optim.Optimizer, tokens: Tensor, positions: Tensor,
          lr: float, cfg: TrainConfig, users: Tensor | None = None) -> Tensor:
    norms = all_sum(torch.stack([(t >= N_SPECIAL).sum() for t in objective_targets(objective, tokens)]).double())
    world = world_info()[1]
    loss, means = objective(tokens, positions, norms.float(), users)
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    (loss * world).backward()  # DDP averages gradients over ranks; the loss already uses global counts
    nn.utils.clip_grad_norm_(objective.parameters(), cfg.grad_clip)
    opt.step()
    return all_sum(means.double())  # per-head means over the global batch


def objective_targets(objective: nn.Module, tokens: Tensor) -> list[Tensor]:
    inner = objective.module if isinstance(objective, nn.parallel.DistributedDataParallel) else objective
    return inner.targets(tokens)


def fit(model: SlateModel, sids: np.ndarray, split: SequenceSplit, cfg: TrainConfig, *, seed: int = 0,
        run_dir: str | Path | None = None, resume: bool = False, until_step: int | None = None,
        progress: bool = True) -> list[dict]:
    """Train ``model`` in place on ``split.train``; early stopping on ``split.valid`` (:mod:`genads.training`).

    Args:
        sids: (n_items + 1, L) SID of every item index (row 0 = padding).
        run_dir: folder for metrics.jsonl and checkpoint/ (None: nothing written, no resume).
        resume: continue from ``run_dir/checkpoint`` (exactly: weights, optimiser, RNG, data position).
        until_step: stop (and checkpoint) after this many optimiser steps in total.

    Returns:
        One row per epoch finished in this call (loss, per-head losses, lr, seconds, valid_ndcg@10).
    """
    rank, world = world_info()
    run_dir = Path(run_dir) if run_dir is not None else None
    torch.manual_seed(seed)
    device = train_device()
    model.to(device)
    objective: nn.Module = Objective(model, cfg.mtp_weight, cfg.label_smoothing)
    opt = make_optimizer(model, cfg)
    state, stopper = training.start(run_dir, model, opt, resume, cfg.patience)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(objective)
    windows, owners = training_windows(split, model.config.max_items)
    buckets = user_bucket(split.users[owners], model.config.user_buckets) if model.config.user_buckets else None
    lengths = (windows > 0).sum(1)
    total = len(epoch_batches(lengths, cfg.batch_size, seed, 0, world)) * cfg.epochs

    def step(batch: np.ndarray) -> tuple[float, float]:
        rows = batch[rank::world]
        tokens, positions = history_tokens(windows[rows], sids, model.config.codebook_size, model.config.max_items)
        users = None if buckets is None else torch.from_numpy(buckets[rows]).to(device)
        model.train()
        means = _step(objective, opt, tokens.to(device), positions.to(device), lr_at(state.step, total, cfg), cfg,
                      users)
        return float(means[0]), float(means[1:].sum()) if len(means) > 1 else 0.0

    def end_epoch(start: float) -> dict:
        row = {"epoch": state.epoch + 1, "step": state.step, "loss": state.epoch_loss / max(state.epoch_batches, 1),
               "mtp_loss": state.epoch_mtp / max(state.epoch_batches, 1), "lr": lr_at(state.step, total, cfg),
               "seconds": round(time.perf_counter() - start, 2)}

        def validated(row: dict) -> float:
            model.eval()
            row["valid_ndcg@10"] = validate(model, sids, split.valid, cfg)
            return row["valid_ndcg@10"]

        return stopper.end_epoch(state, row, epochs=cfg.epochs, eval_every=cfg.eval_every, model=model,
                                 validate=validated)

    log = training.run_epochs(
        model, opt, state, stopper, batches=lambda epoch: epoch_batches(lengths, cfg.batch_size, seed, epoch, world),
        step=step, end_epoch=end_epoch, postfix=lambda row: {"loss": f"{row['loss']:.3f}", "ndcg10": f"{state.best:.4f}"},
        total=total, desc="slate", run_dir=run_dir, until_step=until_step, progress=progress,
        budgets=training.Budgets(time_s=cfg.time_budget_s))
    model.cpu()  # serving and evaluation run on the CPU trie
    return log
