"""Checkpoints that resume exactly: weights (safetensors), optimiser + RNG (torch.save, loaded with
weights_only=True), progress (JSON). Every file is written to a temporary name and renamed, and
``progress.json`` goes last, so a checkpoint folder is either the old one or the new one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genads.io import atomic_write, atomic_write_text

WEIGHTS, BEST, STATE, PROGRESS = "model.safetensors", "best.safetensors", "state.pt", "progress.json"


@dataclass
class Progress:
    """Where training stands: the data position and the early-stopping record."""

    epoch: int = 0
    """Current epoch (0-based)."""
    batch: int = 0
    """Next batch within the epoch."""
    step: int = 0
    """Optimiser steps taken."""
    best: float = -1.0
    """Best validation NDCG@10 so far."""
    best_epoch: int = -1
    stale: int = 0
    """Validations since the best one."""
    done: bool = False
    """Early-stopped or out of epochs."""
    epoch_loss: float = 0.0
    """Running sums over the current epoch's batches (for its log row)."""
    epoch_mtp: float = 0.0
    epoch_batches: int = 0


_atomic = atomic_write  # one writer for every artifact (genads.io)


def save_weights(model: nn.Module, path: Path) -> None:
    """Model weights as safetensors (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic(path, lambda tmp: save_file(tensors, tmp))


def load_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no weights to load")
    model.load_state_dict(load_file(str(path)))


def save_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, progress: Progress) -> None:
    """Weights, optimiser state, the global torch RNG (dropout; CUDA's too on a GPU) and the progress record."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / WEIGHTS)
    state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state()  # dropout on the GPU
    _atomic(folder / STATE, lambda tmp: torch.save(state, tmp))
    atomic_write_text(folder / PROGRESS, json.dumps(asdict(progress), indent=2) + "\n")


def load_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer) -> Progress:
    """Restore what :func:`save_checkpoint` wrote; returns the progress to continue from."""
    for name in (WEIGHTS, STATE, PROGRESS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: is {folder} a slate checkpoint?")
    load_weights(model, folder / WEIGHTS)
    state = torch.load(folder / STATE, weights_only=True)
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"])
    return Progress(**json.loads((folder / PROGRESS).read_text()))


def has_checkpoint(folder: Path) -> bool:
    return (folder / PROGRESS).is_file()
