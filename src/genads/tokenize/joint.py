"""Joint refinement of the end-to-end tokenizer with a trained recommender (after ETEGRec).

Alternating: fit the tokenizer, train the recommender on its IDs, then continue the tokenizer's training
with one more term - **alignment**: in-batch InfoNCE between the item's SID embedding (sum of its chosen
code vectors, straight-through, so the gradient reaches the level heads) and the recommender's own
vector of the item (what its next-item loss learned), through a learned linear map - plus an
**anchor**: the cross-entropy of every level head on the item's codes before this round, so that codes
move only where the recommender's evidence outweighs it. The tokenizer's own losses stay on. The codes
are then frozen for serving; :func:`~genads.tokenize.stability.code_stability` of before vs after is
part of the report (the share of items a round re-coded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from genads.tokenize.base import check_vectors
from genads.tokenize.stability import code_stability
from genads.tokenize.unisid import ItemFeatures, UniSIDTokenizer, _tokens, supcon, unisid_losses


@dataclass(frozen=True)
class AlignConfig:
    """One refinement round."""

    epochs: int = 5
    lr: float = 5e-4
    tau: float = 0.3
    """Gumbel temperature during the round (the fit's final one by default)."""
    w_align: float = 1.0
    w_anchor: float = 1.0
    """Weight of the CE on the round's starting codes: higher = more stable codes."""
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be >= 1")
        for name in ("lr", "tau", "temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("w_align", "w_anchor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


def align_to_recommender(tok: UniSIDTokenizer, vectors: np.ndarray, item_vectors: np.ndarray,
                         features: ItemFeatures | None = None, config: AlignConfig | None = None,
                         seed: int = 0) -> tuple[np.ndarray, dict]:
    """Refine a fitted e2e tokenizer in place towards ``item_vectors`` (n, d_rec), the recommender's vectors of
    the same n items (rows aligned with ``vectors``); return (new codes (n, L), report with stability and losses)."""
    cfg = config or AlignConfig()
    model = tok._check_fitted()
    x = torch.from_numpy(check_vectors(vectors, dim=model.vec_in.in_features))
    target = torch.from_numpy(check_vectors(item_vectors, name="item_vectors"))
    if len(target) != len(x):
        raise ValueError(f"item_vectors has {len(target)} rows, vectors {len(x)}: one row per item in both")
    features = features or ItemFeatures()
    tokens = _tokens(features, len(x))
    before = tok.encode(x.numpy(), features)
    anchor = torch.from_numpy(before)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        proj = torch.nn.Linear(target.shape[1], model.cfg.d_model)
    opt = torch.optim.AdamW([*model.parameters(), *proj.parameters()], lr=cfg.lr, weight_decay=0.0)
    tcfg, history = tok.config, []
    model.train()
    for _ in range(cfg.epochs):
        perm, sums = torch.randperm(len(x), generator=gen), {}
        for start in range(0, len(x), tcfg.batch_size):
            idx = perm[start:start + tcfg.batch_size]
            parts = unisid_losses(model, x[idx], tokens[idx], cfg.tau, gen)
            loss = sum(getattr(tcfg, f"w_{k}") * v for k, v in parts.items())
            logits, _, _ = model.decode(x[idx], tokens[idx], forced=anchor[idx])
            sid = model.code_embeddings(_straight_through(logits)).sum(1)
            rec = F.normalize(proj(target[idx]), dim=-1)
            parts["align"] = supcon(sid, rec, torch.eye(len(idx), dtype=torch.bool), cfg.temperature)
            parts["anchor"] = F.cross_entropy(logits.flatten(0, 1), anchor[idx].flatten())
            loss = loss + cfg.w_align * parts["align"] + cfg.w_anchor * parts["anchor"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx) / len(x)
        history.append(sums)
    after = tok.encode(x.numpy(), features)
    tok.history.extend({f"joint_{k}": v for k, v in h.items()} for h in history)
    return after, {**code_stability(before, after), "history": history}


def _straight_through(logits: torch.Tensor) -> torch.Tensor:
    """Argmax one-hot forward, softmax gradient backward: (B, L, K)."""
    soft = F.softmax(logits, dim=-1)
    return F.one_hot(soft.argmax(-1), soft.shape[-1]).float() + soft - soft.detach()
