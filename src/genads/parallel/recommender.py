"""The parallel-code generator behind the evaluation harness's Recommender protocol, with exact scoring.

``recommend`` ranks every live ad exactly (:class:`genads.parallel.scoring.LiveAds`), so the harness
scores what serving would show. ``add_ad`` makes a new ad recommendable at once: its codes come from
its item vector through the fitted :class:`PQCodebook` (cold start, no retraining).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from genads.data.dataset import atomic_write_text
from genads.data.split import SequenceSplit
from genads.decode.beam import Slate
from genads.decode.bidding import BidConfig
from genads.parallel.model import ParallelConfig, ParallelModel
from genads.parallel.scoring import LiveAds, id_columns
from genads.parallel.train import ParallelTrainConfig, fit
from genads.slate.checkpoint import load_weights, save_weights
from genads.tokenize.pq import PQCodebook

MODEL_CONFIG, MODEL_WEIGHTS, CODES_FILE = "parallel.json", "model.safetensors", "codes.npy"

_HYBRID_ARCH = ParallelConfig(id_weight=32 * 0.05 / 0.07, init="xavier")
_HYBRID_TRAIN = ParallelTrainConfig(lr=1e-3, min_lr_ratio=1.0, warmup_steps=0, grad_clip=0.0, epochs=200, patience=20,
                                    batching="random", stop_metric="recall@10", exclude_history=True)
PRESETS: dict[str, tuple[ParallelConfig, ParallelTrainConfig]] = {
    "tiny": (ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=10),
             ParallelTrainConfig(batch_size=16, epochs=2, warmup_steps=2, n_negatives=16, patience=2)),
    "small": (ParallelConfig(d_model=64, n_layer=2, max_items=20),
              ParallelTrainConfig(batch_size=64, epochs=30, warmup_steps=20, n_negatives=512, patience=5)),
    "beauty": (ParallelConfig(), ParallelTrainConfig()),
    # What made the eSASRec recipe work, where it applies: random batches, 256 uniform negatives drawn
    # independently for every position, Adam 1e-3 constant without clipping, Xavier-normal init, up to 200 epochs
    # with patience 50 on validation R@10 with the history ruled out. The trunk, codes and losses are 'beauty''s.
    "esasrec": (ParallelConfig(init="xavier"),
                ParallelTrainConfig(lr=1e-3, min_lr_ratio=1.0, warmup_steps=0, grad_clip=0.0, epochs=200, patience=50,
                                    batching="random", negatives="per-position", n_negatives=256, code_heads=0,
                                    stop_metric="recall@10", exclude_history=True)),
    # Codes + an ID term in the item score (as ACERec/LIGER): id_weight = m * item_temperature / temperature puts h.e
    # in the item logit with weight 1, as SASRec's output layer; the eSASRec recipe's optimisation (Adam 1e-3
    # constant, no clipping, Xavier init, random batches) with 2,048 shared negatives; early stopping on validation
    # R@10 with the history ruled out. Chosen on Beauty validation among three pilots (docs/generator.md).
    "hybrid": (_HYBRID_ARCH, _HYBRID_TRAIN),
    # 'hybrid' whose input reads each item by its ID embedding alone: the codes shape the output only. On Beauty
    # validation the code input made 'hybrid' overfit from epoch ~13 (valid R@10 excl .101); without it the same
    # recipe kept climbing past .11 (docs/generator.md).
    "hybrid-id-input": (replace(_HYBRID_ARCH, code_input=False), _HYBRID_TRAIN),
    # 'hybrid-id-input' with dropout .2 on the ID rows the item loss scores (eSASRec drops its tied output
    # embeddings): on Beauty validation it peaks later and higher (.1133 at epoch 28 against .1117 at 31; 256
    # per-position negatives gave the same curve per epoch at 1.7x the cost). docs/generator.md, fourth round.
    "hybrid-od": (replace(_HYBRID_ARCH, code_input=False), replace(_HYBRID_TRAIN, id_out_dropout=0.2)),
    # 'hybrid-od' with the codes out of the item score (item_temperature 5: the code part of a logit within ±0.2; the
    # codes stay in the auxiliary code loss; id_weight = 32 · 5 / 0.07 keeps h·e at weight 1) and crop / reorder
    # augmentation (.3 / .3). Chosen on Beauty validation R@10 with the history ruled out: .1175 against .1163
    # without augmentation and .1146 for 'hybrid-od' (docs/generator.md, fifth round).
    "hybrid-aug": (replace(_HYBRID_ARCH, code_input=False, id_weight=2285.714285714286),
                   replace(_HYBRID_TRAIN, id_out_dropout=0.2, item_temperature=5.0, crop_prob=0.3, shuffle_prob=0.3)),
    # 'hybrid-aug' with the full softmax (every catalogue item a negative, SASRec's cross-entropy). Chosen on Beauty
    # validation R@10 with the history ruled out: .1192 at epoch 68 against .1175 with 2,048 shared negatives
    # (docs/generator.md, seventh round); ≈ 2.5x the CPU of an epoch.
    "hybrid-full": (replace(_HYBRID_ARCH, code_input=False, id_weight=2285.714285714286),
                    replace(_HYBRID_TRAIN, id_out_dropout=0.2, item_temperature=5.0, crop_prob=0.3, shuffle_prob=0.3,
                            negatives="all")),
}
"""One preset for Beauty and Sports ('hybrid-full' / 'hybrid-aug' / 'hybrid-od' / 'hybrid-id-input' / 'hybrid': codes + ID score, with or
without the codes in the input; 'beauty': codes only; 'esasrec': codes only with the eSASRec recipe's training);
'small' for the demo's catalogue, 'tiny' for tests."""


def sized_config(config: ParallelConfig, item_codes: np.ndarray, n_items: int) -> ParallelConfig:
    """The config with ``n_codes``/``codebook_size`` taken from the codes and the ID table sized to the items
    (an ID table is kept only when the config asks for one: ``n_items`` > 0 means "use IDs")."""
    return replace(config, n_codes=int(item_codes.shape[1]), codebook_size=int(item_codes.max()) + 1,
                   n_items=n_items if config.n_items else 0)


class ParallelRecommender:
    """Train with :func:`genads.parallel.train.fit`; recommend by exact scoring over the live ads.

    Args:
        item_codes: (n_items + 1, m) codes of every item index (row 0 = padding).
        config: architecture (``n_codes``/``codebook_size`` come from ``item_codes``; ``n_items`` > 0
            turns the ID embedding on and is resized to the split).
        codebook: the fitted PQ transform, to encode ads added later (optional).
    """

    name = "generative-parallel"

    def __init__(self, item_codes: np.ndarray, config: ParallelConfig | None = None,
                 train: ParallelTrainConfig | None = None, run_dir: str | Path | None = None,
                 codebook: PQCodebook | None = None) -> None:
        self.item_codes = np.asarray(item_codes, dtype=np.int64)
        base = config or replace(PRESETS["beauty"][0], n_items=1)
        self.config = sized_config(base, self.item_codes, len(self.item_codes) - 1)
        self.train = train or PRESETS["beauty"][1]
        self.run_dir = run_dir
        self.codebook = codebook
        self.live = LiveAds(self.item_codes)
        self.model: ParallelModel | None = None
        self.init_weights: str | Path | None = None
        """Weights fit starts from instead of a fresh initialisation (same architecture and codes)."""

    def fit(self, split: SequenceSplit, *, seed: int = 0, progress: bool = True, resume: bool = False) -> list[dict]:
        if len(self.item_codes) != split.n_items + 1:
            raise ValueError(f"item_codes has {len(self.item_codes)} rows; the split needs {split.n_items + 1}")
        torch.manual_seed(seed)
        self.model = ParallelModel(self.config)
        if self.init_weights is not None and not resume:  # genads train --init: continue from a model
            load_weights(self.model, Path(self.init_weights))
        return fit(self.model, self.item_codes, split, self.train, seed=seed, run_dir=self.run_dir, resume=resume,
                   progress=progress)

    def _codes_of(self, history: np.ndarray) -> torch.Tensor:
        """(B, L, m) codes of history keys: known items from the table, added ads from the live set."""
        hist = np.asarray(history, dtype=np.int64)
        codes = np.zeros((*hist.shape, self.item_codes.shape[1]), dtype=np.int64)
        known = hist < len(self.item_codes)
        codes[known] = self.item_codes[hist[known]]
        for pos in zip(*np.nonzero(~known), strict=True):
            key = int(hist[pos])
            if key not in self.live:
                raise KeyError(f"history item {key} is neither a trained item nor a live ad")
            codes[pos] = self.live.codes_of(key)
        return torch.from_numpy(codes)

    def _ids_of(self, keys: np.ndarray) -> np.ndarray:
        """The ID rows of ``keys`` (any shape): a trained item's own, an added ad's stand-in (:meth:`add_ad`)."""
        keys = np.asarray(keys, dtype=np.int64)
        if not self.config.n_items:
            return keys
        out = keys.copy()
        for pos in zip(*np.nonzero(keys > self.config.n_items), strict=True):
            out[pos] = self.live.id_row_of(int(keys[pos]))
        return out

    def stand_in(self, codes: np.ndarray) -> int:
        """The trained item whose codes agree with ``codes`` (m,) at the most positions (the lowest index among
        ties): whose ID row an ad added after training borrows, in a history and in its own score."""
        trained = self.item_codes[1:self.config.n_items + 1]
        if not len(trained):
            return 0
        return int(np.argmax((trained == np.asarray(codes).reshape(1, -1)).sum(1))) + 1

    @torch.no_grad()
    def logprobs(self, history: np.ndarray) -> torch.Tensor:
        """(B, m, K) log p_k of the next item's codes for left-padded histories (B, L)."""
        return self.query(history)[0]

    @torch.no_grad()
    def query(self, history: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log p_k of the next item's codes (B, m, K), the ID term (B, n_items + 1) or None) for left-padded
        histories (B, L): what :meth:`LiveAds.topk` scores every live ad with."""
        if self.model is None:
            raise RuntimeError("ParallelRecommender used before fit (or load)")
        self.model.eval()
        hist = np.ascontiguousarray(np.asarray(history, dtype=np.int64)[:, -self.config.max_items:])
        width = max(1, int((hist > 0).sum(1).max())) if hist.size else 1
        hist = hist[:, -width:]
        h = self.model(torch.from_numpy(self._ids_of(hist)), self._codes_of(hist))[:, -1]
        return self.model.code_logprobs(h), self.model.id_scores(h)

    @torch.no_grad()
    def recommend(self, history: np.ndarray, k: int) -> np.ndarray:
        """(n, k) item keys, best first by exact score over the live ads (nothing ruled out).

        Ranks by one matrix product per 512 histories (the exact score up to a per-history constant, see
        :meth:`ParallelModel.item_vectors`); :meth:`slate` gives the scores themselves, and bids.
        """
        if self.model is None:
            raise RuntimeError("ParallelRecommender used before fit (or load)")
        self.model.eval()
        keys, codes, _ = self.live.arrays()
        vectors = self.model.item_keys(codes.T.long(), self.live.id_rows())  # (n_live, m * d_code [+ D])
        out = np.full((len(history), k), -1, dtype=np.int64)
        take = min(k, len(keys))
        for i in range(0, len(history), 512):
            hist = np.ascontiguousarray(np.asarray(history[i:i + 512], dtype=np.int64)[:, -self.config.max_items:])
            width = max(1, int((hist > 0).sum(1).max())) if hist.size else 1
            hist = hist[:, -width:]
            h = self.model(torch.from_numpy(self._ids_of(hist)), self._codes_of(hist))[:, -1]
            scores = self.model.item_queries(h) @ vectors.T
            if take:
                out[i:i + len(hist), :take] = keys[torch.topk(scores, take, dim=1).indices].numpy()
        return out

    def slate(self, history: np.ndarray, k: int, bid_config: BidConfig | None = None,
              exclude: np.ndarray | None = None) -> Slate:
        """The best ``k`` live ads per history, with ``log(bid ** alpha + beta)`` added when ``bid_config``."""
        logp, id_scores = self.query(history)
        return self.live.topk(logp, k, bid_config=bid_config, exclude=exclude, id_scores=id_scores)

    def pool(self, history: np.ndarray, size: int, bids: np.ndarray | None = None,
             bid_config: BidConfig | None = None, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(ads (B, size), their exact log-probabilities) for the reward pipeline: the best ``size`` live ads per
        history, with ``log(bid ** alpha + beta)`` when ``bid_config`` and ``bids`` ((n_items + 1,) by item) are given.
        """
        if bids is not None and bid_config is not None:
            keys = self.live.keys
            for key, bid in zip(keys.tolist(), np.asarray(bids, dtype=float)[keys].tolist(), strict=True):
                self.live.set_bid(key, bid)
        else:
            bid_config = None
        ads, logp = [], []
        for i in range(0, len(history), batch_size):
            slate = self.slate(history[i:i + batch_size], size, bid_config=bid_config)
            ads.append(slate.ads)
            logp.append(slate.logprob)
        if not ads:
            return np.zeros((0, size), dtype=np.int64), np.zeros((0, size), dtype=np.float32)
        return np.concatenate(ads), np.concatenate(logp).astype(np.float32)

    @torch.no_grad()
    def logprob_of(self, history: np.ndarray, items: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, K) exact score Σ_k log p_k(code_k) (+ the ID term of a model with one) of ``items[b]`` after
        ``history[b]``; -inf where items <= 0."""
        items = np.asarray(items, dtype=np.int64)
        out = np.full(items.shape, -np.inf, dtype=np.float32)
        for i in range(0, len(items), batch_size):
            logp, id_scores = self.query(history[i:i + batch_size])  # (b, m, K), (b, n_items + 1) or None
            block = items[i:i + batch_size]
            codes = self._codes_of(np.maximum(block, 0))  # (b, S, m): trained items and added ads
            picked = logp.unsqueeze(1).expand(-1, block.shape[1], -1, -1).gather(-1, codes.unsqueeze(-1))
            score = picked.squeeze(-1).sum(-1)
            if id_scores is not None:
                score = score + id_scores.gather(1, id_columns(torch.from_numpy(self._ids_of(np.maximum(block, 0))),
                                                               id_scores.shape[1]))
            out[i:i + batch_size] = np.where(block > 0, score.numpy(), -np.inf)
        return out

    def add_ad(self, key: int, vector: np.ndarray | None = None, codes: np.ndarray | None = None,
               bid: float | None = None) -> np.ndarray:
        """Make ad ``key`` live now: its codes given, or encoded from its item ``vector`` (cold start).

        A model with an ID table has no ID row for a key above the trained items: the ad borrows the row of its
        code-nearest trained item (:meth:`stand_in`), in its own score and where a history holds it. Without one, a
        model that reads items by their ID alone (``code_input=False``) would read it as padding, and a model that
        scores IDs would give it a zero ID term against every trained ad's."""
        if codes is None:
            if vector is None:
                raise ValueError(f"add_ad({key}): give the ad's item vector or its codes")
            if self.codebook is None:
                raise ValueError("add_ad with a vector needs the recommender's codebook (PQCodebook)")
            codes = self.codebook.encode(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        id_row = self.stand_in(codes) if self.config.n_items and key > self.config.n_items else None
        self.live.add(key, codes, bid=bid, id_row=id_row)
        return np.asarray(codes)

    def describe(self) -> dict:
        return {"model": self.name, **asdict(self.config), "train": asdict(self.train)}

    def save(self, folder: str | Path, weights: bool = True) -> None:
        """config, weights (safetensors; ``weights=False``: not yet, e.g. before training), item codes (.npy, no
        pickle) and the codebook, each written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if weights:
            if self.model is None:
                raise RuntimeError("no weights to save: fit or load first")
            save_weights(self.model, folder / MODEL_WEIGHTS)
        tmp = folder / f".{CODES_FILE}.tmp.npy"
        np.save(tmp, self.item_codes, allow_pickle=False)
        tmp.replace(folder / CODES_FILE)
        if self.codebook is not None:
            self.codebook.save(folder)
        atomic_write_text(folder / MODEL_CONFIG, json.dumps({"model": asdict(self.config),
                                                              "train": asdict(self.train)}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None) -> ParallelRecommender:
        folder = Path(folder)
        for name in (MODEL_CONFIG, CODES_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} not found: is {folder} a parallel-family model folder?")
        cfg = json.loads((folder / MODEL_CONFIG).read_text())
        codebook = PQCodebook.load(folder) if (folder / "codebook.json").is_file() else None
        rec = cls(np.load(folder / CODES_FILE, allow_pickle=False), ParallelConfig(**cfg["model"]),
                  ParallelTrainConfig(**cfg["train"]), codebook=codebook)
        rec.config = ParallelConfig(**cfg["model"])  # exactly as trained
        rec.model = ParallelModel(rec.config)
        load_weights(rec.model, Path(weights) if weights else folder / MODEL_WEIGHTS)
        rec.model.eval()
        return rec
