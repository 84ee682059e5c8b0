"""The parallel-code generator: one position per item, all ``m`` codes of the next item predicted at once.

Why this shape (the evidence is in benchmarks/results/beauty_generative*.json and docs/generator.md):
the SID family (``genads.slate``) spells an item as 4 tokens, so its sequences are 4x longer than the
history, and beam search can only rank what the beam keeps. The strong generative recommenders of
2025-26 (RPG, ACERec, BARGE) read one position per item and score items exactly. This module does that:

- **Input.** An item is its ``m`` code embeddings (``d_code`` dims each), concatenated and projected to
  the model width: a learned pooling, of which RPG's mean is the special case, plus, optionally, an item-ID
  embedding (the ID/code hybrid ACERec and ELCRec found to pay on sparse data). An ad the model never saw
  in training (a new ad, cold start) has no ID row and is read from its codes alone; training drops
  IDs with probability ``id_dropout`` so that reading codes alone is something the model practises.
- **Trunk.** A small pre-LN causal transformer over item positions, right-aligned positions (SASRec).
- **Heads.** ``m`` heads, one per code: one linear map gives a ``d_code`` query per code, and head k's
  logits are its cosine with the code embeddings of sub-space k over a temperature (input and output
  code embeddings tied). Small ``d_code`` (16, not the model width as in RPG) keeps a training step near
  SASRec's cost on a CPU: the item's output vector is the concatenation of its m unit code vectors
  (m·d_code dims), so the exact item score is also a dot product, which the item-level loss uses.
- **Exact scoring.** ``score(ad) = Σ_k log p_k(code_k(ad))`` for every live ad: ``m`` gathers over the
  catalogue's code table. Every ad is a valid output and none is missed by a beam; a new ad is scored
  as soon as it has codes. Bids are added per ad (``genads.parallel.scoring``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genads.baselines.sasrec import attention_mask


@dataclass(frozen=True)
class ParallelConfig:
    """Architecture of the parallel-code generator."""

    n_codes: int = 32
    """m, codes per item."""
    codebook_size: int = 256
    """Values per code (K)."""
    n_items: int = 0
    """Items with an ID embedding (indices 1..n_items); 0 = codes only, no ID embedding."""
    d_code: int = 16
    """Width of each code embedding (an item's code vector is m * d_code wide)."""
    max_items: int = 50
    """History items read; longer histories keep their last ``max_items``."""
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 1
    dropout: float = 0.2
    temperature: float = 0.07
    """Temperature of the cosine logits of every code head."""
    id_dropout: float = 0.1
    """Training only: chance that an input item is read without its ID embedding (codes only)."""
    id_weight: float = 0.0
    """Weight of the ID term in the item score ``Σ_k logit_k(code_k(i)) + id_weight · h·e_i``, where ``e_i`` is item
    i's ID embedding (tied to the input's, as SASRec's output layer) and ``h`` the history's state; 0 = the code
    score alone (a pure parallel-code model). Needs ``n_items`` > 0. An ad without an ID row (added after training)
    is scored by its codes alone (its ``e`` is the zero padding row)."""
    code_input: bool = True
    """Whether an item's input embedding includes its codes (pooled code embeddings). False: its ID embedding alone
    (an ablation: the codes then only shape the output; an item without an ID row reads as padding)."""
    init: str = "normal"
    """'normal': the default initialisation; 'xavier': Xavier-normal for every matrix but the code embeddings (the
    eSASRec recipe's init; the code embeddings keep std d_code^-0.5, they are read as unit vectors)."""

    def __post_init__(self) -> None:
        for name in ("n_codes", "codebook_size", "d_code", "max_items", "d_model", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_items < 0:
            raise ValueError(f"n_items={self.n_items} must be >= 0")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        for name in ("dropout", "id_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")
        if self.id_weight < 0:
            raise ValueError(f"id_weight={self.id_weight} must be >= 0")
        if self.init not in ("normal", "xavier"):
            raise ValueError(f"init={self.init!r} must be 'normal' or 'xavier'")


class ParallelModel(nn.Module):
    """Items (as codes, optionally + IDs) → causal transformer → m code distributions per position."""

    def __init__(self, config: ParallelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.d_model
        self.code = nn.Embedding(cfg.n_codes * cfg.codebook_size, cfg.d_code)
        self.pool = nn.Linear(cfg.n_codes * cfg.d_code, d, bias=False)
        self.item = nn.Embedding(cfg.n_items + 1, d, padding_idx=0) if cfg.n_items else None
        self.pos = nn.Embedding(cfg.max_items, d)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.n_head, dim_feedforward=d, dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layer, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_codes * cfg.d_code, bias=False)
        if cfg.id_weight > 0 and not cfg.n_items:
            raise ValueError("id_weight > 0 scores items by their ID embedding: it needs n_items > 0")
        if not cfg.code_input and not cfg.n_items:
            raise ValueError("code_input=False reads items by their ID embedding alone: it needs n_items > 0")
        if cfg.init == "xavier":
            for name, p in self.named_parameters():
                if p.dim() >= 2 and name != "code.weight":
                    nn.init.xavier_normal_(p)
        nn.init.normal_(self.code.weight, std=cfg.d_code**-0.5)
        if self.item is not None:
            if cfg.init == "normal":
                nn.init.normal_(self.item.weight, std=d**-0.5)
            with torch.no_grad():
                self.item.weight[0].zero_()
        self.register_buffer("offsets", torch.arange(cfg.n_codes) * cfg.codebook_size, persistent=False)

    def embed_items(self, items: Tensor, codes: Tensor) -> Tensor:
        """(B, L) item indices and their (B, L, m) codes → (B, L, D) inputs; index 0 is padding.

        Items above ``n_items`` (ads added after training) are read from their codes alone.
        """
        x = self.pool(self.code(codes + self.offsets).flatten(-2)) if self.config.code_input else 0.0
        if self.item is not None:
            ids = torch.where(items <= self.config.n_items, items, torch.zeros_like(items))
            if self.training and self.config.id_dropout > 0:
                keep = torch.rand(ids.shape, device=ids.device) >= self.config.id_dropout
                ids = ids * keep
            x = x + self.item(ids)
        return x

    def forward(self, items: Tensor, codes: Tensor) -> Tensor:
        """items (B, L) left-padded, codes (B, L, m) → hidden states (B, L, D) (zero at padding)."""
        L = items.shape[1]
        if self.config.max_items < L:
            raise ValueError(f"history of {L} items is longer than max_items={self.config.max_items}")
        real = (items > 0).unsqueeze(-1)
        positions = torch.arange(self.config.max_items - L, self.config.max_items, device=items.device)
        x = self.embed_items(items, codes) * math.sqrt(self.config.d_model) + self.pos(positions)
        x = self.drop(x) * real
        x = self.blocks(x, mask=attention_mask(items, self.config.n_head))
        return self.norm(x) * real

    def code_queries(self, h: Tensor) -> Tensor:
        """(..., D) states → (..., m, d_code) unit query of every code head, divided by the temperature."""
        q = self.head(h).unflatten(-1, (self.config.n_codes, self.config.d_code))
        return F.normalize(q, dim=-1) / self.config.temperature

    def code_table(self) -> Tensor:
        """(m, K, d_code) unit code embeddings (the heads' classifiers, tied to the input embeddings)."""
        cfg = self.config
        return F.normalize(self.code.weight.view(cfg.n_codes, cfg.codebook_size, cfg.d_code), dim=-1)

    def code_logits(self, h: Tensor) -> Tensor:
        """(..., D) states → (..., m, K) cosine logits / temperature of every code."""
        q = self.code_queries(h)
        return torch.matmul(q.unsqueeze(-2), self.code_table().transpose(1, 2)).squeeze(-2)

    def item_vectors(self, item_codes: Tensor) -> Tensor:
        """(N, m * d_code): each item's unit code embeddings, concatenated.

        For a query ``q = code_queries(h).flatten(-2)``, ``q @ item_vectors.T`` is Σ_k logit_k(code_k), which is the
        exact score Σ_k log p_k(code_k) plus Σ_k logsumexp_k, a constant per history: the same ranking, computed as
        one matrix product (what validation over many users uses; one request uses the m gathers of LiveAds).
        """
        m = self.config.n_codes
        return self.code_table()[torch.arange(m, device=item_codes.device), item_codes].flatten(1)

    @property
    def scores_ids(self) -> bool:
        """Whether the item score has an ID term (``id_weight`` > 0 and an ID table)."""
        return self.item is not None and self.config.id_weight > 0

    def item_queries(self, h: Tensor) -> Tensor:
        """(B, D) states → (B, m·d_code [+ D]) queries whose dot product with :meth:`item_keys` is the item score
        ``Σ_k logit_k(code_k) + id_weight · h·e`` (the code part alone for a model without an ID term)."""
        q = self.code_queries(h).flatten(1)
        return torch.cat([q, self.config.id_weight * h], dim=1) if self.scores_ids else q

    def item_keys(self, item_codes: Tensor, keys: Tensor | None = None) -> Tensor:
        """(N, m·d_code [+ D]) keys of N items given their codes (N, m) and, for the ID term, their item indices
        (N,) (default 0..N-1); an index above ``n_items`` (an ad added after training) has no ID row: zero."""
        v = self.item_vectors(item_codes)
        if not self.scores_ids:
            return v
        if keys is None:
            keys = torch.arange(len(item_codes), device=item_codes.device)
        ids = torch.where(keys <= self.config.n_items, keys, torch.zeros_like(keys))
        return torch.cat([v, self.item.weight[ids]], dim=1)

    def id_scores(self, h: Tensor) -> Tensor | None:
        """(B, D) states → (B, n_items + 1) ID term ``id_weight · h·e_i`` of every item index (column 0, the padding
        row, is 0: what an ad without an ID row gets), or None for a model without an ID term. The exact score of
        an ad is ``Σ_k log p_k(code_k) + id_scores[key]`` (the item score up to a per-history constant). Computed in
        ``h``'s dtype (float64 makes a row's scores independent of its batch, as serving needs)."""
        if not self.scores_ids:
            return None
        return self.config.id_weight * (h @ self.item.weight.to(h.dtype).T)

    def code_logprobs(self, h: Tensor) -> Tensor:
        """(..., D) → (..., m, K) log p_k(code) of every code of the next item."""
        return torch.log_softmax(self.code_logits(h), dim=-1)

    def next_logprobs(self, items: Tensor, codes: Tensor) -> Tensor:
        """log p_k of the next item's codes after each history: (B, m, K)."""
        return self.code_logprobs(self.forward(items, codes)[:, -1])


def score_items(logp: Tensor, item_codes: Tensor) -> Tensor:
    """Exact scores: ``logp`` (B, m, K), ``item_codes`` (N, m) → (B, N) with Σ_k logp[b, k, item_codes[n, k]].

    m gathers of (B, N); memory stays O(B·N), never O(B·N·m).
    """
    out = logp.new_zeros(logp.shape[0], item_codes.shape[0])
    for k in range(item_codes.shape[1]):
        out += logp[:, k, :].index_select(1, item_codes[:, k])
    return out


def item_logprobs(model: ParallelModel, h: Tensor, item_codes: Tensor, item_temperature: float) -> Tensor:
    """(B, N) log P(item | history) of items 1..N for states ``h`` (B, D); ``item_codes`` (N + 1, m), row 0 the
    padding.

    A codes-only model: the exact Σ_k log p_k(code_k(item)), normalised over the code product space (what the
    code heads define). A model with an ID term: the log-softmax over the N items of the item logit
    ``scale · (Σ_k log p_k(code_k) + id_weight · h·e_item)``, ``scale = temperature / (m · item_temperature)``: the
    distribution its item loss trains (the code heads' log-normalisers cancel in the softmax), so the ID term counts
    as it does in the model's ranking.
    """
    logp = score_items(model.code_logprobs(h), item_codes[1:])
    ids = model.id_scores(h)
    if ids is None:
        return logp
    cfg = model.config
    scale = cfg.temperature / (cfg.n_codes * item_temperature)
    known = min(len(item_codes), ids.shape[1])  # an item beyond the ID table has no ID term (its e is zero)
    full = torch.zeros_like(logp)
    full[:, :known - 1] = ids[:, 1:known]
    return torch.log_softmax(scale * (logp + full), dim=1)
