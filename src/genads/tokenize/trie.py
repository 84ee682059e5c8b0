"""A prefix trie over the Semantic IDs of live ads, for constrained decoding.

Ads come and go at run time (``insert`` / ``remove``); every change bumps :attr:`PrefixTrie.version`,
so structures kept beside the trie (the bid table of :mod:`genads.decode.bidding`) know when to
re-sync. Decoding asks, for a batch of partial SIDs, which next tokens lead to at least one live
ad: :meth:`PrefixTrie.mask` answers with a (B, V) bool tensor.

The fast path reads an immutable :class:`TrieIndex` (rebuilt lazily after changes, by patching the
previous one when few ads changed): live ads sorted
by SID, and per depth the distinct prefixes as nodes in sorted order. Because the order is
lexicographic, the ads under a node and the children of a node are contiguous ranges (CSR), so a
mask is a ``searchsorted`` for the node plus a scatter of its children, with memory O(n_ads * depth)
instead of a dense (n_prefixes, V) table per depth. :meth:`mask_reference` is the naive per-row loop
it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch


def expand_ranges(lo: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges ``lo[i] : lo[i] + count[i]`` flattened: (owner i, value), each (count.sum(),)."""
    owner = np.repeat(np.arange(len(lo)), count)
    return owner, lo[owner] + np.arange(len(owner)) - (np.cumsum(count) - count)[owner]


@dataclass(frozen=True)
class TrieIndex:
    """Snapshot of the live SIDs as a level-by-level tree (nodes of depth t = distinct length-t prefixes).

    Depth 0 holds the root (one node if any ad is live). Node ``i`` of depth ``t`` covers the ads
    ``ads[start[t][i]:start[t][i + 1]]`` and has the children ``child[t][i]:child[t][i + 1]`` of depth t + 1.
    """

    depth: int
    vocab_size: int
    ads: np.ndarray
    """(n,) live ad ids sorted by (SID, ad id)."""
    codes: np.ndarray
    """(n, depth) their SIDs."""
    keys: list[np.ndarray]
    """Per depth t = 0..depth: (n_t,) sorted mixed-radix keys of the length-t prefixes."""
    start: list[np.ndarray]
    """Per depth: (n_t + 1,) boundaries of each node's ad range."""
    child: list[np.ndarray]
    """Per depth t < depth: (n_t + 1,) boundaries of each node's children among the depth t + 1 nodes."""
    token: list[np.ndarray]
    """Per depth: (n_t,) last token of each node (-1 for the root)."""

    @classmethod
    def build(cls, depth: int, vocab_size: int, ads: np.ndarray, codes: np.ndarray) -> TrieIndex:
        """The index of live ``ads`` (n,) with SIDs ``codes`` (n, depth), in any order (fastest nearly sorted)."""
        codes = codes.reshape(-1, depth)
        n = len(ads)
        full = np.zeros(n, dtype=np.int64)  # mixed-radix key of the whole SID (< vocab ** depth)
        for t in range(depth):
            full = full * vocab_size + codes[:, t]
        if n and (int(full.max()) + 1) * (int(ads.max()) + 1) < 2**62:  # one key: a stable sort runs in O(n) on
            order = np.argsort(full * (int(ads.max()) + 1) + ads, kind="stable")  # a patched, nearly sorted index
        else:
            order = np.lexsort((ads, full))
        ads, codes, full = np.take(ads, order), np.take(codes, order, axis=0), np.take(full, order)
        keys, start, token, node_id = [], [], [], []
        for t in range(depth + 1):
            key = full // vocab_size ** (depth - t)  # the length-t prefix's key
            new = np.diff(key, prepend=-1) != 0
            first = np.flatnonzero(new)
            keys.append(key[first])
            start.append(np.append(first, n).astype(np.int64))
            token.append(codes[first, t - 1] if t else np.full(len(first), -1, np.int64))
            node_id.append(np.cumsum(new) - 1)  # (n,) depth-t node of each ad position
        child = [np.append(node_id[t + 1][start[t][:-1]], len(keys[t + 1])).astype(np.int64) for t in range(depth)]
        return cls(depth, vocab_size, ads, codes, keys, start, child, token)

    def lookup(self, prefixes: np.ndarray) -> np.ndarray:
        """(N,) node of each (N, t) prefix at depth t; -1 where no live ad has that prefix."""
        t = prefixes.shape[1]
        keys_t = self.keys[t]
        if len(keys_t) == 0:
            return np.full(len(prefixes), -1, np.int64)
        in_range = ((prefixes >= 0) & (prefixes < self.vocab_size)).all(axis=1)
        key = np.zeros(len(prefixes), dtype=np.int64)
        for j in range(t):
            key = key * self.vocab_size + np.clip(prefixes[:, j], 0, self.vocab_size - 1)
        pos = np.minimum(np.searchsorted(keys_t, key), len(keys_t) - 1)
        return np.where(in_range & (keys_t[pos] == key), pos, -1)

    def children(self, t: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Children of depth-t ``nodes`` (N,), -1 = none: (row in ``nodes``, child node at depth t + 1), each (M,)."""
        bounds = self.child[t]
        if len(bounds) == 1:  # no live ad
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ok = nodes >= 0
        safe = np.where(ok, nodes, 0)
        lo = bounds[safe]
        return expand_ranges(lo, np.where(ok, bounds[safe + 1] - lo, 0))

    def node_of(self, t: int, positions: np.ndarray) -> np.ndarray:
        """Depth-t node that covers each ad position (index into :attr:`ads`)."""
        return np.searchsorted(self.start[t], positions, side="right") - 1


class PrefixTrie:
    """Live ads keyed by their SIDs (``depth`` tokens, each in [0, vocab_size))."""

    def __init__(self, depth: int, vocab_size: int) -> None:
        if depth < 1:
            raise ValueError(f"depth={depth} must be >= 1")
        if vocab_size < 1:
            raise ValueError(f"vocab_size={vocab_size} must be >= 1")
        if vocab_size ** (depth + 1) >= 2**62:
            raise ValueError(f"vocab_size={vocab_size} ** (depth={depth} + 1) overflows int64 prefix keys")
        self.depth = depth
        self.vocab_size = vocab_size
        self.version = 0
        """Bumped by every insert / remove."""
        self._sid: dict[int, tuple[int, ...]] = {}
        self._ads: dict[tuple[int, ...], set[int]] = {}
        self._index: TrieIndex | None = None
        self._last: TrieIndex | None = None  # the latest index built, patched by the next build
        self._dirty: set[int] = set()  # ads inserted, moved or removed since ``_last``

    @classmethod
    def from_codes(cls, ad_ids: Iterable[int], codes: np.ndarray, vocab_size: int | None = None) -> PrefixTrie:
        """A trie holding every (ad_id, codes row); ``vocab_size`` defaults to max code + 1."""
        codes = np.asarray(codes, dtype=np.int64)
        trie = cls(codes.shape[1], int(vocab_size or (codes.max() + 1 if codes.size else 1)))
        for ad, row in zip(ad_ids, codes.tolist(), strict=True):
            trie.insert(int(ad), row)
        return trie

    def __len__(self) -> int:
        return len(self._sid)

    def __contains__(self, ad_id: int) -> bool:
        return ad_id in self._sid

    def insert(self, ad_id: int, sid: Sequence[int]) -> None:
        """Make ``ad_id`` live under ``sid`` (re-inserting an ad moves it)."""
        sid = tuple(int(t) for t in sid)
        if ad_id < 0:
            raise ValueError(f"ad {ad_id}: ad ids must be >= 0 (-1 marks 'no ad' in slates)")
        if len(sid) != self.depth:
            raise ValueError(f"ad {ad_id}: sid has {len(sid)} tokens, the trie depth is {self.depth}")
        if any(t < 0 or t >= self.vocab_size for t in sid):
            raise ValueError(f"ad {ad_id}: sid {sid} has a token outside [0, vocab_size={self.vocab_size})")
        if ad_id in self._sid:
            self.remove(ad_id)
        self._sid[ad_id] = sid
        self._ads.setdefault(sid, set()).add(ad_id)
        self._changed(ad_id)

    def remove(self, ad_id: int) -> None:
        """Take ``ad_id`` out; its SID stays reachable only if another live ad shares it."""
        if ad_id not in self._sid:
            raise KeyError(f"ad {ad_id} is not live in the trie")
        sid = self._sid.pop(ad_id)
        self._ads[sid].discard(ad_id)
        if not self._ads[sid]:
            del self._ads[sid]
        self._changed(ad_id)

    def _changed(self, ad_id: int) -> None:
        self._index = None
        self._dirty.add(ad_id)
        self.version += 1

    def ads(self, sid: Sequence[int]) -> list[int]:
        """Live ads whose SID is exactly ``sid`` (sorted; empty if none)."""
        return sorted(self._ads.get(tuple(int(t) for t in sid), ()))

    def sid_of(self, ad_id: int) -> tuple[int, ...]:
        return self._sid[ad_id]

    def live_sids(self) -> set[tuple[int, ...]]:
        """Every complete SID that names at least one live ad."""
        return set(self._ads)

    def index(self) -> TrieIndex:
        """The current :class:`TrieIndex`, built on first use after a change.

        After a few changes the previous index is patched (its arrays minus the changed ads, plus
        their live rows) rather than re-read from the dict of all live ads.
        """
        if self._index is None:
            last, dirty = self._last, self._dirty
            if last is not None and 4 * len(dirty) < len(last.ads):
                changed = np.fromiter(dirty, dtype=np.int64, count=len(dirty))
                keep = ~np.isin(last.ads, changed)
                live = [ad for ad in dirty if ad in self._sid]
                ads = np.concatenate([last.ads[keep], np.array(live, dtype=np.int64)])
                new = np.array([self._sid[ad] for ad in live], dtype=np.int64).reshape(-1, self.depth)
                codes = np.concatenate([last.codes[keep], new])
            else:
                n = len(self._sid)
                ads = np.fromiter(self._sid, dtype=np.int64, count=n)
                codes = np.fromiter(chain.from_iterable(self._sid.values()), dtype=np.int64, count=n * self.depth)
            self._index = self._last = TrieIndex.build(self.depth, self.vocab_size, ads, codes)
            self._dirty = set()
        return self._index

    def mask(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Valid next tokens for a batch of prefixes.

        Args:
            prefixes: (B, t) int tensor, 0 <= t < depth, the tokens decoded so far.

        Returns:
            (B, vocab_size) bool: True where appending the token keeps a path to a live ad.
        """
        prefixes = torch.as_tensor(prefixes, dtype=torch.int64)
        if prefixes.ndim != 2 or prefixes.shape[1] >= self.depth:
            raise ValueError(f"prefixes must be (B, t) with t < depth={self.depth}, got {tuple(prefixes.shape)}")
        index, t = self.index(), prefixes.shape[1]
        row, node = index.children(t, index.lookup(prefixes.numpy()))
        out = np.zeros((prefixes.shape[0], self.vocab_size), dtype=bool)
        out[row, index.token[t + 1][node]] = True
        return torch.from_numpy(out)

    def mask_reference(self, prefixes: torch.Tensor) -> torch.Tensor:
        """The naive per-row version of :meth:`mask` (a scan over every live SID)."""
        prefixes = torch.as_tensor(prefixes, dtype=torch.int64)
        out = torch.zeros(prefixes.shape[0], self.vocab_size, dtype=torch.bool)
        for b, prefix in enumerate(prefixes.tolist()):
            for sid in self._ads:
                if list(sid[: len(prefix)]) == prefix:
                    out[b, sid[len(prefix)]] = True
        return out
