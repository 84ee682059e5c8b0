"""Generator scores for the reward model: the slate model's log P(ad's SID | user history).

Beam search returns this for the ads it generates (``Slate.logprob``); impressions simulated from
other pools (popularity samples) need it for arbitrary ads, so :func:`sid_logprob` scores given
ads by teacher forcing: the history is read once into the decoder's KV cache, each of the K ads
becomes a "beam" of its request, and its SID's codes are fed level by level. The sum of the
per-level log-softmax values is the same quantity beam search accumulates (the trie mask does not
renormalise), so scores from both sources are comparable.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from genads.decode.stepper import BeamStepper
from genads.slate.model import SlateModel, history_tokens


@torch.no_grad()
def sid_logprob(model: SlateModel, sids: np.ndarray, history: np.ndarray, items: np.ndarray,
                batch_size: int = 256) -> np.ndarray:
    """(B, K) log P(SID of ``items[b, k]`` | ``history[b]``) under the slate model; -inf where items <= 0.

    Args:
        sids: (n_items + 1, L) SIDs by item index; history: (B, m) left-padded item indices.
    """
    items = np.asarray(items, dtype=np.int64)
    history = np.asarray(history, dtype=np.int64)
    if len(items) != len(history):
        raise ValueError(f"items has {len(items)} rows, history {len(history)}")
    out = [_batch(model, sids, history[lo:lo + batch_size], items[lo:lo + batch_size])
           for lo in range(0, len(items), batch_size)]
    return np.concatenate(out) if out else np.zeros(items.shape, dtype=np.float32)


def _batch(model: SlateModel, sids: np.ndarray, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    model.eval()
    cfg = model.config
    device = next(model.parameters()).device
    tokens, positions = history_tokens(history[:, -cfg.max_items:], sids, cfg.codebook_size, cfg.max_items - 1)
    stepper = BeamStepper(model, tokens.to(device), positions.to(device))
    B, K = items.shape
    codes = torch.as_tensor(np.asarray(sids, dtype=np.int64)[np.maximum(items, 0)], device=device)  # (B, K, L)
    logits = model.level_logits(stepper.last[:, None], 0).expand(B, K, -1)  # (B, K, W)
    stepper.reorder(torch.zeros(B, K, dtype=torch.int64, device=device))
    total = torch.zeros(B, K, device=device)
    for level in range(cfg.levels):
        code = codes[..., level]
        total += F.log_softmax(logits.float(), dim=-1).gather(-1, code[..., None])[..., 0]
        if level + 1 < cfg.levels:
            logits = model.level_logits(stepper.step(code, level), level + 1)
    out = total.cpu().numpy()
    out[items <= 0] = -np.inf
    return out
