"""The generative slate model behind the evaluation harness's Recommender protocol.

``recommend`` runs trie-constrained beam search over the live ads and returns the slate's ads, so
the harness scores exactly what serving would show: full ranking over the catalogue (every live ad
can be generated) and collision-aware (an SID shared by several ads yields each ad once).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genads.data.split import SequenceSplit
from genads.decode.beam import Slate, generate_slate, live_trie
from genads.slate.checkpoint import load_weights
from genads.slate.model import (
    N_SPECIAL,
    PRESETS,
    SlateConfig,
    SlateModel,
    WithPrefix,
    history_tokens,
    sized_for,
    user_bucket,
)
from genads.slate.train import TRAIN_PRESETS, TrainConfig, fit
from genads.tokenize.trie import PrefixTrie


class SlateRecommender:
    """Train with :func:`genads.slate.train.fit`, recommend with constrained beam search.

    Args:
        sids: (n_items + 1, L) SID of every item index of the split (row 0 = padding).
        config: architecture (``levels`` / ``codebook_size`` are taken from ``sids``).
        train: optimisation settings; ``train.beam`` is the beam width (at least k).
        run_dir: where training writes metrics.jsonl and its checkpoint (None: nothing written).
        trie: the live ads (default: every item of ``sids``).
    """

    name = "generative-slate"

    def __init__(self, sids: np.ndarray, config: SlateConfig | None = None, train: TrainConfig | None = None,
                 run_dir: str | Path | None = None, trie: PrefixTrie | None = None) -> None:
        self.sids = np.asarray(sids, dtype=np.int64)
        self.config = sized_for(config or PRESETS["small"], self.sids)
        self.train = train or TRAIN_PRESETS["small"]
        self.run_dir = run_dir
        self.trie = trie or live_trie(self.sids)
        self.model: SlateModel | None = None
        self.init_weights: str | Path | None = None
        """Weights fit starts from instead of a fresh initialisation (same architecture and codes)."""

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = True, resume: bool = False) -> list[dict]:
        if len(self.sids) != split.n_items + 1:
            raise ValueError(f"sids has {len(self.sids)} rows; the split needs n_items + 1 = {split.n_items + 1}")
        torch.manual_seed(seed)
        self.model = SlateModel(self.config)
        if self.init_weights is not None and not resume:  # genads train --init: continue from a model
            load_weights(self.model, Path(self.init_weights))
        return fit(self.model, self.sids, split, self.train, seed=seed, run_dir=self.run_dir, resume=resume,
                   progress=progress)

    @property
    def uses_users(self) -> bool:
        """True when the model has a user token: the harness then passes each case's user id."""
        return bool(self.config.user_buckets)

    @property
    def max_k(self) -> int:
        """The most ads one beam search returns (its width): the harness asks for no more."""
        return self.train.beam

    def recommend(self, history: np.ndarray, k: int, users: np.ndarray | None = None) -> np.ndarray:
        """(n, k) item indices, best first; -1 only if fewer than k ads are live. ``users``: raw user
        ids for the user token (ignored by a model without one; required by a model with one, which
        would otherwise be scored without the token it was trained with)."""
        if self.config.user_buckets and users is None:
            raise ValueError(f"this model has a user token (user_buckets={self.config.user_buckets}): "
                             "recommend needs users=")
        return self.slate(history, k, users=users if self.config.user_buckets else None).ads

    def slate(self, history: np.ndarray, k: int, users: np.ndarray | None = None,
              context: np.ndarray | None = None, beam: int | None = None) -> Slate:
        """A slate of ``k`` live ads per history; ``users`` (raw user ids) and ``context`` (ids) feed
        the model's optional user and context tokens. ``beam``: the beam width (default
        ``train.beam``); a width below ``k`` is an error, never silently widened."""
        beam = self.train.beam if beam is None else beam
        if beam < k:
            raise ValueError(f"beam width {beam} (TrainConfig.beam unless given) is below the slate size k={k}: "
                             "ask for a beam of at least k")
        if self.model is None:
            raise RuntimeError("SlateRecommender.recommend called before fit (or load)")
        model = self.model
        if users is not None or context is not None:
            buckets = None if users is None else torch.from_numpy(user_bucket(users, max(self.config.user_buckets, 1)))
            ctx = None if context is None else torch.as_tensor(np.asarray(context, dtype=np.int64))
            model = WithPrefix(self.model, buckets, ctx)
        return generate_slate(model, self.trie, self.sids, history, beam=beam, slate_size=k)

    @torch.no_grad()
    def logprob_of(self, history: np.ndarray, items: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """(B, S) log P(SID of ``items[b, s]`` | ``history[b]``) by teacher forcing: Σ over levels of the level's
        log-softmax at the ad's code (the beam's own per-level terms, no trie renormalisation); -inf where items <= 0.
        ``users``: raw user ids for a model with a user token."""
        if self.model is None:
            raise RuntimeError("SlateRecommender used before fit (or load)")
        if self.config.user_buckets and users is None:
            raise ValueError(f"this model has a user token (user_buckets={self.config.user_buckets}): pass users=")
        self.model.eval()
        cfg, L = self.config, self.sids.shape[1]
        items = np.asarray(items, dtype=np.int64)
        history = np.asarray(history, dtype=np.int64)[:, -cfg.max_items:]
        out = np.full(items.shape, -np.inf, dtype=np.float32)
        for b in range(len(items)):
            cand = items[b][items[b] > 0]
            if not len(cand):
                continue
            tokens, positions = history_tokens(history[b:b + 1], self.sids, cfg.codebook_size, cfg.max_items - 1)
            sid = self.sids[cand]  # (S, L)
            extra = torch.from_numpy(N_SPECIAL + np.arange(L - 1) * cfg.codebook_size + sid[:, :L - 1])
            seq = torch.cat([tokens.expand(len(cand), -1), extra], dim=1)
            pos = torch.cat([positions.expand(len(cand), -1), torch.full((len(cand), L - 1), cfg.max_items)], dim=1)
            buckets = None
            if users is not None and cfg.user_buckets:
                buckets = torch.from_numpy(user_bucket(np.repeat(np.asarray(users)[b:b + 1], len(cand)),
                                                       cfg.user_buckets))
            h = self.model(seq, pos, users=buckets)[:, -L:]  # the state before each level's code
            total = torch.zeros(len(cand))
            for level in range(L):
                logp = torch.log_softmax(self.model.level_logits(h[:, level], level).float(), dim=-1)
                total += logp.gather(1, torch.from_numpy(sid[:, level:level + 1])).squeeze(1)
            out[b, items[b] > 0] = total.numpy()
        return out

    def describe(self) -> dict:
        return {"model": self.name, "architecture": asdict(self.config), "train": asdict(self.train)}

    @classmethod
    def load(cls, weights: str | Path, config: SlateConfig, train: TrainConfig, sids: np.ndarray) -> SlateRecommender:
        """A recommender with trained weights (safetensors) and its config."""
        rec = cls(sids, config, train)
        rec.model = SlateModel(rec.config)
        load_weights(rec.model, Path(weights))
        rec.model.eval()
        return rec


