"""The parallel generator's training loss over one batch of windows: per-code cross-entropy plus an item softmax.

- **code CE** (RPG): the mean over the m heads of the cross-entropy of the next item's code;
- **item softmax** (the item-level contrastive term of ACERec/LIGER, the loss of SASRec+SS): the exact item score
  (codes, plus the ID term when the model scores IDs) of the next item against negatives shared by the batch, drawn
  for every position (the eSASRec recipe), or every catalogue item (the full softmax), per
  :attr:`~genads.parallel.train.ParallelTrainConfig.negatives`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genads.baselines.sasrec import SampledLogits, draw_negatives
from genads.parallel.model import ParallelModel

if TYPE_CHECKING:
    from genads.parallel.train import ParallelTrainConfig


class Objective(nn.Module):
    """Code CE + item sampled softmax over one batch of windows (a module, so DDP can wrap it)."""

    def __init__(self, model: ParallelModel, item_codes: Tensor, cfg: ParallelTrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.register_buffer("item_codes", item_codes, persistent=False)  # (N+1, m)
        offsets = torch.arange(item_codes.shape[1], device=item_codes.device) * model.config.codebook_size
        self.register_buffer("flat_codes", item_codes + offsets, persistent=False)  # (N+1, m): columns of (m·K)

    def forward(self, items: Tensor, targets: Tensor, gen: torch.Generator, norm: Tensor) -> tuple[Tensor, Tensor]:
        """Losses summed over this rank's positions and divided by ``norm``, the positions of the whole
        (global) batch, so that DDP's gradient average over ranks equals one process on the whole batch."""
        model, cfg = self.model, self.cfg
        h = model(items, self.item_codes[items])
        mask = targets > 0
        h = h[mask]  # (M, D)
        q = model.code_queries(h)  # (M, m, D), already / temperature
        table = model.code_table()  # (m, K, D)
        pos = targets[mask]
        pos_codes = self.item_codes[pos]  # (M, m)
        if cfg.negatives == "per-position":
            code_ce, item_ce = self._per_position(h, q, table, pos, pos_codes, gen, norm)
        else:
            code_ce, item_ce = self._shared(h, q, table, pos, pos_codes, gen, norm)
        loss = cfg.code_weight * code_ce + cfg.item_weight * item_ce
        return loss, torch.stack([code_ce.detach(), item_ce.detach()])

    def _id_scale(self) -> float:
        """Factor of h·e in the item logit: ``scale · id_weight``, so the logit is ``scale`` times the item score."""
        model = self.model
        return self._scale() * model.config.id_weight if model.scores_ids else 0.0

    def _id_table(self) -> Tensor:
        """The ID table as the item loss scores it: with ``id_out_dropout`` while the model trains."""
        return F.dropout(self.model.item.weight, self.cfg.id_out_dropout, self.model.training)

    def _scale(self) -> float:
        """item logit = scale · Σ_k logit_k = mean_k cos_k / item_temperature (+ the ID term)."""
        return self.model.config.temperature / (self.model.config.n_codes * self.cfg.item_temperature)

    def _logits(self, queries: Tensor, keys: Tensor) -> Tensor:
        """(M, n) = queries @ keys.T, in bfloat16 under ``item_bf16`` (returned as fp32 for the softmax)."""
        if not self.cfg.item_bf16:
            return queries @ keys.T
        with torch.autocast(queries.device.type, dtype=torch.bfloat16):
            return (queries @ keys.T).float()

    def _shared(self, h: Tensor, q: Tensor, table: Tensor, pos: Tensor, pos_codes: Tensor, gen: torch.Generator,
                norm: Tensor) -> tuple[Tensor, Tensor]:
        """Code CE over ``code_heads`` random heads; item softmax against negatives shared by the batch (every item
        but the positive with ``negatives='all'``)."""
        cfg = self.cfg
        m = q.shape[1]
        code_ce = item_ce = q.new_zeros(())
        if cfg.code_weight > 0:
            heads = torch.arange(m)
            if 0 < cfg.code_heads < m:
                heads = torch.randperm(m, generator=gen)[:cfg.code_heads]
            heads = heads.to(pos.device)
            logits = torch.bmm(q[:, heads].transpose(0, 1), table[heads].transpose(1, 2))  # (h, M, K)
            code_ce = F.cross_entropy(logits.flatten(0, 1), pos_codes[:, heads].T.flatten(),
                                      reduction="sum") / (norm * len(heads))
        if cfg.item_weight > 0:
            # item logit = mean_k cos_k / item_temperature: the exact score's order. Negatives are shared by
            # the batch (one (M, m·D) x (m·D, n) product), never the positive itself.
            scale, id_scale = self._scale(), self._id_scale()
            ks = torch.arange(m, device=pos.device)
            pos_logit = (q * table[ks, pos_codes]).sum((1, 2)) * scale  # (M,)
            if cfg.negatives == "all":
                neg = torch.arange(1, len(self.item_codes), device=pos.device)
            else:
                neg = torch.randint(1, len(self.item_codes), (cfg.n_negatives,), generator=gen).to(pos.device)
            neg_vecs = table[ks, self.item_codes[neg]]  # (n, m, D)
            neg_logit = self._logits(q.flatten(1), neg_vecs.flatten(1)) * scale  # (M, n)
            if id_scale:
                ids = self._id_table()
                pos_logit = pos_logit + (h * ids[pos]).sum(1) * id_scale
                neg_logit = neg_logit + self._logits(h, ids[neg]) * id_scale
            neg_logit = neg_logit.masked_fill(neg.unsqueeze(0) == pos.unsqueeze(1), float("-inf"))
            item_logits = torch.cat([pos_logit.unsqueeze(1), neg_logit], dim=1)
            item_ce = F.cross_entropy(item_logits, torch.zeros(len(pos), dtype=torch.long, device=pos.device),
                                      reduction="sum") / norm
        return code_ce, item_ce

    def _per_position(self, h: Tensor, q: Tensor, table: Tensor, pos: Tensor, pos_codes: Tensor,
                      gen: torch.Generator, norm: Tensor) -> tuple[Tensor, Tensor]:
        """Code CE over every head; item softmax with ``n_negatives`` drawn independently for every position.

        The item logit of item i is Σ_k C[k, code_k(i)] · scale, where C (M, m, K) are the code logits: so each
        negative costs m gathers from C (computed once, for the code loss too), and the (M, n) negatives never
        materialise their (M, n, m·d) code vectors. Negatives are uniform over the items, the positive not
        rejected (as the eSASRec recipe draws them).
        """
        cfg = self.cfg
        M, m, _ = q.shape
        logits = torch.bmm(q.transpose(0, 1), table.transpose(1, 2)).transpose(0, 1)  # (M, m, K)
        code_ce = item_ce = q.new_zeros(())
        if cfg.code_weight > 0:
            code_ce = F.cross_entropy(logits.flatten(0, 1), pos_codes.flatten(), reduction="sum") / (norm * m)
        if cfg.item_weight > 0:
            scale, id_scale = self._scale(), self._id_scale()
            neg = draw_negatives(M, cfg.n_negatives, len(self.item_codes) - 1, gen).to(pos.device)  # (M, n)
            cols = torch.cat([pos.unsqueeze(1), neg], dim=1)  # (M, 1 + n): the positive first
            idx = self.flat_codes[cols].flatten(1)  # (M, (1 + n) * m): code k of item i at column k·K + code
            item_logits = logits.flatten(1).gather(1, idx).view(M, -1, m).sum(-1) * scale  # (M, 1 + n)
            if id_scale:
                item_logits = item_logits + SampledLogits.apply(h, self._id_table(), cols) * id_scale
            item_ce = F.cross_entropy(item_logits, torch.zeros(M, dtype=torch.long, device=pos.device),
                                      reduction="sum") / norm
        return code_ce, item_ce
