"""Pre-selection for very large catalogues: an IVF index proposes candidates, exact scoring ranks them.

The parallel family's exact score of an ad is a dot product (:meth:`ParallelModel.item_vectors`):

    Σ_k log p_k(code_k(ad)) + log(bid ** alpha + beta)  =  q · v(ad) + w(ad) - c(h)

with ``q`` the history's code queries (m x d_code, flattened), ``v(ad)`` the ad's unit code embeddings
concatenated, ``w(ad)`` its bid term and ``c(h)`` a constant per history (the heads' log-normalisers). So
``[q, 1] · [v, w]`` ranks ads exactly as the score does, and a maximum-inner-product index over ``[v, w]``
finds the best ads without touching most of them. :class:`IVFPreselect` keeps such an index (faiss
``IndexIVFFlat``, inner product, a hash-table direct map so that an ad added, removed or re-bid costs O(1)
index work), asks it for ``shortlist`` ads per request probing ``nprobe`` of its ``nlist`` lists, then scores
that shortlist exactly (m gathers) with the exact bid term and returns the top k, exactly as
:meth:`LiveAds.topk` would over the whole catalogue whenever the true top k is in the shortlist. With
``nprobe = nlist`` the search is exhaustive and the answer is exact; recall of the exact top k per ``nprobe``
is measured by ``benchmarks/serve_preselect.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genads.decode.beam import Slate
from genads.decode.bidding import BidConfig
from genads.parallel.model import ParallelModel
from genads.parallel.scoring import LiveAds


@dataclass(frozen=True)
class PreselectConfig:
    nlist: int = 0
    """Inverted lists (k-means cells); 0 = 4 * sqrt(number of live ads), at least 1."""
    nprobe: int = 16
    """Lists searched per request (nprobe = nlist: exhaustive, exact)."""
    shortlist: int = 200
    """Candidates the index returns per request for exact scoring (at least the k asked for)."""
    train_size: int = 50_000
    """Ads sampled to train the k-means cells."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nlist < 0 or self.nprobe < 1 or self.shortlist < 1 or self.train_size < 1:
            raise ValueError(f"need nlist >= 0 and nprobe, shortlist, train_size >= 1: {self}")


class IVFPreselect:
    """An inner-product IVF index over the live ads' ``[code vectors, bid term]``, kept in step with ``live``.

    Call :meth:`add`, :meth:`remove` and :meth:`set_bid` together with the same calls on ``live`` (the
    engine does); :meth:`topk` then ranks ``shortlist`` candidates exactly.
    """

    def __init__(self, model: ParallelModel, live: LiveAds, bid_config: BidConfig | None = None,
                 config: PreselectConfig | None = None) -> None:
        import faiss  # a declared dependency; imported here so scoring alone never loads it

        if model.scores_ids:
            raise ValueError("pre-selection indexes the code score only; this model's item score has an ID term "
                             f"(id_weight={model.config.id_weight}): serve it with exact scoring (no preselect)")

        self.faiss, self.model, self.live = faiss, model, live
        self.bid_config, self.config = bid_config, config or PreselectConfig()
        with torch.no_grad():
            self.table = model.code_table().detach().float().cpu()  # (m, K, d_code)
        m, _, d = self.table.shape
        self.dim = m * d + 1
        keys, codes, bids = live.arrays()
        keys, vectors = keys.numpy().copy(), self._vectors(codes.T.long(), bids)
        n = len(keys)
        nlist = self.config.nlist or max(1, round(4 * math.sqrt(max(n, 1))))
        self.nlist = max(1, min(nlist, n)) if n else 1
        quantizer = faiss.IndexFlatIP(self.dim)
        self.index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(self.config.seed)
        sample = vectors[rng.permutation(n)[:max(self.config.train_size, self.nlist)]] if n else vectors
        if n:
            self.index.train(sample)
        else:  # nothing live yet: one cell at the origin
            self.index.train(np.zeros((1, self.dim), dtype=np.float32))
        self.index.set_direct_map_type(faiss.DirectMap.Hashtable)
        if n:
            self.index.add_with_ids(vectors, keys.astype(np.int64))

    def _bid_term(self, bids: Tensor) -> Tensor:
        if self.bid_config is None:
            return torch.zeros(len(bids), dtype=torch.float32)
        return torch.log(bids.double().pow(self.bid_config.alpha) + self.bid_config.beta).float()

    def _vectors(self, codes: Tensor, bids: Tensor) -> np.ndarray:
        """(n, m * d_code + 1) float32: each ad's code embeddings and its bid term."""
        m = self.table.shape[0]
        v = self.table[torch.arange(m), codes].flatten(1) if len(codes) else torch.zeros(0, self.dim - 1)
        return np.ascontiguousarray(torch.cat([v, self._bid_term(bids)[:, None]], dim=1).numpy(), dtype=np.float32)

    # --- the live set ------------------------------------------------------------------------------------------
    def add(self, key: int, codes: np.ndarray, bid: float | None = None) -> None:
        """Index ``key`` with ``codes`` (after ``live.add``); its bid is ``bid`` or the one ``live`` holds."""
        bid = self.live.bid(key) if bid is None else float(bid)
        self.remove(key)
        vec = self._vectors(torch.as_tensor(np.asarray(codes, dtype=np.int64))[None], torch.tensor([bid]))
        self.index.add_with_ids(vec, np.array([key], dtype=np.int64))

    def remove(self, key: int) -> None:
        self.index.remove_ids(np.array([key], dtype=np.int64))

    def set_bid(self, key: int, bid: float) -> None:
        """A new bid moves the ad's bid coordinate (re-indexed; its codes are unchanged)."""
        if key in self.live:
            self.add(key, self.live.codes_of(key), bid)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    # --- queries -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def candidates(self, queries: Tensor, n: int, nprobe: int | None = None) -> np.ndarray:
        """(B, n) keys whose ``[v, w]`` score best against ``[q, 1]`` (-1 where the lists held fewer)."""
        q = torch.cat([queries.float().reshape(len(queries), -1), torch.ones(len(queries), 1)], dim=1)
        self.index.nprobe = min(nprobe or self.config.nprobe, self.nlist)
        _, ids = self.index.search(np.ascontiguousarray(q.numpy()), n)
        return ids

    @torch.no_grad()
    def topk(self, queries: Tensor, logp: Tensor, k: int, nprobe: int | None = None) -> Slate:
        """The best ``k`` live ads per row, ranked by the exact score (log-probabilities + exact bid term) among
        the index's shortlist. ``queries`` (B, m, d_code) are the history's code queries, ``logp`` (B, m, K)
        its code log-probabilities."""
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        ids = self.candidates(queries, max(k, self.config.shortlist), nprobe)
        B = len(ids)
        ads, scores = np.full((B, k), -1, dtype=np.int64), np.full((B, k), -np.inf)
        lp, bid_out = np.full((B, k), -np.inf), np.full((B, k), np.nan)
        m = logp.shape[1]
        for b in range(B):
            keys = ids[b][ids[b] >= 0]
            found, codes, bids = self.live.lookup(keys)  # the shortlist's live ads: codes (s, m), bids (s,)
            keys = keys[found]
            if not len(keys):
                continue
            exact = logp[b][torch.arange(m)[None, :], codes].sum(1).double()  # (s,) Σ_k log p_k(code_k)
            total = exact + (self._bid_term(bids).double() if self.bid_config is not None else 0.0)
            order = torch.argsort(total, descending=True, stable=True)[:k]
            take = len(order)
            ads[b, :take] = keys[order.numpy()]
            scores[b, :take], lp[b, :take] = total[order].numpy(), exact[order].numpy()
            bid_out[b, :take] = bids[order].numpy()
        return Slate(ads=ads, scores=scores, logprob=lp, bids=bid_out)
