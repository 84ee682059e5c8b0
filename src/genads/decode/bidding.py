"""Token-level bidding: every SID prefix carries the bids of the live ads under it.

Beam search (:func:`genads.decode.beam.beam_search`) ranks a partial SID ``p`` by

    model log-probability of p  +  log(bid(p) ** alpha + beta)

where ``bid(p)`` aggregates the bids of the live ads whose SID starts with ``p``: their MAX (the
default: the best ad still reachable, an optimistic estimate like an A* heuristic) or their MEAN
(EGA's ablation). At the last level ``p`` is a complete SID, so a finished beam is ranked by
``log(P(sid) * (bid ** alpha + beta))``, the bid-weighted objective; ``alpha = 0`` turns bids off.

Public API::

    cfg = BidConfig(alpha=1.0, beta=0.0, aggregate="max")    # typed, frozen, validated
    table = BidTable(trie, {ad_id: bid, ...}, default_bid=0.0)  # kept in sync with the PrefixTrie
    table.set_bid(ad, 2.5); table.update({ad: bid, ...}); table.remove(ad)   # at run time
    table.bid(ad)                                  # an ad's bid (default_bid if none was set)
    table.prefix_bid((3, 17), "max")               # aggregate over live ads under a prefix (any length)
    table.log_weight(prefixes, cfg)                # (N, V) float32 log(bid^alpha + beta) of each next token
    table.log_weight_reference(prefixes, cfg)      # the naive scan it is tested against
    slate = beam_search(..., bids=table, bid_config=cfg)   # slate.scores / .logprob / .bids

``log_weight`` mirrors :meth:`PrefixTrie.mask`: row i, column c is the weight of prefix
``prefixes[i] + (c,)``, and ``-inf`` where no live ad has that prefix, so it doubles as the mask.

Syncing: the table reads the trie's live ads. An ad inserted into or removed from the trie is
picked up at the next query (the trie's ``version`` changed: the aggregates are rebuilt, vectorised).
A bid change on an unchanged trie is applied in place: the max per prefix in O(depth) when it
rises and by re-scanning the prefix's contiguous ad range when the top bid falls; the sums behind
the mean are recomputed (one vectorised pass, exact) at the next mean query. Bids may be set for ads that are not live (yet); only live ads count. ``remove`` forgets
an ad's bid (it falls back to ``default_bid`` if the ad is still live).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from genads.tokenize.trie import PrefixTrie, TrieIndex

Aggregate = Literal["max", "mean"]


@dataclass(frozen=True)
class BidConfig:
    """How bids enter beam scores: ``+ log(bid(prefix) ** alpha + beta)``."""

    alpha: float = 1.0
    """Bid exponent; 0 makes every weight ``1 + beta``, i.e. plain decoding."""
    beta: float = 0.0
    """Added weight; > 0 keeps zero-bid ads reachable (with beta = 0 a zero bid weighs log 0 = -inf)."""
    aggregate: Aggregate = "max"
    """Bid of a prefix: max over the live ads under it, or their mean (EGA's ablation)."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha={self.alpha} must be finite and >= 0")
        if not (np.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta={self.beta} must be finite and >= 0")
        if self.aggregate not in ("max", "mean"):
            raise ValueError(f"aggregate={self.aggregate!r} must be 'max' or 'mean'")

    def log_weight(self, bid: np.ndarray) -> np.ndarray:
        """log(bid ** alpha + beta), elementwise (0 ** 0 = 1)."""
        bid = np.asarray(bid, dtype=np.float64)
        if self.alpha == 0:
            return np.full(bid.shape, np.log1p(self.beta))
        with np.errstate(divide="ignore"):
            powered = bid if self.alpha == 1 else np.power(bid, self.alpha)
            return np.log(powered + self.beta) if self.beta else np.log(powered)


def _check_bid(ad: int, bid: float) -> float:
    bid = float(bid)
    if not (np.isfinite(bid) and bid >= 0):
        raise ValueError(f"ad {ad}: bid={bid} must be finite and >= 0")
    return bid


class BidTable:
    """Bids of live ads and their per-prefix max / mean, beside a :class:`PrefixTrie`."""

    DENSE_IDS = 1 << 22
    """Bids of ad ids in [0, DENSE_IDS) are also kept in an array, so syncing gathers them in one pass."""

    def __init__(self, trie: PrefixTrie, bids: Mapping[int, float] | None = None, *, default_bid: float = 0.0) -> None:
        self.trie = trie
        self.default_bid = _check_bid(-1, default_bid)
        self._bids: dict[int, float] = {}
        self._dense = np.full(0, self.default_bid)
        self._version = -1  # trie version the aggregates below describe
        self.update(bids or {})

    # -- bids ---------------------------------------------------------------------------------
    def bid(self, ad: int) -> float:
        return self._bids.get(int(ad), self.default_bid)

    def bids_of(self, ads: np.ndarray) -> np.ndarray:
        """Bids of an int array of ads (any shape); NaN where the id is negative (no ad)."""
        ads = np.asarray(ads, dtype=np.int64)
        out = np.full(ads.shape, self.default_bid)
        dense = (ads >= 0) & (ads < len(self._dense))
        out[dense] = self._dense[ads[dense]]
        far = ads >= max(len(self._dense), 1)  # beyond the array: only ids >= DENSE_IDS can have a bid there
        out[far] = [self.bid(a) for a in ads[far].tolist()]
        out[ads < 0] = np.nan
        return out

    def _store(self, ad: int, bid: float | None) -> None:
        """Record ``ad``'s bid (None: forget it)."""
        if bid is None:
            self._bids.pop(ad)
        else:
            self._bids[ad] = bid
        if 0 <= ad < self.DENSE_IDS:
            if ad >= len(self._dense):
                grown = np.full(min(max(2 * len(self._dense), ad + 1, 1024), self.DENSE_IDS), self.default_bid)
                grown[:len(self._dense)] = self._dense
                self._dense = grown
            self._dense[ad] = self.default_bid if bid is None else bid

    def set_bid(self, ad: int, bid: float) -> None:
        """Set or change ``ad``'s bid (the ad need not be live yet)."""
        ad, bid = int(ad), _check_bid(int(ad), bid)
        old = self.bid(ad)
        self._store(ad, bid)
        self._moved(ad, old, bid)

    def update(self, bids: Mapping[int, float]) -> None:
        """Set many bids; past a few dozen changes the aggregates are rebuilt at the next query instead."""
        changed = {int(ad): _check_bid(int(ad), bid) for ad, bid in bids.items() if self.bid(ad) != bid}
        if len(changed) > 32:
            for ad, bid in changed.items():
                self._store(ad, bid)
            self._version = -1
            return
        for ad, bid in changed.items():
            self.set_bid(ad, bid)

    def remove(self, ad: int) -> None:
        """Forget ``ad``'s bid (KeyError if it had none)."""
        ad = int(ad)
        if ad not in self._bids:
            raise KeyError(f"ad {ad} has no bid in the table")
        old = self._bids[ad]
        self._store(ad, None)
        self._moved(ad, old, self.default_bid)

    # -- aggregates ----------------------------------------------------------------------------
    def _sync(self) -> TrieIndex:
        index = self.trie.index()
        if self._version != self.trie.version:
            self._index = index
            self._sorted = self.bids_of(index.ads)  # (n,) bids in SID order
            self._position = self._positions(index.ads)
            self._count = [np.diff(s).astype(np.float64) for s in index.start]
            self._sum: list[np.ndarray] | None = None  # summed on demand (the mean is the ablation)
            self._max = [np.maximum.reduceat(self._sorted, s[:-1]) if len(s) > 1 else np.zeros(0)
                         for s in index.start]
            self._version = self.trie.version
        return index

    @staticmethod
    def _positions(ads: np.ndarray) -> Callable[[int], int]:
        """ad id -> its index in ``ads`` (a scatter table for small ids, else a sorted search)."""
        if len(ads) and ads.min() >= 0 and ads.max() < BidTable.DENSE_IDS:
            table = np.full(int(ads.max()) + 1, -1, dtype=np.int64)
            table[ads] = np.arange(len(ads))
            return lambda ad: int(table[ad])
        by_id = np.argsort(ads)
        ids = ads[by_id]
        return lambda ad: int(by_id[np.searchsorted(ids, ad)])

    def _moved(self, ad: int, old: float, new: float) -> None:
        """Apply one bid change in place when the aggregates are current (else the next sync does)."""
        if self._version != self.trie.version or old == new or ad not in self.trie:
            return
        index = self._index
        pos = self._position(ad)
        self._sorted[pos] = new
        self._sum = None  # re-summed exactly at the next mean query (running sums would drift off 0)
        for t in range(index.depth + 1):
            node = int(index.node_of(t, np.array([pos]))[0])
            if new >= self._max[t][node]:
                self._max[t][node] = new
            elif old == self._max[t][node]:
                self._max[t][node] = self._sorted[index.start[t][node]:index.start[t][node + 1]].max()

    def _aggregate(self, t: int, aggregate: Aggregate) -> np.ndarray:
        """(n_t,) max or mean bid of each depth-t node."""
        if aggregate == "max":
            return self._max[t]
        if self._sum is None:
            self._sum = [np.add.reduceat(self._sorted, s[:-1]) if len(s) > 1 else np.zeros(0)
                         for s in self._index.start]
        return self._sum[t] / np.maximum(self._count[t], 1)

    def prefix_bid(self, prefix: Sequence[int], aggregate: Aggregate = "max") -> float:
        """Max or mean bid of the live ads under ``prefix`` (length 0..depth); NaN if none."""
        index = self._sync()
        node = int(index.lookup(np.asarray(prefix, dtype=np.int64).reshape(1, -1))[0])
        return float(self._aggregate(len(prefix), aggregate)[node]) if node >= 0 else float("nan")

    def position_bids(self) -> np.ndarray:
        """(n,) bid of each live ad in ``trie.index().ads`` order (read-only view)."""
        self._sync()
        view = self._sorted.view()
        view.flags.writeable = False
        return view

    def node_log_weight(self, t: int, nodes: np.ndarray, config: BidConfig) -> np.ndarray:
        """log(bid^alpha + beta) of depth-t ``nodes`` (any shape, valid node ids)."""
        self._sync()
        return config.log_weight(self._aggregate(t, config.aggregate)[nodes])

    def log_weight(self, prefixes: torch.Tensor, config: BidConfig) -> torch.Tensor:
        """Bid term of every next token.

        Args:
            prefixes: (N, t) int tokens decoded so far, 0 <= t < depth.

        Returns:
            (N, vocab_size) float32: log(bid(prefix + (c,)) ** alpha + beta), -inf where no live ad
            has the prefix ``prefix + (c,)``.
        """
        prefixes = np.asarray(torch.as_tensor(prefixes, dtype=torch.int64).cpu())
        if prefixes.ndim != 2 or prefixes.shape[1] >= self.trie.depth:
            raise ValueError(f"prefixes must be (N, t) with t < depth={self.trie.depth}, got {prefixes.shape}")
        index, t = self._sync(), prefixes.shape[1]
        row, node = index.children(t, index.lookup(prefixes))
        out = np.full((len(prefixes), self.trie.vocab_size), -np.inf, dtype=np.float32)
        out[row, index.token[t + 1][node]] = config.log_weight(self._aggregate(t + 1, config.aggregate)[node])
        return torch.from_numpy(out)

    def log_weight_reference(self, prefixes: torch.Tensor, config: BidConfig) -> torch.Tensor:
        """:meth:`log_weight` by a scan over every live ad, per row and token (for tests)."""
        prefixes = torch.as_tensor(prefixes, dtype=torch.int64)
        out = torch.full((prefixes.shape[0], self.trie.vocab_size), -torch.inf)
        live = [(self.trie.sid_of(ad), self.bid(ad)) for ad in self.trie.index().ads.tolist()]
        for i, prefix in enumerate(prefixes.tolist()):
            for c in range(self.trie.vocab_size):
                under = [bid for sid, bid in live if list(sid[: len(prefix) + 1]) == [*prefix, c]]
                if under:
                    agg = max(under) if config.aggregate == "max" else sum(under) / len(under)
                    out[i, c] = float(config.log_weight(np.array(agg)))
        return out
