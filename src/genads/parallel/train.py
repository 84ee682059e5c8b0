"""Training the parallel-code generator: per-code cross-entropy plus an item-level softmax (the loss: objective.py).

Two losses at every position of every training window:
- **code CE** (RPG): the mean over the m heads of the cross-entropy of the next item's code;
- **item softmax** (the item-level contrastive term of ACERec/LIGER, and the loss of SASRec+SS): the
  exact item score Σ_k logit_k(code_k) of the next item against ``n_negatives`` items drawn uniformly
  and shared by the batch. It trains the very quantity the recommender ranks by; the code CE alone treats the m
  codes as independent, which is looser.

Resumes exactly (weights, optimiser, RNG, data position; negatives are drawn from a generator seeded by
the step), validates by exact full ranking (NDCG@10, nothing ruled out: the protocol of the rows it is
compared with), and trains with DDP under torchrun like the SID family (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from genads import training
from genads.data.split import EvalSet, SequenceSplit
from genads.eval.metrics import ranking_metrics, topk_from_scores
from genads.parallel.model import ParallelModel
from genads.parallel.objective import Objective
from genads.slate.train import epoch_batches, lr_at, make_optimizer, training_windows
from genads.training import all_sum, train_device, world_info


@dataclass(frozen=True)
class ParallelTrainConfig:
    """Optimisation and early-stopping settings of the parallel family."""

    batch_size: int = 128
    """Global batch (windows), split over the DDP ranks."""
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = none)."""
    epochs: int = 100
    code_weight: float = 1.0
    """Weight of the per-code cross-entropy."""
    code_heads: int = 8
    """Code heads whose cross-entropy a step computes (a random subset: an unbiased estimate of the mean
    over all m at a fraction of the cost; 0 = all)."""
    item_weight: float = 1.0
    """Weight of the item-level sampled softmax."""
    n_negatives: int = 2048
    """Negatives of the item softmax, drawn uniformly and shared by the batch: one (M, m·d) x (m·d, n) product,
    so many negatives cost little (2048 vs 256: +20% step time), and more negatives track the full softmax."""
    item_temperature: float = 0.05
    """The item logit is mean_k cos_k / item_temperature (same order as the exact score)."""
    id_out_dropout: float = 0.0
    """Dropout on the ID embeddings where the item loss scores them (the output side; one draw of the table per
    step): the eSASRec recipe drops its tied output embeddings with the model's dropout. 0 = none."""
    crop_prob: float = 0.0
    """Training only: chance that a window is replaced by a random contiguous crop of its items (at least two, at
    least ``crop_min`` of them), re-aligned to the right: the crop's items move to other positions and its earliest
    targets lose their context (CL4SRec's crop; SASRec++'s crop & shuffle). 0 = none."""
    crop_min: float = 0.6
    """Least share of a window's items a crop keeps."""
    shuffle_prob: float = 0.0
    """Training only: chance that a random span of ``shuffle_span`` of a window's items is put in a random order
    (CL4SRec's reorder; Amazon review timestamps order same-day items arbitrarily). 0 = none."""
    shuffle_span: float = 0.2
    """Share of a window's items (at least two) a shuffle reorders."""
    eval_every: int = 1
    patience: int = 8
    """Stop after this many validations without a better NDCG@10; the best weights are restored."""
    eval_users: int = 0
    """Validation cases for early stopping (evenly spaced; 0 = all: exact scoring makes them cheap)."""
    time_budget_s: float = 0.0
    """Stop at the first epoch end after this many seconds in this call (0 = no limit)."""
    cpu_budget_s: float = 0.0
    """Stop at the first epoch end after this many CPU seconds of this process in this call (0 = no limit): unlike
    ``time_budget_s``, a paused (SIGSTOP) or starved run does not spend it."""
    batching: str = "length"
    """'length': shuffled batches of windows of similar length; 'random': windows shuffled every epoch and cut into
    batches (the eSASRec recipe's DataLoader), each padded to its longest window."""
    negatives: str = "shared"
    """'shared': ``n_negatives`` items drawn once per batch and shared by every position; 'per-position': each
    (window, position) draws its own ``n_negatives`` (the eSASRec recipe), scored through the code logits the code
    loss computes anyway (a gather of m values per negative, never an (M, n, m·d) tensor); 'all': the full softmax,
    every catalogue item a negative (``n_negatives`` unused; SASRec's cross-entropy: the (M, n_items) product
    costs about n_items / 2048 times the shared one)."""
    item_bf16: bool = False
    """The item softmax's (M, n) product in bfloat16 ('shared' and 'all'; weights, gradients and the softmax stay
    fp32): ≈ 2x faster where the CPU has AVX512-BF16 (the full softmax's main cost), logits to ~3 significant
    digits."""
    stop_metric: str = "ndcg@10"
    """Validation metric early stopping follows ('ndcg@10' or 'recall@10')."""
    exclude_history: bool = False
    """Early stopping follows the protocol with the user's history ruled out (validation ranks every item but the
    history's); the recommender itself still ranks every item."""

    def __post_init__(self) -> None:
        if self.batching not in ("length", "random"):
            raise ValueError(f"batching={self.batching!r} must be 'length' or 'random'")
        if self.negatives not in ("shared", "per-position", "all"):
            raise ValueError(f"negatives={self.negatives!r} must be 'shared', 'per-position' or 'all'")
        if self.stop_metric not in ("ndcg@10", "recall@10"):
            raise ValueError(f"stop_metric={self.stop_metric!r} must be 'ndcg@10' or 'recall@10'")
        for name in ("batch_size", "epochs", "eval_every", "patience", "n_negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("lr", "item_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("warmup_steps", "weight_decay", "grad_clip", "code_weight", "code_heads", "item_weight",
                     "eval_users", "time_budget_s", "cpu_budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.code_weight == 0 and self.item_weight == 0:
            raise ValueError("code_weight and item_weight are both 0: nothing to train")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if not 0.0 <= self.id_out_dropout < 1.0:
            raise ValueError(f"id_out_dropout={self.id_out_dropout} must be in [0, 1)")
        for name in ("crop_prob", "shuffle_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1]")
        for name in ("crop_min", "shuffle_span"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in (0, 1]")


@torch.no_grad()
def exact_topk(model: ParallelModel, item_codes: Tensor, history: np.ndarray, k: int,
               batch_size: int = 512, exclude_history: bool = False) -> np.ndarray:
    """Top-k item indices (n, k) by exact score over every item for left-padded histories (n, L).

    Ranks by ``item_queries · item_keys`` (the exact score up to a per-history constant, see
    :meth:`ParallelModel.item_vectors` and :meth:`ParallelModel.item_queries`): one matrix product per batch instead of m gathers. The model reads the
    last ``max_items`` of each history; ``exclude_history`` rules out every item of the whole row.
    """
    model.eval()
    vectors = model.item_keys(item_codes)  # (N+1, m*d_code [+ D])
    out = []
    for i in range(0, len(history), batch_size):
        rows = torch.from_numpy(np.ascontiguousarray(history[i:i + batch_size]))
        seq = rows[:, -model.config.max_items:]
        width = int((seq > 0).sum(1).max().clamp(min=1))
        seq = seq[:, -width:].to(item_codes.device)
        q = model.item_queries(model(seq, item_codes[seq])[:, -1])
        out.append(topk_from_scores((q @ vectors.T).cpu(), k, exclude=rows if exclude_history else None).numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def next_item_windows(split: SequenceSplit, max_items: int) -> np.ndarray:
    """The training windows that hold a next-item target: two items or more.

    A user with one training event gives a 1-item window, which has no next item to predict (the parallel
    family has no per-item token stream, unlike the SID family); a batch of only such windows would be empty.
    Real logs have many such users (5-core benchmarks have none), so they are dropped here, not in a batch.

    Raises:
        ValueError: when no user has two training events, naming the counts.
    """
    windows, _ = training_windows(split, max_items)
    keep = (windows > 0).sum(1) >= 2
    if not keep.any():
        raise ValueError(f"parallel training needs users with at least two training events: all "
                         f"{len(split.train):,} users have at most one (users with {split.config.min_events} events or "
                         "more lose their last two to validation and test)")
    return windows[keep]


def validate(model: ParallelModel, item_codes: Tensor, eval_set: EvalSet, cfg: ParallelTrainConfig) -> dict[str, float]:
    """NDCG@10 and Recall@10 by exact full ranking on (a subset of) ``eval_set``, the history ruled out when
    ``cfg.exclude_history``; DDP ranks share the cases."""
    rank, world = world_info()
    n = len(eval_set)
    cases = np.linspace(0, n - 1, cfg.eval_users).round().astype(int) if 0 < cfg.eval_users < n else np.arange(n)
    mine = cases[rank::world]
    ranked = exact_topk(model, item_codes, eval_set.history[mine], 10, exclude_history=cfg.exclude_history)
    metrics = ranking_metrics(ranked, eval_set.target[mine], ks=(10,)) if len(mine) else {}
    totals = torch.tensor([metrics.get(k, 0.0) * len(mine) for k in ("ndcg@10", "recall@10")], dtype=torch.float64)
    ndcg, recall = (float(x) / max(len(cases), 1) for x in all_sum(totals))
    return {"ndcg@10": ndcg, "recall@10": recall}


def fit(model: ParallelModel, item_codes: np.ndarray, split: SequenceSplit, cfg: ParallelTrainConfig, *,
        seed: int = 0, run_dir: str | Path | None = None, resume: bool = False, until_step: int | None = None,
        progress: bool = True) -> list[dict]:
    """Train ``model`` in place on ``split.train``, early stopping on ``split.valid`` (:mod:`genads.training`).

    Args:
        item_codes: (n_items + 1, m) codes of every item index (row 0: padding, any value).
        run_dir: folder for metrics.jsonl and checkpoint/ (None: nothing written, no resume).
        resume: continue exactly from ``run_dir/checkpoint``.
        until_step: stop (and checkpoint) after this many optimiser steps in total.

    Returns:
        One row per epoch finished in this call (loss, code_ce, item_ce, lr, seconds, valid_ndcg@10).
    """
    rank, world = world_info()
    run_dir = Path(run_dir) if run_dir is not None else None
    torch.manual_seed(seed)
    device = train_device()
    model.to(device)
    codes_t = torch.as_tensor(item_codes, dtype=torch.long)
    objective: nn.Module = Objective(model, codes_t.to(device), cfg)
    opt = make_optimizer(model, cfg)
    state, stopper = training.start(run_dir, model, opt, resume, cfg.patience)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(objective)
    windows = torch.from_numpy(next_item_windows(split, model.config.max_items))
    lengths = (windows > 0).sum(1).numpy()
    total = len(_batches(lengths, cfg, seed, 0, world)) * cfg.epochs

    def step(batch: np.ndarray) -> tuple[float, float]:
        inputs, targets, gen = batch_windows(windows, batch, cfg, seed, state.step, rank, world)
        norm = all_sum(torch.tensor([float((targets > 0).sum())], dtype=torch.float64))[0].float().to(device)
        model.train()
        loss, parts = objective(inputs.to(device), targets.to(device), gen, norm.clamp(min=1.0))
        for group in opt.param_groups:
            group["lr"] = lr_at(state.step, total, cfg)
        opt.zero_grad(set_to_none=True)
        (loss * world).backward()  # DDP averages gradients over ranks; the loss already uses global counts
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        parts = all_sum(parts.double().cpu())  # each rank's share of the global mean
        return float(parts[0]), float(parts[1])  # the item softmax, in the slot the SID family uses for MTP

    def end_epoch(start: float) -> dict:
        n = max(state.epoch_batches, 1)
        row = {"epoch": state.epoch + 1, "step": state.step, "code_ce": state.epoch_loss / n,
               "item_ce": state.epoch_mtp / n, "lr": lr_at(state.step, total, cfg),
               "seconds": round(time.perf_counter() - start, 2)}
        row["loss"] = cfg.code_weight * row["code_ce"] + cfg.item_weight * row["item_ce"]

        def validated(row: dict) -> float:
            valid = validate(model, codes_t.to(device), split.valid, cfg)
            row["valid_ndcg@10"], row["valid_recall@10"] = valid["ndcg@10"], valid["recall@10"]
            return valid[cfg.stop_metric]

        return stopper.end_epoch(state, row, epochs=cfg.epochs, eval_every=cfg.eval_every, model=model,
                                 validate=validated)

    log = training.run_epochs(
        model, opt, state, stopper, batches=lambda epoch: _batches(lengths, cfg, seed, epoch, world), step=step,
        end_epoch=end_epoch, total=total, desc="parallel", run_dir=run_dir, until_step=until_step, progress=progress,
        postfix=lambda row: {"code": f"{row['code_ce']:.3f}", "item": f"{row['item_ce']:.3f}",
                             "ndcg10": f"{state.best:.4f}"},
        budgets=training.Budgets(time_s=cfg.time_budget_s, cpu_s=cfg.cpu_budget_s))
    model.cpu()
    model.eval()
    return log


def batch_windows(windows: Tensor, batch: np.ndarray, cfg: ParallelTrainConfig, seed: int, step: int, rank: int = 0,
                  world: int = 1) -> tuple[Tensor, Tensor, torch.Generator]:
    """This rank's (inputs, targets) of one global batch of window rows — augmented, cut to its longest window — and
    the step's generator for negatives (the same on every rank)."""
    win = windows[torch.from_numpy(batch[rank::world])]
    if cfg.crop_prob > 0 or cfg.shuffle_prob > 0:
        win = augment(win, cfg, np.random.default_rng([seed, step, rank]))
    win = win[:, -int((win > 0).sum(1).max()):]
    return win[:, :-1], win[:, 1:], torch.Generator().manual_seed(seed * 1_000_003 + step * 7919)


def augment(windows: Tensor, cfg: ParallelTrainConfig, rng: np.random.Generator) -> Tensor:
    """Left-padded windows (B, L) with each row cropped (chance ``cfg.crop_prob``) and/or a span of it reordered
    (chance ``cfg.shuffle_prob``), re-aligned to the right; rows of under two items, and the input, are left as
    they are. Crop first: a reorder then falls inside what the crop kept."""
    out = windows.clone()
    rows = out.numpy()
    for r in range(len(rows)):
        n = int((rows[r] > 0).sum())
        if n < 2:
            continue
        items = rows[r, len(rows[r]) - n:].copy()
        changed = False
        if cfg.crop_prob > 0 and rng.random() < cfg.crop_prob:
            keep = int(rng.integers(max(2, math.ceil(cfg.crop_min * n)), n + 1))
            start = int(rng.integers(0, n - keep + 1))
            items, changed = items[start:start + keep], keep < n
        if cfg.shuffle_prob > 0 and rng.random() < cfg.shuffle_prob:
            span = min(len(items), max(2, math.ceil(cfg.shuffle_span * len(items))))
            start = int(rng.integers(0, len(items) - span + 1))
            items = items.copy()
            items[start:start + span] = rng.permutation(items[start:start + span])
            changed = True
        if changed:
            rows[r] = 0
            rows[r, len(rows[r]) - len(items):] = items
    return out


def _batches(lengths: np.ndarray, cfg: ParallelTrainConfig, seed: int, epoch: int, world: int) -> list[np.ndarray]:
    """One epoch's global batches of window rows, the same on every rank (seeded by the epoch): length-bucketed, or
    (``cfg.batching == "random"``) a fresh shuffle cut into consecutive batches; batches smaller than the world
    are dropped (every rank needs a row)."""
    if cfg.batching == "length":
        return epoch_batches(lengths, cfg.batch_size, seed, epoch, world)
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return [b.numpy() for b in torch.randperm(len(lengths), generator=gen).split(cfg.batch_size) if len(b) >= world]
