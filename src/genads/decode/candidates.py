"""The live ads a generator may choose from, and its best candidates for a batch of histories.

One interface for both generator families, so that serving (and any other consumer) never asks which one
it holds:

- :class:`TrieCandidates` (family "sid"): the live ads' Semantic IDs in a prefix trie with a bid table;
  candidates come from trie-constrained, token-level bid-aware beam search.
- :class:`ExactCandidates` (family "parallel"): the live ads' parallel codes and bids
  (:class:`genads.parallel.scoring.LiveAds`); every live ad is scored exactly, ``log(bid ** alpha + beta)``
  added per ad, optionally after an IVF pre-selection on large catalogues.

Both are changed in place (``add`` / ``remove`` / ``set_bid``, or :meth:`apply` for a batch of changes) and
answer ``top(history, n)``: for each row of ``history`` its best ``n[row]`` live ads and their log-probabilities.
Callers serialise changes and queries (the serving engine holds its lock around both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from genads.decode.beam import generate_slate
from genads.decode.bidding import BidConfig, BidTable
from genads.tokenize.trie import PrefixTrie


class Candidates(Protocol):
    """What a generator decodes from: the live ads (by item index), with their bids."""

    reads_reward_model: bool
    """Whether a slate reward model (which reads SIDs) can score these candidates."""

    def add(self, item: int, bid: float) -> None: ...

    def remove(self, item: int) -> None: ...

    def set_bid(self, item: int, bid: float) -> None: ...

    def apply(self, removed: Iterable[int], bids: Mapping[int, float]) -> None:
        """Remove ``removed``; then every item of ``bids`` is live with that bid (added or re-bid)."""
        ...

    def prepare(self) -> None:
        """Called once the first live set is in: build what depends on it (an index)."""
        ...

    def __len__(self) -> int: ...

    def top(self, history: np.ndarray, n: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ads (B, max n) with -1 where a row has fewer, log-probabilities (B, max n) with -inf there)."""
        ...


def _empty(rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((rows, width), -1, dtype=np.int64), np.full((rows, width), -np.inf)


class TrieCandidates:
    """Family "sid": live ads in a prefix trie, candidates by bid-aware constrained beam search.

    Args:
        model: the SID slate model.
        sids: (n_items + 1, L) Semantic IDs by item index.
        beam: the minimum beam width (widened to the number of candidates asked for).
        bid_config: the token-level bid term (``alpha`` 0: bids enter at the auction only).
    """

    reads_reward_model = True

    def __init__(self, model, sids: np.ndarray, beam: int, bid_config: BidConfig) -> None:
        self.model, self.sids, self.beam, self.bid_config = model, sids, beam, bid_config
        self.trie = PrefixTrie(sids.shape[1], int(sids.max()) + 1)
        self.bids = BidTable(self.trie, default_bid=0.0)

    def __len__(self) -> int:
        return len(self.trie)

    def add(self, item: int, bid: float) -> None:
        self.trie.insert(item, self.sids[item].tolist())
        self.bids.set_bid(item, bid)

    def remove(self, item: int) -> None:
        self.trie.remove(item)

    def set_bid(self, item: int, bid: float) -> None:
        self.bids.set_bid(item, bid)

    def apply(self, removed: Iterable[int], bids: Mapping[int, float]) -> None:
        for item in removed:
            self.trie.remove(item)
        for item in bids:
            if item not in self.trie:
                self.trie.insert(item, self.sids[item].tolist())
        self.bids.update(bids)  # past a few dozen changes the aggregates are rebuilt once, at the next query

    def prepare(self) -> None:
        return None

    def top(self, history: np.ndarray, n: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        ads, logprob = _empty(len(history), max(n, default=0))
        for k in sorted(set(n) - {0}):  # the beam width depends on k: one batched beam search per distinct k
            rows = [i for i, m in enumerate(n) if m == k]
            slate = generate_slate(self.model, self.trie, self.sids, history[rows], beam=max(self.beam, k),
                                   slate_size=k, bids=self.bids, bid_config=self.bid_config)
            ads[rows, :k], logprob[rows, :k] = slate.ads, slate.logprob
        return ads, logprob


class ExactCandidates:
    """Family "parallel": every live ad scored exactly by its codes, plus ``log(bid ** alpha + beta)``.

    Args:
        model: the parallel-code model.
        codes: (n_items + 1, m) codes by item index.
        bid_config: the per-ad bid term, or None (bids enter at the auction only).
        preselect: an IVF pre-selection (:class:`genads.parallel.preselect.PreselectConfig`) built by
            :meth:`prepare` when at least ``preselect_min_ads`` ads are live (0: never).
    """

    reads_reward_model = False

    def __init__(self, model, codes: np.ndarray, bid_config: BidConfig | None, preselect=None,
                 preselect_min_ads: int = 0) -> None:
        from genads.parallel.scoring import LiveAds

        self.model, self.codes, self.bid_config = model, codes, bid_config
        self.live = LiveAds(codes, live=[])
        self.index = None
        """The IVF index that shortlists candidates for exact scoring (large catalogues), kept in step."""
        self._preselect, self._min_ads = preselect, preselect_min_ads
        self._code_table64: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.live)

    def add(self, item: int, bid: float) -> None:
        self.live.add(item, self.codes[item], bid=bid)
        if self.index is not None:
            self.index.add(item, self.codes[item], bid)

    def remove(self, item: int) -> None:
        self.live.remove(item)
        if self.index is not None:
            self.index.remove(item)

    def set_bid(self, item: int, bid: float) -> None:
        self.live.set_bid(item, bid)
        if self.index is not None:
            self.index.set_bid(item, bid)

    def apply(self, removed: Iterable[int], bids: Mapping[int, float]) -> None:
        for item in removed:  # one O(1) change per ad, whatever the catalogue size
            self.remove(item)
        for item, bid in bids.items():
            if item in self.live:
                self.set_bid(item, bid)
            else:
                self.add(item, bid)

    def prepare(self) -> None:
        if self._preselect is not None and self._min_ads and len(self.live) >= self._min_ads:
            from genads.parallel.preselect import IVFPreselect

            self.index = IVFPreselect(self.model, self.live, self.bid_config, self._preselect)

    def top(self, history: np.ndarray, n: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        ads, logprob = _empty(len(history), max(n, default=0))
        if ads.shape[1]:  # top-k prefixes agree: one pass at the largest k serves every row
            slate = self.score(history, ads.shape[1])
            ads[:], logprob[:] = slate.ads, slate.logprob
        return ads, logprob

    @torch.no_grad()
    def score(self, history: np.ndarray, k: int):
        """The best ``k`` live ads of each row of ``history`` (B, m), a :class:`genads.decode.beam.Slate`."""
        width = max(1, int((history > 0).sum(1).max()))
        items = torch.from_numpy(np.ascontiguousarray(history[:, -width:]))
        h = self.model(items, torch.from_numpy(self.codes)[items])[:, -1]
        queries = self.model.code_queries(h)  # (B, m, d_code)
        # the model's code_logprobs, as one float64 product per code head (m GEMMs over the batch, not B * m
        # matrix-vector products: ~6x less CPU at batch 32); float64 so that a row's scores do not depend on the
        # batch it is in (float32 GEMMs round differently with the batch's size), then back to float32
        if self._code_table64 is None:
            self._code_table64 = self.model.code_table().double()  # (m, K, d_code)
        logits = torch.bmm(self._code_table64, queries.permute(1, 2, 0).double())  # (m, K, B)
        logp = torch.log_softmax(logits.float().permute(2, 0, 1).contiguous(), dim=-1)
        if self.index is not None:  # a shortlist from the IVF index, ranked exactly (bid term included)
            return self.index.topk(queries, logp, k)
        return self.live.topk(logp, k, bid_config=self.bid_config, id_scores=self.model.id_scores(h.double()))
