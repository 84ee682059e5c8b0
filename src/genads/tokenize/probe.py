"""A downstream probe of Semantic-ID quality: SASRec whose item embeddings are built from SIDs.

An item's embedding is the sum of its SID tokens' embeddings (one table per level), so items only
share what their SIDs share; a causal transformer reads the history and scores every item by a
dot product with these composed embeddings (full softmax cross-entropy, full-ranking evaluation).
Better SIDs -> better R@10 / N@10. This stands in for the generative slate model until it lands.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genads.data.split import SequenceSplit, left_pad
from genads.eval.harness import evaluate


@dataclass(frozen=True)
class ProbeConfig:
    max_len: int = 50
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 20
    eval_every: int = 2
    patience: int = 3

    def __post_init__(self) -> None:
        for name in ("max_len", "d_model", "n_layers", "n_heads", "batch_size", "epochs", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")


class SIDNet(nn.Module):
    def __init__(self, sids: torch.Tensor, vocab: list[int], cfg: ProbeConfig) -> None:
        super().__init__()
        self.register_buffer("sids", sids)  # (N+1, L) row 0 = padding
        self.tables = nn.ModuleList(nn.Embedding(v, cfg.d_model) for v in vocab)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 2 * cfg.d_model, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.n_heads = cfg.n_heads

    def items(self) -> torch.Tensor:
        """(N+1, d) composed item embeddings."""
        return sum(t(self.sids[:, i]) for i, t in enumerate(self.tables))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) item indices -> (B, T, d) hidden states (causal)."""
        items = self.items()
        t = seq.shape[1]
        h = items[seq] * (seq > 0).unsqueeze(-1) + self.pos(torch.arange(t))
        pad = seq == 0
        # causal, and real positions never attend to padding (padding attends to padding: no empty rows)
        blocked = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) | (pad[:, None, :] & ~pad[:, :, None])
        mask = blocked.repeat_interleave(self.n_heads, dim=0)  # (B * heads, T, T)
        return self.norm(self.encoder(h, mask=mask))


class SIDProbe:
    """Recommender (genads.eval.harness protocol) over SID-composed item embeddings."""

    def __init__(self, sids: np.ndarray, vocab: list[int], config: ProbeConfig | None = None, name: str = "sid-probe") -> None:
        sids = np.asarray(sids, dtype=np.int64)
        if sids.ndim != 2 or sids.shape[1] != len(vocab):
            raise ValueError(f"sids must be (n_items+1, {len(vocab)}) for vocab {vocab}, got {sids.shape}")
        self.sids, self.vocab, self.config, self.name = sids, list(vocab), config or ProbeConfig(), name
        self.net: SIDNet | None = None

    def _batches(self, split: SequenceSplit, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        seqs = [s for s in split.train if len(s) > 1]
        full = torch.from_numpy(left_pad(seqs, self.config.max_len + 1))
        perm = torch.randperm(len(full), generator=gen)
        return [(full[idx, :-1], full[idx, 1:]) for idx in perm.split(self.config.batch_size)]

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = False) -> list[dict]:
        cfg = self.config
        if len(self.sids) != split.n_items + 1:
            raise ValueError(f"sids have {len(self.sids)} rows, the split has {split.n_items} items + padding")
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = SIDNet(torch.from_numpy(self.sids), self.vocab, cfg)
            opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
            log, best, best_state, bad = [], -1.0, None, 0
            for epoch in range(1, cfg.epochs + 1):
                self.net.train()
                total, count = 0.0, 0
                for x, y in self._batches(split, gen):
                    logits = self.net(x) @ self.net.items().T  # (B, T, N+1)
                    logits[..., 0] = -torch.inf
                    keep = (y > 0) & (x > 0)
                    loss = F.cross_entropy(logits[keep], y[keep])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total, count = total + float(loss.detach()) * int(keep.sum()), count + int(keep.sum())
                row = {"epoch": epoch, "loss": total / max(count, 1)}
                if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                    row["valid_ndcg@10"] = evaluate(self, split.valid)["ndcg@10"]
                    if row["valid_ndcg@10"] > best:
                        best, best_state, bad = row["valid_ndcg@10"], copy.deepcopy(self.net.state_dict()), 0
                    else:
                        bad += 1
                log.append(row)
                if bad >= cfg.patience:
                    break
            if best_state is not None:
                self.net.load_state_dict(best_state)
        return log

    @torch.no_grad()
    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        if self.net is None:
            raise ValueError("SIDProbe.recommend before fit")
        self.net.eval()
        seq = torch.from_numpy(left_pad(list(np.asarray(history)), self.config.max_len))
        scores = self.net(seq)[:, -1] @ self.net.items().T  # (B, N+1)
        scores[:, 0] = -torch.inf
        return torch.topk(scores, k, dim=1).indices.numpy()
