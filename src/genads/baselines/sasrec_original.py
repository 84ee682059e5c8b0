"""The original SASRec block (Kang & McAuley 2018) as the eSASRec benchmark runs it (RecTools 0.13.0).

Why a second network: the published SASRec+SS figure on Amazon Beauty (.0921 / .0531, history ruled out) was
measured with this block, not with a pre-LN ``nn.TransformerEncoderLayer``. It differs in five ways:

- queries are layer-normalised, keys and values are not: ``q = LN(x)``, ``x = q + attention(q, x, x)``;
- the feed-forward is d -> d with ReLU (no 4x expansion), ``y = LN(x)``, ``out = dropout(FFN(y)) + y``;
- item embeddings are not scaled by sqrt(d); dropout also hits the item table, which is tied to the output, so
  the training logits use the dropped-out table as well;
- every parameter with two or more dimensions is Xavier-normal initialised (biases keep torch's defaults);
- padding keys are *attended to*: RecTools pads every sequence to ``max_len`` and masks only the future, so a
  real position also attends to the padding positions, whose key and value are the projection biases (their
  inputs are zeroed). Here the ``max_len - length`` padding keys of a row, which are identical, are folded
  into one key whose logit carries ``+ log(count)``: exactly the reference's attention without computing the
  padding. ``attend_padding=False`` masks them instead (then a row's scores do not depend on its length
  cap at all).

Every per-position layer (projections, feed-forward, layer norms) runs on the real positions only, packed; only
the (B, H, L, L) attention is laid out padded. A random batch of Beauty users is ~80% padding at its longest row's
length, so this is most of the encoder's cost saved, with the same result (tests/baselines/test_esasrec.py).

The attention's dropout keeps each of a row's padding weights with probability 1 - p on its own; on the folded
weight that is a Binomial(count, 1 - p) / ((1 - p) count) multiplier, drawn as such (``padding_keep``): the same
distribution as the reference's, not one Bernoulli draw on the folded weight (that would drop a short row's
whole padding mass, often most of its attention, with probability p).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def padding_keep(count: Tensor, p: float) -> Tensor:
    """Dropout's multiplier on the folded weight of ``count`` identical keys, each kept with probability 1 - p and
    scaled by 1 / (1 - p): Binomial(count, 1 - p) / ((1 - p) count), drawn per element of ``count`` (0 where
    count is 0)."""
    count = count.float()
    kept = torch.binomial(count, torch.full_like(count, 1.0 - p))
    return kept / ((1.0 - p) * count.clamp(min=1.0))


class OriginalBlock(nn.Module):
    """One SASRec block: LN on queries only, single (3d, d) in-projection, d -> d ReLU feed-forward."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads, self.dropout = n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))  # as nn.MultiheadAttention
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.zeros_(self.out_proj.bias)
        self.q_norm = nn.LayerNorm(d_model)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_model)
        self.ff2 = nn.Linear(d_model, d_model)

    def attention(self, q_in: Tensor, kv_in: Tensor, real: Tensor, n_pad: Tensor | None) -> Tensor:
        """Causal attention of the real positions' ``q_in`` (M, D) over their ``kv_in`` (M, D).

        ``real`` (B, L) marks the M real positions of the batch (row-major, as ``x[real]`` orders them); ``n_pad``
        (B,) counts the padding keys each row would have when padded to max_len (None: padding keys masked).
        Returns (M, D) after the output projection. The projections run on the real positions only: a padding
        position's key and value are the biases (its input is zero), and its query's output is never used.
        """
        D, (B, L) = q_in.shape[1], real.shape
        H, dh = self.n_heads, D // self.n_heads
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)

        def padded(t: Tensor) -> Tensor:  # (M, D) -> (B, H, L, dh), zero at padding
            return t.new_zeros(B, L, D).index_put((real,), t).view(B, L, H, dh).transpose(1, 2)

        q, k, v = padded(F.linear(q_in, wq, bq)), padded(F.linear(kv_in, wk, bk)), padded(F.linear(kv_in, wv, bv))
        logits = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (B, H, L, L)
        causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        allowed = causal & real[:, None, None, :]  # (B, 1, L, L): past real keys only
        logits = logits.masked_fill(~allowed, float("-inf"))
        if n_pad is not None:  # the padding keys, folded: key bk, value bv, weight x count
            pad_logit = (q * bk.view(H, dh)[None, :, None]).sum(-1, keepdim=True) / math.sqrt(dh)  # (B, H, L, 1)
            pad_logit = pad_logit + torch.log(n_pad.float()).view(B, 1, 1, 1)  # log 0 = -inf: no padding
            logits = torch.cat([pad_logit, logits], dim=-1)  # (B, H, L, 1 + L)
            v = torch.cat([bv.view(1, H, 1, dh).expand(B, H, 1, dh), v], dim=2)  # (B, H, 1 + L, dh)
        # A padding query with nothing to attend to (no real key, no counted padding) would give NaN: let it see
        # its own position; its output is dropped below.
        empty = torch.isinf(logits).all(-1, keepdim=True)
        logits = torch.where(empty, torch.zeros_like(logits), logits)
        weights = logits.softmax(-1)
        if n_pad is not None and self.training and self.dropout > 0:  # each padding key dropped on its own
            keep = padding_keep(n_pad.view(B, 1, 1, 1).expand(B, H, L, 1), self.dropout)
            weights = torch.cat([weights[..., :1] * keep, F.dropout(weights[..., 1:], self.dropout, True)], dim=-1)
        else:
            weights = F.dropout(weights, self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(B, L, D)[real]  # (M, D)
        return self.out_proj(out)

    def forward(self, x: Tensor, real: Tensor, n_pad: Tensor | None) -> Tensor:
        """x (M, D), the real positions of a (B, L) batch that ``real`` marks -> (M, D)."""
        q = self.q_norm(x)
        x = q + self.attention(q, x, real, n_pad)
        y = self.ff_norm(x)
        ff = self.ff2(F.dropout(F.relu(self.ff1(y)), self.dropout, self.training))
        return F.dropout(ff, self.dropout, self.training) + y


class OriginalSASRecNet(nn.Module):
    """Item table (dropout on it, tied to the output) + positions -> original SASRec blocks -> final LN."""

    def __init__(self, n_items: int, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.item = nn.Embedding(n_items + 1, cfg.d_model, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(OriginalBlock(cfg.d_model, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=1e-8)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.xavier_normal_(p)

    def table(self) -> Tensor:
        """The item table as this step sees it: (N+1, D), dropped out while training (one draw per batch)."""
        return F.dropout(self.item.weight, self.cfg.dropout, self.training)

    def encode(self, seq: Tensor, table: Tensor) -> Tensor:
        """seq (B, L) left-padded item indices, table (N+1, D) -> hidden states (B, L, D), zero at padding."""
        L = seq.shape[1]
        positions = torch.arange(self.cfg.max_len - L, self.cfg.max_len, device=seq.device)  # right-aligned
        real = seq > 0  # (B, L)
        x = F.dropout(table[seq] + self.pos(positions), self.cfg.dropout, self.training)  # (B, L, D)
        n_pad = self.cfg.max_len - real.sum(1) if self.cfg.attend_padding else None  # (B,)
        x = x[real]  # (M, D): the blocks work on the real positions only (padding is zero before every block)
        for block in self.blocks:
            x = block(x, real, n_pad)
        return x.new_zeros(*seq.shape, x.shape[-1]).index_put((real,), self.norm(x))

    def forward(self, seq: Tensor) -> Tensor:
        """seq (B, L) -> hidden states (B, L, D) with the undropped table (evaluation)."""
        return self.encode(seq, self.table())

    def scores(self, seq: Tensor) -> Tensor:
        """Scores of every item for the next position: (B, N+1)."""
        return self.forward(seq)[:, -1] @ self.item.weight.T
