"""Incremental decoding for beam search: one KV cache of the history per request, shared by its beams.

The plain way to extend ``k`` beams is to copy the request's history cache ``k`` times and re-gather
it at every level (``index_select`` of (B * k, H, T, d) per layer): the copies dominate decode time
although the history is the same for every beam of a request. :class:`BeamStepper` keeps the
history's keys and values once, (B, H, T, d) per layer, and only the few generated tokens per beam,
(B, k, H, l, d), which are re-gathered when beams are reordered. A step attends each beam's new
token to its request's history (one batched matmul over the k beams) and to that beam's own
generated tokens, with one softmax over both. It reads the weights of a
:class:`~genads.slate.model.SlateModel` and computes exactly what ``model.trunk`` computes with a
per-beam cache (tests/decode/test_stepper.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genads.slate.model import N_SPECIAL, PAD, SlateModel


class LayerWeights(NamedTuple):
    """One transformer block's weights, read once per decode (functional calls skip module overhead)."""

    ln1: nn.LayerNorm
    qkv: nn.Linear
    proj: nn.Linear
    ln2: nn.LayerNorm
    fc: nn.Linear
    gelu: str
    out: nn.Linear

    @classmethod
    def of(cls, block: nn.Module) -> LayerWeights:
        mlp = list(block.mlp)
        if not (len(mlp) >= 3 and isinstance(mlp[0], nn.Linear) and isinstance(mlp[1], nn.GELU)
                and isinstance(mlp[2], nn.Linear) and all(isinstance(m, nn.Dropout) for m in mlp[3:])):
            raise TypeError("BeamStepper expects Block.mlp = Linear, GELU, Linear[, Dropout]: "
                            "update genads/decode/stepper.py with the model")
        return cls(block.ln1, block.attn.qkv, block.attn.proj, block.ln2, mlp[0], mlp[1].approximate, mlp[2])


def _ln(x: Tensor, ln: nn.LayerNorm) -> Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class BeamStepper:
    """KV state of B requests' beams while their next item's SID is decoded."""

    def __init__(self, model: SlateModel, tokens: Tensor, positions: Tensor) -> None:
        """Reads the histories: ``tokens``, ``positions`` (B, T) left-padded (``history_tokens``)."""
        self.model, cfg = model, model.config
        valid = tokens != PAD
        h, cache = model.trunk(tokens, positions, valid)
        self.last = h[:, -1]  # (B, D) state that predicts level 0
        B, H, T, hd = cache[0][0].shape
        self.keys_t = [k.reshape(B * H, T, hd).transpose(1, 2) for k, _ in cache]  # per layer (B * H, hd, T)
        self.values = [v.reshape(B * H, T, hd) for _, v in cache]  # per layer (B * H, T, hd)
        self.bias = None if bool(valid.all()) else torch.zeros(valid.shape, dtype=h.dtype, device=h.device).masked_fill_(
            ~valid, -torch.inf)[:, None, None, :].expand(B, H, 1, T).reshape(B * H, 1, T)
        """(B * H, 1, T) added to history attention scores: -inf at PAD keys (None: no PAD)."""
        self.generated: Tensor | None = None
        """(n_layer, 2, B, k, H, l, hd) keys and values of the l generated tokens of each beam."""
        self.layers = [LayerWeights.of(block) for block in model.blocks]
        self.level_pos = model.level.weight[:cfg.levels] + model.pos.weight[cfg.max_items]  # (levels, D): at max_items
        self.scale = 1.0 / math.sqrt(cfg.d_model // cfg.n_head)

    def reorder(self, parent: Tensor) -> None:
        """Beam j of request b continues beam ``parent[b, j]``: (B, k') indices into the current k beams."""
        if self.generated is not None:
            n_layer, _, B, k, *rest = self.generated.shape
            rows = (torch.arange(B, device=parent.device)[:, None] * k + parent).reshape(-1)  # (B * k',)
            flat = self.generated.reshape(n_layer * 2, B * k, *rest).index_select(1, rows)
            self.generated = flat.reshape(n_layer, 2, B, parent.shape[1], *rest)

    def step(self, codes: Tensor, level: int) -> Tensor:
        """Append level-``level`` codes (B, k), one per beam; returns their final hidden states (B, k, D)."""
        cfg = self.model.config
        B, k = codes.shape
        tokens = codes.reshape(-1) + (N_SPECIAL + level * cfg.codebook_size)
        x = F.embedding(tokens, self.model.tok.weight) + self.level_pos[level]  # (B * k, D)
        new = []
        for i, w in enumerate(self.layers):
            a, kv = self._attend(F.linear(_ln(x, w.ln1), w.qkv.weight, w.qkv.bias), B, k, i)
            new.append(kv)
            x = x + F.linear(a, w.proj.weight, w.proj.bias)
            hidden = F.gelu(F.linear(_ln(x, w.ln2), w.fc.weight, w.fc.bias), approximate=w.gelu)
            x = x + F.linear(hidden, w.out.weight, w.out.bias)
        self.generated = torch.stack(new)
        return x.view(B, k, -1)

    def _attend(self, qkv: Tensor, B: int, k: int, layer: int) -> tuple[Tensor, Tensor]:
        """Attention of the new tokens' ``qkv`` (B * k, 3 D): output (B * k, D) and the beams' keys/values."""
        H = self.model.config.n_head
        qkv = qkv.view(B, k, 3, H, -1)
        q = qkv[:, :, 0] * self.scale  # (B, k, H, hd)
        kv = qkv[:, :, 1:].permute(2, 0, 1, 3, 4).unsqueeze(4)  # (2, B, k, H, 1, hd)
        if self.generated is not None:
            kv = torch.cat([self.generated[layer], kv], dim=4)  # (2, B, k, H, l + 1, hd)
        qh = q.transpose(1, 2).reshape(B * H, k, -1)  # (B * H, k, hd)
        s_hist = torch.bmm(qh, self.keys_t[layer]) if self.bias is None else \
            torch.baddbmm(self.bias, qh, self.keys_t[layer])  # (B * H, k, T)
        T = s_hist.shape[2]
        s_gen = (kv[0] * q.unsqueeze(3)).sum(-1).transpose(1, 2)  # (B, H, k, l + 1)
        p = torch.softmax(torch.cat([s_hist.view(B, H, k, T), s_gen], dim=3), dim=3)  # (B, H, k, T + l + 1)
        y = torch.bmm(p.view(B * H, k, -1)[:, :, :T], self.values[layer]).view(B, H, k, -1).transpose(1, 2)
        y = y + (p[..., T:].transpose(1, 2).unsqueeze(-1) * kv[1]).sum(3)  # (B, k, H, hd)
        return y.reshape(B * k, -1), kv
