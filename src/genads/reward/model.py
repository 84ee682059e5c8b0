"""A permutation-aware slate reward model (EGA): self-attention over the ads of a candidate slate.

Every position of a slate is one token, the sum of

* the ad's **SID embedding**: the sum of one embedding per Semantic-ID level (so ads that share a
  prefix share part of their vector, and an ad never seen in training still has one),
* a **position embedding** (slot 0 is the top of the slate),
* a linear map of the ad's **bid features**: ``(log bid - bid_mean) / bid_std`` and an indicator
  that the ad has a bid at all.

With ``use_history`` a context token, the mean SID embedding of the user's recent ads, is put in
front. With ``use_score`` each position also gets a linear map of the slate model's log-probability
of the ad's SID given the user's history (normalised like the bid): the generator's own relevance
estimate, which EGA's reward model reads from the shared generative backbone. A small bidirectional transformer encoder lets every position see every other one, so the
predicted pCTR of an ad depends on where it sits and on what it sits next to (the permutation-aware
part: the same ads in another order get other predictions). Heads: pCTR per position and, with
``cvr``, pCVR (conversion given click) per position; each head also has a learned per-slot logit
bias, a direct path for the plain position effect (the position-bias tower of PAL, Guo et al.
2019) that leaves the attention free for the context effects.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from genads.io import atomic_write, atomic_write_text

CONFIG, WEIGHTS = "reward_config.json", "reward.safetensors"


@dataclass(frozen=True)
class RewardConfig:
    """Architecture of the slate reward model."""

    levels: int
    """SID tokens per ad."""
    codebook_size: int
    """Codes per level (the largest level's vocabulary)."""
    max_slate: int = 10
    """Longest slate (positions 0..max_slate-1)."""
    d_model: int = 32
    n_layer: int = 2
    n_head: int = 2
    dropout: float = 0.0
    use_history: bool = False
    """Prepend a user context token (mean SID embedding of the history)."""
    cvr: bool = False
    """Also predict pCVR (conversion given click) per position."""
    use_score: bool = False
    """Read a per-position score: the slate model's log P(ad's SID | history)."""
    bid_mean: float = 0.0
    """Mean of log(bid) in the training data (:func:`genads.reward.train.with_scales`)."""
    bid_std: float = 1.0
    score_mean: float = 0.0
    """Mean of the generator scores in the training data."""
    score_std: float = 1.0

    def __post_init__(self) -> None:
        for name in ("levels", "codebook_size", "max_slate", "d_model", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"RewardConfig.{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_head:
            raise ValueError(f"RewardConfig.d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RewardConfig.dropout={self.dropout} must be in [0, 1)")
        for name in ("bid", "score"):
            mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
            if not std > 0 or not math.isfinite(mean):
                raise ValueError(f"RewardConfig.{name}_std={std} must be > 0 and {name}_mean={mean} finite")


def bid_features(bids: Tensor, mean: float, std: float) -> Tensor:
    """(..., 2): normalised log bid (0 where there is no bid) and a has-bid indicator."""
    has = bids > 0
    logb = torch.where(has, (torch.log(bids.clamp_min(1e-12)) - mean) / std, torch.zeros_like(bids))
    return torch.stack([logb, has.to(bids.dtype)], dim=-1)


class SlateRewardModel(nn.Module):
    """Per-position pCTR (and pCVR) for slates of ads described by their SIDs and bids."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        self.config = c = config
        self.codes = nn.Embedding(c.levels * c.codebook_size, c.d_model)
        self.position = nn.Embedding(c.max_slate, c.d_model)
        self.bid = nn.Linear(2, c.d_model)
        self.score = nn.Linear(1, c.d_model) if c.use_score else None
        self.context = nn.Linear(c.d_model, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_head, 4 * c.d_model, c.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layer, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, 2 if c.cvr else 1)
        self.slot_bias = nn.Parameter(torch.zeros(c.max_slate, 2 if c.cvr else 1))
        self.register_buffer("level_offset", torch.arange(c.levels) * c.codebook_size, persistent=False)
        nn.init.normal_(self.codes.weight, std=0.1)
        nn.init.normal_(self.position.weight, std=0.1)

    def sid_embedding(self, sids: Tensor) -> Tensor:
        """(..., L) codes -> (..., d): the sum of the per-level code embeddings."""
        if sids.shape[-1] != self.config.levels:
            raise ValueError(f"sids have {sids.shape[-1]} levels, the model {self.config.levels}")
        return self.codes(sids + self.level_offset).sum(dim=-2)

    def forward(self, sids: Tensor, bids: Tensor, valid: Tensor, history: Tensor | None = None,
                history_valid: Tensor | None = None, scores: Tensor | None = None) -> Tensor:
        """Logits (B, S, 1 or 2): pCTR logit and, with ``cvr``, pCVR logit per position.

        Args:
            sids: (B, S, L) the slate's ads' SIDs, position 0 first.
            bids: (B, S) bids (0 = none).
            valid: (B, S) bool, False at padding positions (their outputs are meaningless).
            history, history_valid: (B, H, L) SIDs of the user's recent ads and (B, H) bool; needed
                when ``use_history``.
            scores: (B, S) the slate model's log P(SID | history) of each ad; needed when ``use_score``.
        """
        c = self.config
        B, S = valid.shape
        if c.max_slate < S:
            raise ValueError(f"slate of {S} positions, the model takes at most max_slate={c.max_slate}")
        pos = torch.arange(S, device=sids.device)
        x = self.sid_embedding(sids) + self.position(pos) + self.bid(bid_features(bids.float(), c.bid_mean, c.bid_std))
        if c.use_score:
            if scores is None:
                raise ValueError("this reward model reads generator scores: pass scores")
            z = torch.where(valid, (scores.float().clamp_min(-1e4) - c.score_mean) / c.score_std, 0.0)
            x = x + self.score(z[..., None])
        pad = ~valid
        if c.use_history:
            if history is None or history_valid is None:
                raise ValueError("this reward model uses the history: pass history and history_valid")
            w = history_valid.float()[..., None]
            mean = (self.sid_embedding(history) * w).sum(1) / w.sum(1).clamp_min(1.0)
            x = torch.cat([self.context(mean)[:, None], x], dim=1)
            pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=pad.device), pad], dim=1)
        pad = pad & ~pad.all(dim=1, keepdim=True)  # an all-padding row would give NaN attention
        h = self.norm(self.encoder(x, src_key_padding_mask=pad))
        if c.use_history:
            h = h[:, 1:]
        return self.head(h) + self.slot_bias[:S]

    def predict(self, sids: Tensor, bids: Tensor, valid: Tensor, history: Tensor | None = None,
                history_valid: Tensor | None = None, scores: Tensor | None = None) -> Tensor:
        """Probabilities (B, S, 1 or 2), 0 at padding positions; eval mode, no gradient."""
        was = self.training
        self.eval()
        with torch.no_grad():
            p = torch.sigmoid(self.forward(sids, bids, valid, history, history_valid, scores))
        self.train(was)
        return p * valid[..., None]


def save_reward_model(model: SlateRewardModel, folder: str | Path, extra: dict | None = None) -> Path:
    """``folder/reward_config.json`` (config + ``extra``) and ``folder/reward.safetensors``, both atomic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(tensors, tmp))
    atomic_write_text(folder / CONFIG, json.dumps({"config": asdict(model.config), **(extra or {})}, indent=2) + "\n")
    return folder


def load_reward_model(folder: str | Path) -> tuple[SlateRewardModel, dict]:
    """(model in eval mode, the JSON record) from a folder written by :func:`save_reward_model`."""
    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found: is {folder} a reward model folder "
                                    "(`genads reward train`)?")
    record = json.loads((folder / CONFIG).read_text())
    try:
        config = RewardConfig(**record["config"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{folder / CONFIG}: bad 'config' field: {err}") from err
    model = SlateRewardModel(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    model.eval()
    return model, record


def slate_inputs(items: np.ndarray, sids: np.ndarray, bids: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Item indices (B, S) (<= 0 = empty) -> (sids (B, S, L), bids (B, S), valid (B, S)) tensors."""
    items = np.asarray(items, dtype=np.int64)
    valid = items > 0
    safe = np.where(valid, items, 0)
    return (torch.as_tensor(np.asarray(sids, dtype=np.int64)[safe]),
            torch.as_tensor(np.where(valid, np.asarray(bids, dtype=np.float32)[safe], 0.0), dtype=torch.float32),
            torch.as_tensor(valid))
