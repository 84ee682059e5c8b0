"""The generative slate model: a decoder-only transformer over Semantic-ID tokens.

A user's history is the concatenation of its items' SIDs, ``[BOS, a1 a2 a3 a4, b1 b2 b3 b4, ...]``;
the model reads it left to right and writes the next item one SID token at a time. Level l code c
is its own token (``N_SPECIAL + l * codebook_size + c``), and every position also gets a level
embedding and an item-position embedding. Item positions are right-aligned, as in SASRec: the item
being generated at serving time is always at position ``max_items`` and the history counts back from
it, so the position of the next item is one that every training window trains on (positions
counted from the oldest item would leave the longest users' next position untrained).

Why decoder-only rather than TIGER's encoder–decoder: every prefix of a training sequence is a
training example in one causal pass (SASRec-style dense supervision, ~L x more targets per
sequence than an encoder–decoder that decodes only the last item), the history and the generated
tokens share one KV cache, so beam search extends the cache instead of re-reading the history,
and the code stays one small stack of blocks (nanoGPT). The price is that history tokens are not
encoded bidirectionally, which matters little for next-item prediction.

Multi-token prediction (EGA, after Gloeckle et al. 2024): besides the next-token head, ``mtp_heads``
extra heads read the same trunk state and predict the token of the same level ``j`` items further
on (offset ``j * levels`` tokens), for j = 1..mtp_heads. They only add training signal; decoding
uses the next-token head. All heads are tied to the token embedding, restricted to the codes of
the level being predicted.

Optional user and context tokens (after TIGER's hashed user token): with ``user_buckets``
> 0 a user id hashed into that many buckets, and with ``context_size`` > 0 a context id (surface,
slot, hour, ...), each have an embedding that is added at the BOS position. BOS is the first token
every later token attends to, so this is a prefix token that keeps the token layout (and the KV
cache of beam search) unchanged; without ids the BOS position carries no user or context.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD, BOS = 0, 1
N_SPECIAL = 2
"""Token ids 0 (padding) and 1 (beginning of history) precede the SID tokens."""

KVCache = list[tuple[Tensor, Tensor]]
"""Per layer (keys, values), each (B, H, T, D/H)."""


@dataclass(frozen=True)
class SlateConfig:
    """Architecture of the SID transformer."""

    levels: int = 4
    """SID tokens per item (the tokenizer's levels plus the disambiguation level)."""
    codebook_size: int = 256
    """Codes per level (the largest level's vocabulary); token ids are level-specific."""
    max_items: int = 20
    """History items read; longer histories keep their last ``max_items``."""
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.1
    attn_dropout: float | None = None
    """Dropout on the attention weights (None: ``dropout``); 0 saves ~15% of CPU training time."""
    mtp_heads: int = 1
    """Extra multi-token-prediction heads: head j predicts the item j steps after the next one."""
    user_buckets: int = 0
    """Hashed user-id buckets of the optional user token (0 = no user token)."""
    context_size: int = 0
    """Context ids 0..context_size - 1 of the optional context token (0 = no context token)."""

    def __post_init__(self) -> None:
        for name in ("levels", "codebook_size", "max_items", "n_layer", "n_head", "d_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.attn_dropout is not None and not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"attn_dropout={self.attn_dropout} must be in [0, 1)")
        for name in ("mtp_heads", "user_buckets", "context_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")

    @property
    def vocab_size(self) -> int:
        """Token ids: PAD, BOS, then ``levels * codebook_size`` SID tokens."""
        return N_SPECIAL + self.levels * self.codebook_size

    @property
    def max_tokens(self) -> int:
        """Longest token sequence: BOS + (history + next item) x levels."""
        return 1 + (self.max_items + 1) * self.levels


PRESETS: dict[str, SlateConfig] = {
    "tiny": SlateConfig(max_items=8, n_layer=1, n_head=2, d_model=32, dropout=0.0, mtp_heads=1),
    "small": SlateConfig(max_items=20, n_layer=2, n_head=4, d_model=64, dropout=0.1, mtp_heads=1),
    "beauty": SlateConfig(max_items=20, n_layer=3, n_head=4, d_model=64, dropout=0.2, mtp_heads=0),
}
"""Architectures; ``levels`` / ``codebook_size`` are set from the SIDs with :func:`sized_for`. "beauty" is
sized for ~20 minutes of single-thread CPU training on Amazon Beauty (22k users, 12k items); it has no
multi-token head because on Beauty the head (weight 0.3) cost ~40% more CPU per step and lowered
validation NDCG@10 (.0211 vs .0254 after 8 epochs, benchmarks/results/beauty_generative_pilot_*.json)."""


def sized_for(config: SlateConfig, sids: np.ndarray) -> SlateConfig:
    """``config`` with ``levels`` and ``codebook_size`` taken from an (n_items + 1, L) SID table."""
    from dataclasses import replace

    sids = np.asarray(sids)
    if sids.ndim != 2 or len(sids) < 2:
        raise ValueError(f"sids must be (n_items + 1, levels) with row 0 = padding, got shape {sids.shape}")
    return replace(config, levels=sids.shape[1], codebook_size=int(sids.max()) + 1)


def user_bucket(user_ids: np.ndarray, buckets: int) -> np.ndarray:
    """Stable hash (CRC-32 of the id's text) of each user id into ``0..buckets - 1``: (B,) int64."""
    if buckets < 1:
        raise ValueError(f"buckets={buckets} must be >= 1")
    return np.array([zlib.crc32(str(u).encode()) % buckets for u in np.asarray(user_ids).tolist()], dtype=np.int64)


def history_tokens(history: np.ndarray, sids: np.ndarray, codebook_size: int, last_pos: int) -> tuple[Tensor, Tensor]:
    """Token ids and item positions for left-padded item histories.

    Args:
        history: (B, m) item indices, 0 = padding on the left.
        sids: (n_items + 1, L) SID of each item index.
        last_pos: item position of each row's last item (``max_items`` for a training window whose
            last item is a target, ``max_items - 1`` for a history whose next item is generated).

    Returns:
        tokens (B, T) with T = 1 + m' * L (BOS right before the first real item, PAD before it;
        leading all-PAD columns dropped) and positions (B, T) item positions (BOS, PAD: 0).
    """
    history = np.asarray(history, dtype=np.int64)
    B, m = history.shape
    L = sids.shape[1]
    ext = np.concatenate([np.zeros((B, 1), np.int64), history], axis=1)  # (B, m + 1)
    n_real = (history > 0).sum(1)
    ext[np.arange(B), m - n_real] = -1  # BOS marker just before the first real item
    tok = N_SPECIAL + np.arange(L) * codebook_size + sids[np.clip(ext, 0, None)]  # (B, m + 1, L)
    tok[ext == 0] = PAD
    tok[ext == -1] = PAD
    tok[ext == -1, L - 1] = BOS
    from_end = n_real[:, None] - np.cumsum(ext > 0, axis=1)  # 0 for the last item
    pos = np.where(ext > 0, np.clip(last_pos - from_end, 0, None), 0)
    pos = np.repeat(pos[:, :, None], L, axis=2)
    tokens = torch.from_numpy(tok.reshape(B, -1))
    positions = torch.from_numpy(pos.reshape(B, -1))
    width = int(n_real.max(initial=0)) * L + 1
    return tokens[:, -width:].contiguous(), positions[:, -width:].contiguous()


class SelfAttention(nn.Module):
    def __init__(self, cfg: SlateConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: Tensor, allowed: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in self.qkv(x).split(D, dim=2))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, H, Tk, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    """Pre-LN transformer block (nanoGPT)."""

    def __init__(self, cfg: SlateConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))

    def forward(self, x: Tensor, allowed: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(self.ln1(x), allowed, past)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


class SlateModel(nn.Module):
    """Causal transformer over SID tokens with tied, level-restricted output heads."""

    def __init__(self, config: SlateConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD)
        self.level = nn.Embedding(cfg.levels + 1, cfg.d_model)  # last row: BOS / PAD
        self.pos = nn.Embedding(cfg.max_items + 1, cfg.d_model)
        self.user = nn.Embedding(cfg.user_buckets, cfg.d_model) if cfg.user_buckets else None
        self.context = nn.Embedding(cfg.context_size, cfg.d_model) if cfg.context_size else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.mtp = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.d_model), nn.GELU(),
                          nn.Linear(cfg.d_model, cfg.d_model))
            for _ in range(cfg.mtp_heads)
        )
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled residual projections (GPT-2)
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def token_level(self, tokens: Tensor) -> Tensor:
        """Level of each token (B, T); BOS/PAD get ``levels``."""
        lv = (tokens - N_SPECIAL).div(self.config.codebook_size, rounding_mode="floor")
        return torch.where(tokens >= N_SPECIAL, lv, self.config.levels)

    def prefix_embedding(self, users: Tensor | None, context: Tensor | None) -> Tensor | None:
        """(B, D) sum of the user-bucket and context embeddings given (None when neither applies)."""
        out = None
        for table, ids, name in ((self.user, users, "user"), (self.context, context, "context")):
            if ids is None:
                continue
            if table is None:
                raise ValueError(f"{name} ids given but the model has no {name} token "
                                 f"({'user_buckets' if name == 'user' else 'context_size'}=0)")
            if int(ids.min()) < 0 or int(ids.max()) >= table.num_embeddings:
                raise ValueError(f"{name} ids must be in [0, {table.num_embeddings}), got "
                                 f"[{int(ids.min())}, {int(ids.max())}]")
            out = table(ids) if out is None else out + table(ids)
        return out

    def trunk(self, tokens: Tensor, positions: Tensor, valid: Tensor, past: KVCache | None = None,
              users: Tensor | None = None, context: Tensor | None = None) -> tuple[Tensor, KVCache]:
        """Hidden states (B, T, D) of new tokens given the cache of earlier ones.

        Args:
            tokens, positions: (B, T) new token ids and their item positions.
            valid: (B, T_past + T) bool, False at PAD keys.
            past: per-layer cache of the T_past earlier tokens, or None.
            users, context: optional (B,) user buckets / context ids, added at the BOS position.
        """
        T = tokens.shape[1]
        Tk = valid.shape[1]
        x = self.tok(tokens) + self.level(self.token_level(tokens)) + self.pos(positions.clamp(max=self.config.max_items))
        extra = self.prefix_embedding(users, context)
        if extra is not None:
            x = x + (tokens == BOS).unsqueeze(-1) * extra[:, None, :]
        x = self.drop(x)  # (B, T, D)
        q_idx = torch.arange(Tk - T, Tk, device=tokens.device)
        causal = q_idx[:, None] >= torch.arange(Tk, device=tokens.device)[None, :]  # (T, Tk)
        allowed = (causal[None] & valid[:, None, :]) | (q_idx[:, None] == torch.arange(Tk, device=tokens.device))[None]
        cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, None if past is None else past[i])
            cache.append(kv)
        return x, cache

    def level_logits(self, h: Tensor, level: int) -> Tensor:
        """Scores (..., codebook_size) of the codes of ``level`` from final states (..., D)."""
        start = N_SPECIAL + level * self.config.codebook_size
        return self.ln_f(h) @ self.tok.weight[start:start + self.config.codebook_size].T

    def mtp_hidden(self, h: Tensor, head: int) -> Tensor:
        """Trunk states (..., D) mapped by multi-token head ``head`` (0-based: predicts head + 1 items on)."""
        return h + self.mtp[head](h)

    def forward(self, tokens: Tensor, positions: Tensor, users: Tensor | None = None,
                context: Tensor | None = None) -> Tensor:
        """Trunk states (B, T, D) of full left-padded token sequences (no cache)."""
        return self.trunk(tokens, positions, tokens != PAD, users=users, context=context)[0]


class WithPrefix:
    """A :class:`SlateModel` whose history pass (a ``trunk`` call without a cache) gets fixed user and
    context ids; every other attribute is the model's. Beam search reads the history with
    ``trunk(tokens, positions, valid)`` and extends it from the model's weights, so it decodes with
    the user and context tokens without knowing about them."""

    def __init__(self, model: SlateModel, users: Tensor | None, context: Tensor | None) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.users = None if users is None else users.to(device)
        self.context = None if context is None else context.to(device)

    def trunk(self, tokens, positions, valid, past=None):
        if past is None:
            return self.model.trunk(tokens, positions, valid, None, users=self.users, context=self.context)
        return self.model.trunk(tokens, positions, valid, past)

    def eval(self) -> WithPrefix:
        self.model.eval()
        return self

    def __getattr__(self, name: str):
        return getattr(self.model, name)
