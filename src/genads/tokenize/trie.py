"""A prefix trie over the Semantic IDs of live ads, for constrained decoding.

Ads come and go at run time (``insert`` / ``remove``). Decoding asks, for a batch of partial
SIDs, which next tokens lead to at least one live ad: :meth:`PrefixTrie.mask` answers with a
(B, V) bool tensor. The fast path keeps, per depth, a sorted tensor of prefix keys (mixed-radix
integers) and a dense (n_prefixes, V) table, rebuilt lazily after changes; :meth:`mask_reference`
is the naive per-row loop it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch


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
        self._sid: dict[int, tuple[int, ...]] = {}
        self._ads: dict[tuple[int, ...], set[int]] = {}
        self._tables: list[tuple[torch.Tensor, torch.Tensor]] | None = None

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
        if len(sid) != self.depth:
            raise ValueError(f"ad {ad_id}: sid has {len(sid)} tokens, the trie depth is {self.depth}")
        if any(t < 0 or t >= self.vocab_size for t in sid):
            raise ValueError(f"ad {ad_id}: sid {sid} has a token outside [0, vocab_size={self.vocab_size})")
        if ad_id in self._sid:
            self.remove(ad_id)
        self._sid[ad_id] = sid
        self._ads.setdefault(sid, set()).add(ad_id)
        self._tables = None

    def remove(self, ad_id: int) -> None:
        """Take ``ad_id`` out; its SID stays reachable only if another live ad shares it."""
        if ad_id not in self._sid:
            raise KeyError(f"ad {ad_id} is not live in the trie")
        sid = self._sid.pop(ad_id)
        self._ads[sid].discard(ad_id)
        if not self._ads[sid]:
            del self._ads[sid]
        self._tables = None

    def ads(self, sid: Sequence[int]) -> list[int]:
        """Live ads whose SID is exactly ``sid`` (sorted; empty if none)."""
        return sorted(self._ads.get(tuple(int(t) for t in sid), ()))

    def sid_of(self, ad_id: int) -> tuple[int, ...]:
        return self._sid[ad_id]

    def live_sids(self) -> set[tuple[int, ...]]:
        """Every complete SID that names at least one live ad."""
        return set(self._ads)

    def _keys(self, prefixes: torch.Tensor) -> torch.Tensor:
        """Mixed-radix int64 key of each (B, t) prefix."""
        keys = torch.zeros(prefixes.shape[0], dtype=torch.int64)
        for j in range(prefixes.shape[1]):
            keys = keys * self.vocab_size + prefixes[:, j]
        return keys

    def _build(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sids = torch.tensor(sorted(self._ads), dtype=torch.int64).reshape(-1, self.depth)
        tables = []
        for t in range(self.depth):
            keys = self._keys(sids[:, :t])
            uniq, row = torch.unique(keys, return_inverse=True)
            table = torch.zeros(len(uniq), self.vocab_size, dtype=torch.bool)
            table[row, sids[:, t]] = True
            tables.append((uniq, table))
        return tables

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
        if self._tables is None:
            self._tables = self._build()
        keys_sorted, table = self._tables[prefixes.shape[1]]
        out = torch.zeros(prefixes.shape[0], self.vocab_size, dtype=torch.bool)
        if len(keys_sorted) == 0 or prefixes.shape[0] == 0:
            return out
        in_range = ((prefixes >= 0) & (prefixes < self.vocab_size)).all(dim=1)
        keys = self._keys(prefixes.clamp(0, self.vocab_size - 1))
        pos = torch.searchsorted(keys_sorted, keys).clamp_max(len(keys_sorted) - 1)
        found = in_range & (keys_sorted[pos] == keys)
        out[found] = table[pos[found]]
        return out

    def mask_reference(self, prefixes: torch.Tensor) -> torch.Tensor:
        """The naive per-row version of :meth:`mask` (a scan over every live SID)."""
        prefixes = torch.as_tensor(prefixes, dtype=torch.int64)
        out = torch.zeros(prefixes.shape[0], self.vocab_size, dtype=torch.bool)
        for b, prefix in enumerate(prefixes.tolist()):
            for sid in self._ads:
                if list(sid[: len(prefix)]) == prefix:
                    out[b, sid[len(prefix)]] = True
        return out
