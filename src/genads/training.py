"""One training loop for the generators: epochs of batches, exact resume, time and CPU budgets, checkpoints, and
early stopping that keeps the best weights.

A trainer supplies what differs — its batches (``batches(epoch)``), one optimiser step (``step(rows)`` -> the
step's two loss parts for the epoch's log) and its epoch's log row (``end_epoch``: the family's figures and,
through :meth:`EarlyStopping.end_epoch`, validation) — and :func:`run_epochs` does the rest the same way for
every model: the data position, RNG and optimiser live in the checkpoint (``run_dir/checkpoint``), so a stopped
run resumes exactly where it was; the best weights are written beside it (``best.safetensors``) when a
validation improves and restored when training ends; ``metrics.jsonl`` (and TensorBoard when installed) gets one
row per epoch. Under DDP every rank runs the same loop; only rank 0 writes, and budgets are decided by rank 0.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from genads.slate import checkpoint as ckpt


def world_info() -> tuple[int, int]:
    """(rank, world size) of this process (0, 1 without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def comm_device(x: Tensor) -> torch.device:
    """Where a collective on ``x`` must run: NCCL wants CUDA tensors, gloo CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else x.device


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes (WORLD_SIZE > 1): NCCL on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world_info()


def train_device() -> torch.device:
    """This rank's GPU (LOCAL_RANK) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def all_sum(x: Tensor) -> Tensor:
    """Sum over ranks (identity in one process); NCCL gets a CUDA copy."""
    if world_info()[1] > 1:
        y = x.to(comm_device(x))
        dist.all_reduce(y)
        return y.to(x.device)
    return x


def _rank0_decides(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (one decision, so no rank stops alone)."""
    t = torch.tensor([float(flag)])
    if world_info()[1] > 1:
        t = t.to(comm_device(t))
        dist.broadcast(t, src=0)
    return bool(t[0] > 0)


def over_budget(started: float, budget: float) -> bool:
    """Whether rank 0 has trained longer than ``budget`` seconds of wall time since ``started``."""
    return _rank0_decides(time.perf_counter() - started > budget)


def over_cpu_budget(started: float, budget: float) -> bool:
    """Whether rank 0's process has used more than ``budget`` CPU seconds since ``started``."""
    return _rank0_decides(time.process_time() - started > budget)


def append_jsonl(path: Path, row: dict) -> None:
    """One epoch's row: ``metrics.jsonl`` (and TensorBoard when installed, :mod:`genads.eval.curves`)."""
    if path.name == "metrics.jsonl":
        from genads.eval.curves import log_epoch

        log_epoch(path.parent, row)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_best(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / ckpt.BEST))


class EarlyStopping:
    """Patience on a validation figure (higher is better), with the best weights kept in memory.

    The record (best figure, its epoch, validations since) lives in the run's :class:`ckpt.Progress`, so it is
    checkpointed and resumed with the rest; the best weights are read back from ``best.safetensors`` on resume.
    """

    def __init__(self, patience: int, best_weights: dict[str, Tensor] | None = None, min_delta: float = 0.0) -> None:
        self.patience, self.best_weights, self.min_delta = patience, best_weights, min_delta

    def update(self, state: ckpt.Progress, value: float, model: nn.Module) -> bool:
        """Record one validation at the end of ``state.epoch``; True (and the weights kept) when it beats the best by
        more than ``min_delta``."""
        if value > state.best + self.min_delta:
            state.best, state.best_epoch, state.stale = value, state.epoch + 1, 0
            self.keep(model)
            return True
        state.stale += 1
        return False

    def keep(self, model: nn.Module) -> None:
        """Keep ``model``'s current weights as the best (what :meth:`restore` brings back)."""
        self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def end_epoch(self, state: ckpt.Progress, row: dict, *, epochs: int, eval_every: int, model: nn.Module,
                  validate: Callable[[dict], float]) -> dict:
        """Close ``state.epoch``: validate when it is due (``validate(row)`` adds its figures to the row and returns
        the one early stopping follows), decide whether training is done, move to the next epoch."""
        last = state.epoch + 1 >= epochs
        due = (state.epoch + 1) % eval_every == 0 or last
        if due and self.update(state, validate(row), model):
            row["improved"] = True
        state.done = last or state.stale >= self.patience
        state.epoch, state.batch = state.epoch + 1, 0
        state.epoch_loss, state.epoch_mtp, state.epoch_batches = 0.0, 0.0, 0
        return row

    def restore(self, model: nn.Module) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)


def start(run_dir: Path | None, model: nn.Module, opt: torch.optim.Optimizer, resume: bool,
          patience: int) -> tuple[ckpt.Progress, EarlyStopping]:
    """A fresh run's progress and early stopping, or (``resume``) those of ``run_dir/checkpoint``, exactly."""
    folder = run_dir / "checkpoint" if run_dir is not None else None
    if not resume:
        return ckpt.Progress(), EarlyStopping(patience)
    if folder is None or not ckpt.has_checkpoint(folder):
        raise FileNotFoundError(f"resume: no checkpoint in {folder}")
    state = ckpt.load_checkpoint(folder, model, opt)
    best = {k: v.clone() for k, v in read_best(folder).items()} if (folder / ckpt.BEST).is_file() else None
    return state, EarlyStopping(patience, best)


@dataclass(frozen=True)
class Budgets:
    """Stop at the first epoch end past either (0: no limit), with the best weights."""

    time_s: float = 0.0
    cpu_s: float = 0.0


def run_epochs(model: nn.Module, opt: torch.optim.Optimizer, state: ckpt.Progress, stopper: EarlyStopping, *,
               batches: Callable[[int], Sequence], step: Callable[[object], tuple[float, float]],
               end_epoch: Callable[[float], dict], postfix: Callable[[dict], dict], total: int, desc: str,
               run_dir: Path | None = None, until_step: int | None = None, progress: bool = True,
               budgets: Budgets = Budgets()) -> list[dict]:
    """Train until done, out of budget or at ``until_step`` optimiser steps; returns this call's epoch rows.

    Done (patience or the last epoch) and out of budget both end with the best weights in ``model``; only done ends
    the run: after a budget stop the checkpoint (the last epoch's weights) resumes training where it stopped.

    Args:
        batches: ``batches(epoch)`` -> that epoch's global batches (the same on every rank: seeded by the epoch).
        step: one optimiser step on a global batch -> (loss, second loss part) for the epoch's running means.
        end_epoch: ``end_epoch(epoch_start)`` -> the epoch's row (it closes the epoch, usually through
            :meth:`EarlyStopping.end_epoch`).
        postfix: the progress bar's figures from a row.
    """
    rank, _ = world_info()
    folder = run_dir / "checkpoint" if run_dir is not None else None
    log: list[dict] = []
    bar = tqdm(total=total, initial=state.step, desc=desc, disable=not progress or rank != 0)
    epoch_start = started = time.perf_counter()
    cpu_started = time.process_time()
    out_of_budget = False  # ends this call, not the run: the checkpoint stays resumable
    while not state.done and not out_of_budget and (until_step is None or state.step < until_step):
        epoch = batches(state.epoch)
        while state.batch < len(epoch) and (until_step is None or state.step < until_step):
            loss, second = step(epoch[state.batch])
            state.batch, state.step = state.batch + 1, state.step + 1
            state.epoch_loss += loss
            state.epoch_mtp += second
            state.epoch_batches += 1
            bar.update(1)
        if state.batch >= len(epoch):
            row = end_epoch(epoch_start)
            if budgets.time_s and not state.done and over_budget(started, budgets.time_s):
                out_of_budget = row["stopped_by_time_budget"] = True
            if budgets.cpu_s and not state.done and not out_of_budget and over_cpu_budget(cpu_started, budgets.cpu_s):
                out_of_budget = row["stopped_by_cpu_budget"] = True
            bar.set_postfix(**postfix(row))
            epoch_start = time.perf_counter()
            log.append(row)
            if run_dir is not None and rank == 0:
                append_jsonl(run_dir / "metrics.jsonl", row)
                if row.get("improved"):
                    ckpt.save_weights(model, folder / ckpt.BEST)
        if folder is not None and rank == 0:
            ckpt.save_checkpoint(folder, model, opt, state)
    bar.close()
    if state.done or out_of_budget:
        stopper.restore(model)
    return log
