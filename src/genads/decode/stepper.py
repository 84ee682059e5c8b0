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

import torch
import torch.nn.functional as F
from torch import Tensor

from genads.slate.model import N_SPECIAL, PAD, SlateModel


class BeamStepper:
    """KV state of B requests' beams while their next item's SID is decoded."""

    def __init__(self, model: SlateModel, tokens: Tensor, positions: Tensor) -> None:
        """Reads the histories: ``tokens``, ``positions`` (B, T) left-padded (``history_tokens``)."""
        self.model, cfg = model, model.config
        valid = tokens != PAD
        h, cache = model.trunk(tokens, positions, valid)
        self.last = h[:, -1]  # (B, D) state that predicts level 0
        self.history = cache  # per layer (B, H, T, hd)
        self.bias = None if bool(valid.all()) else torch.zeros(
            valid.shape, dtype=h.dtype, device=h.device).masked_fill_(~valid, -torch.inf)[:, None, None, :]
        """(B, 1, 1, T) added to the (B, H, k, T) history attention scores: -inf at PAD keys (None: no PAD)."""
        self.generated: Tensor | None = None
        """(n_layer, 2, B, k, H, l, hd) keys and values of the l generated tokens of each beam."""
        self.pos_emb = model.pos.weight[cfg.max_items]  # every generated token sits at item position max_items
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
        model, cfg = self.model, self.model.config
        tokens = N_SPECIAL + level * cfg.codebook_size + codes
        x = model.tok(tokens) + model.level.weight[level] + self.pos_emb  # (B, k, D)
        new = []
        for i, block in enumerate(model.blocks):
            a, kv = self._attend(block.attn, block.ln1(x), i)
            new.append(kv)
            x = x + a
            x = x + block.mlp(block.ln2(x))
        self.generated = torch.stack(new)
        return x

    def _attend(self, attn: torch.nn.Module, x: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        B, k, D = x.shape
        H = attn.n_head
        qkv = attn.qkv(x).view(B, k, 3, H, D // H)
        q = qkv[:, :, 0] * self.scale  # (B, k, H, hd)
        kv = qkv[:, :, 1:].permute(2, 0, 1, 3, 4)[:, :, :, :, None]  # (2, B, k, H, 1, hd)
        if self.generated is not None:
            kv = torch.cat([self.generated[layer], kv], dim=4)  # (2, B, k, H, l + 1, hd)
        hk, hv = self.history[layer]  # (B, H, T, hd)
        s_hist = q.transpose(1, 2) @ hk.transpose(2, 3)  # (B, H, k, T)
        if self.bias is not None:
            s_hist = s_hist + self.bias
        s_gen = (kv[0] * q[:, :, :, None, :]).sum(-1).transpose(1, 2)  # (B, H, k, l + 1)
        p = F.softmax(torch.cat([s_hist, s_gen], dim=3), dim=3)
        T = hk.shape[2]
        y_gen = (p[..., T:].transpose(1, 2)[..., None] * kv[1]).sum(3)  # (B, k, H, hd)
        y = (p[..., :T] @ hv).transpose(1, 2) + y_gen  # (B, k, H, hd)
        return attn.proj(y.reshape(B, k, D)), kv
