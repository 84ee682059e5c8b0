"""The reward model around the generative slate model: simulated training logs, bid-aware pools, comparison.

Used by ``genads reward``, the demo's "rerank" step and benchmarks/beauty_bid_aware.py, so that all
three measure the same thing:

* :func:`training_log` — simulated impressions (see :mod:`genads.reward.simulate`) for sampled
  *validation* cases: the relevant ad is each user's validation item (the test item is never
  seen), the pools are the slate model's beam for a share of requests and popularity samples for
  the rest.
* :func:`compare_decoders` — on test cases: plain beam search, token-level bid-aware beam search
  (max and mean prefix bids), and bid-aware (or plain) pools re-ranked by the reward model. Each
  slate is scored by Recall/NDCG@S against the test item, its mean bid, and under the *simulator's*
  click model (ground truth here, because the clicks are simulated): expected CTR per slot and
  expected revenue per slate (sum of P(click) × bid, i.e. what first-price-per-click would collect).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd

from genads.decode.beam import generate_slate
from genads.decode.bidding import BidConfig, BidTable
from genads.eval.metrics import ranking_metrics
from genads.reward.features import sid_logprob
from genads.reward.model import SlateRewardModel
from genads.reward.rerank import RerankConfig, rerank, score_slates
from genads.reward.simulate import ClickModel, ImpressionLog, popularity_pools, simulate_log
from genads.slate.model import SlateModel
from genads.tokenize.trie import PrefixTrie


@dataclass(frozen=True)
class SimulationConfig:
    """How a training log is simulated."""

    requests: int = 4000
    """Validation cases sampled (each gives ``repeats`` impressions)."""
    repeats: int = 2
    slate_size: int = 10
    pool_size: int = 30
    """Candidates per request to draw each shown slate from."""
    beam_share: float = 0.5
    """Share of requests whose pool is the slate model's beam (the rest: popularity samples)."""
    include_prob: float = 0.5
    """Probability that the relevant ad is put into a shown slate (when the pool lacks it)."""
    click: ClickModel = field(default_factory=ClickModel)

    def __post_init__(self) -> None:
        for name in ("requests", "repeats", "slate_size", "pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SimulationConfig.{name}={getattr(self, name)} must be >= 1")
        if self.pool_size < self.slate_size:
            raise ValueError(f"SimulationConfig.pool_size={self.pool_size} must be >= slate_size={self.slate_size}")
        for name in ("beam_share", "include_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SimulationConfig.{name}={getattr(self, name)} must be in [0, 1]")


def item_bids(catalogue: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """(n_items + 1,) bid by item index (``item_ids[i]`` = ad_id of index i; 0 where unknown or missing)."""
    out = np.zeros(len(item_ids))
    if "bid" not in catalogue:
        raise ValueError("the catalogue has no 'bid' column: import the dataset with `genads data import`")
    pos = np.searchsorted(item_ids[1:], catalogue["ad_id"].to_numpy())
    pos = np.clip(pos, 0, len(item_ids) - 2)
    hit = item_ids[1:][pos] == catalogue["ad_id"].to_numpy()
    out[pos[hit] + 1] = np.nan_to_num(catalogue["bid"].to_numpy(dtype=float)[hit])
    return out


def item_popularity(train: list[np.ndarray], n_items: int) -> np.ndarray:
    """(n_items + 1,) interactions per item index in the training sequences."""
    flat = np.concatenate(train) if train else np.zeros(0, dtype=np.int64)
    return np.bincount(flat, minlength=n_items + 1).astype(float)


def bid_table(trie: PrefixTrie, bids: np.ndarray) -> BidTable:
    """A BidTable over ``trie`` with every live item index's bid."""
    return BidTable(trie, {int(i): float(bids[i]) for i in trie.index().ads.tolist()})


def decode(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, history: np.ndarray, *, beam: int, slate_size: int,
           bids: BidTable | None = None, bid_config: BidConfig | None = None,
           batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(ads (B, slate_size), their SID log-probabilities) from (bid-aware) beam search, in batches."""
    out = [generate_slate(model, trie, sids, history[lo:lo + batch_size], beam=beam, slate_size=slate_size,
                          bids=bids, bid_config=bid_config) for lo in range(0, len(history), batch_size)]
    if not out:
        return np.zeros((0, slate_size), dtype=np.int64), np.zeros((0, slate_size), dtype=np.float32)
    return np.concatenate([s.ads for s in out]), np.concatenate([s.logprob for s in out]).astype(np.float32)


class PoolGenerator(Protocol):
    """A generator as the reward pipeline uses it (either family: :meth:`genads.families.Family.generator`)."""

    def pool(self, history: np.ndarray, size: int, bids: np.ndarray | None = None,
             bid_config: BidConfig | None = None, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(ads (B, size), their log-probabilities): the best ``size`` live ads per history, with the bid term
        when ``bids`` ((n_items + 1,) by item) and ``bid_config`` are given."""
        ...

    def logprob_of(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(B, K) the generator's log-probability of ``items[b]`` after ``history[b]``."""
        ...


@dataclass(frozen=True)
class BeamGenerator:
    """The SID slate model with its trie of live ads, as a :class:`PoolGenerator` (pools by beam search)."""

    model: SlateModel
    trie: PrefixTrie
    sids: np.ndarray

    def pool(self, history, size, bids=None, bid_config=None, batch_size=256):
        table = bid_table(self.trie, bids) if bids is not None and bid_config is not None else None
        return decode(self.model, self.trie, self.sids, history, beam=size, slate_size=size, bids=table,
                      bid_config=bid_config if table is not None else None, batch_size=batch_size)

    def logprob_of(self, history, items):
        return sid_logprob(self.model, self.sids, history, items)


def training_log(history: np.ndarray, relevant: np.ndarray, popularity: np.ndarray, cfg: SimulationConfig, *,
                 seed: int, generator: PoolGenerator | None = None) -> tuple[ImpressionLog, np.ndarray]:
    """(simulated log, the sampled requests' histories) for cases ``history`` (N, H) -> ``relevant`` (N,).

    With a ``generator`` a share of the pools are its candidates and the log also carries each shown ad's
    generator score (``log.scores``).
    """
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(relevant), size=min(cfg.requests, len(relevant)), replace=False))
    hist, rel = np.asarray(history)[pick], np.asarray(relevant)[pick]
    pools = popularity_pools(popularity, len(pick), cfg.pool_size, rng)
    n_beam = round(cfg.beam_share * len(pick)) if generator is not None else 0
    if n_beam:
        beam = generator.pool(hist[:n_beam], cfg.pool_size)[0]
        short = (beam > 0).sum(1) < cfg.slate_size  # too few live ads found: keep the popularity pool
        pools[:n_beam] = np.where(short[:, None], pools[:n_beam], beam)
    log = simulate_log(pools, rel, popularity, cfg.click, slate_size=cfg.slate_size, include_prob=cfg.include_prob,
                       repeats=cfg.repeats, seed=int(rng.integers(2**31)))
    if generator is not None:  # generator scores of every shown ad, for reward models with use_score
        log.scores = generator.logprob_of(hist[log.rows], log.slates)
    return log, hist


def slate_outcomes(slates: np.ndarray, targets: np.ndarray, bids: np.ndarray, popularity: np.ndarray,
                   click: ClickModel) -> dict[str, float]:
    """Recall/NDCG@S, mean bid, and the click model's expected CTR per slot and revenue per slate."""
    slates = np.asarray(slates, dtype=np.int64)
    S = slates.shape[1]
    filled = slates > 0
    p = click.click_probability(slates, targets, popularity)
    m = ranking_metrics(np.where(filled, slates, -1), targets, ks=(S,))
    return {f"recall@{S}": m[f"recall@{S}"], f"ndcg@{S}": m[f"ndcg@{S}"],
            "mean_bid": float(bids[slates[filled]].mean()) if filled.any() else 0.0,
            "sim_ctr": float(p[filled].mean()) if filled.any() else 0.0,
            "sim_revenue": float((p * np.where(filled, bids[np.maximum(slates, 0)], 0.0)).sum(1).mean())}


def compare_decoders(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, bids: np.ndarray,
                     popularity: np.ndarray, history: np.ndarray, targets: np.ndarray, reward: SlateRewardModel,
                     click: ClickModel, *, slate_size: int = 10, beam: int = 20, pool_size: int = 30,
                     bid: BidConfig | None = None, rerank_cfg: RerankConfig | None = None,
                     revenue_weights: tuple[float, ...] = (1.0,)) -> list[dict]:
    """Rows of :func:`slate_outcomes` (+ the reward model's value and CPU seconds) per decoding variant.

    Re-ranked rows come once per ``revenue_weights`` entry w (value per click (1 - w) × bid_ref + w × bid);
    ``model_value`` of every row is under ``rerank_cfg``'s own weight.
    """
    bid = bid or BidConfig()
    rerank_cfg = rerank_cfg or RerankConfig(slate_size=slate_size, bid_ref=float(np.median(bids[bids > 0])))
    table = bid_table(trie, bids)
    mean_cfg = BidConfig(alpha=bid.alpha, beta=bid.beta, aggregate="mean")
    max_cfg = BidConfig(alpha=bid.alpha, beta=bid.beta, aggregate="max")
    h = history if reward.config.use_history else None
    rows = []

    def add(name: str, make) -> None:
        start = time.process_time()
        slates, scores = make()
        seconds = time.process_time() - start
        value = score_slates(reward, slates, sids, bids, rerank_cfg, h, scores)[1]
        rows.append({"decoder": name, **slate_outcomes(slates, targets, bids, popularity, click),
                     "model_value": float(value.mean()), "cpu_s": round(seconds, 1)})

    pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def reranked(bids_cfg: BidConfig | None, w: float) -> tuple[np.ndarray, np.ndarray]:
        key = "bid" if bids_cfg else "plain"
        if key not in pools:  # decoded once, re-ranked under every weight
            pools[key] = decode(model, trie, sids, history, beam=pool_size, slate_size=pool_size,
                                bids=table if bids_cfg else None, bid_config=bids_cfg)
        pool, scores = pools[key]
        out = rerank(reward, pool, sids, bids, replace(rerank_cfg, revenue_weight=w), history=h, scores=scores)
        return out.ads, out.scores

    add("plain beam", lambda: decode(model, trie, sids, history, beam=beam, slate_size=slate_size))
    add("bid-aware (max)", lambda: decode(model, trie, sids, history, beam=beam, slate_size=slate_size, bids=table,
                                          bid_config=max_cfg))
    add("bid-aware (mean)", lambda: decode(model, trie, sids, history, beam=beam, slate_size=slate_size, bids=table,
                                           bid_config=mean_cfg))
    for w in revenue_weights:
        tag = "" if tuple(revenue_weights) == (1.0,) else f" (w={w:g})"
        add(f"plain pool {pool_size} + reward re-rank{tag}", lambda w=w: reranked(None, w))
        add(f"bid-aware (max) pool {pool_size} + reward re-rank{tag}", lambda w=w: reranked(max_cfg, w))
    return rows
