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
        self.bias = torch.zeros(valid.shape, dtype=h.dtype, device=h.device).masked_fill_(~valid, -torch.inf)
        self.bias = self.bias[:, None, None, :]  # (B, 1, 1, T) added to attention scores
        self.generated: list[tuple[Tensor, Tensor]] = []  # per layer (B, k, H, l, hd), empty before step 1
        self.pos_emb = model.pos.weight[cfg.max_items]  # every generated token sits at item position max_items

    def reorder(self, parent: Tensor) -> None:
        """Beam j of request b continues beam ``parent[b, j]``: (B, k') indices into the current k beams."""
        if self.generated:
            idx = parent[:, :, None, None, None]
            self.generated = [(k.gather(1, idx.expand(-1, -1, *k.shape[2:])), v.gather(1, idx.expand(-1, -1, *v.shape[2:])))
                              for k, v in self.generated]

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
        self.generated = new
        return x

    def _attend(self, attn: torch.nn.Module, x: Tensor, layer: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, k, D = x.shape
        H = attn.n_head
        q, kk, vv = (t.view(B, k, H, D // H) for t in attn.qkv(x).split(D, dim=2))  # (B, k, H, hd)
        if self.generated:
            kk = torch.cat([self.generated[layer][0], kk[:, :, :, None]], dim=3)  # (B, k, H, l + 1, hd)
            vv = torch.cat([self.generated[layer][1], vv[:, :, :, None]], dim=3)
        else:
            kk, vv = kk[:, :, :, None], vv[:, :, :, None]
        hk, hv = self.history[layer]  # (B, H, T, hd)
        scale = 1.0 / math.sqrt(D // H)
        qh = q.transpose(1, 2)  # (B, H, k, hd)
        s_hist = (qh @ hk.transpose(2, 3)) * scale + self.bias  # (B, H, k, T)
        s_gen = torch.einsum("bkhd,bkhld->bhkl", q, kk) * scale  # (B, H, k, l + 1)
        p = F.softmax(torch.cat([s_hist, s_gen], dim=3), dim=3)
        T = hk.shape[2]
        y = p[..., :T] @ hv + torch.einsum("bhkl,bkhld->bhkd", p[..., T:], vv)  # (B, H, k, hd)
        return attn.proj(y.transpose(1, 2).reshape(B, k, D)), (kk, vv)
