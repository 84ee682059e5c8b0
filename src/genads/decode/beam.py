"""Trie-constrained beam search over Semantic IDs: every generated SID names a live ad.

:func:`beam_search` decodes a batch of requests at once: one pass over the histories fills a KV
cache, then each of the L levels extends every beam by one token, keeping the ``beam`` best
continuations per request among those the :class:`~genads.tokenize.trie.PrefixTrie` allows.
Finished SIDs are resolved to ads with ``trie.ads``: an SID shared by several ads yields each of
them once (in ad order, at that SID's score), never one ad twice. :func:`beam_search_reference`
is the naive per-request loop (no cache, no batching) the fast path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genads.slate.model import N_SPECIAL, PAD, SlateModel, history_tokens
from genads.tokenize.trie import PrefixTrie


@dataclass
class Slate:
    """Generated ads per request, best first."""

    ads: np.ndarray
    """(B, S) int64 ads (item indices, or whatever ids the trie holds); -1 past the last live ad found."""
    scores: np.ndarray
    """(B, S) float log-probability of each ad's SID under the model; -inf where ``ads`` is -1."""


def live_trie(sids: np.ndarray, items: np.ndarray | None = None) -> PrefixTrie:
    """A trie over item indices ``items`` (default: every item 1..N) keyed by their rows of ``sids``."""
    sids = np.asarray(sids, dtype=np.int64)
    items = np.arange(1, len(sids)) if items is None else np.asarray(items, dtype=np.int64)
    return PrefixTrie.from_codes(items.tolist(), sids[items], vocab_size=int(sids.max()) + 1)


def allowed_tokens(trie: PrefixTrie, prefixes: Tensor, width: int, reference: bool = False) -> Tensor:
    """(N, width) bool mask of next codes that keep a path to a live ad."""
    if trie.vocab_size > width:
        raise ValueError(f"trie vocab_size={trie.vocab_size} exceeds the model's codebook_size={width}")
    mask = trie.mask_reference(prefixes) if reference else trie.mask(prefixes)
    return F.pad(mask, (0, width - trie.vocab_size), value=False)


def select_top(cand: Tensor, beam: int) -> tuple[Tensor, Tensor]:
    """The ``beam`` best of each row (B, C), ties to the lower index: (values, indices), (B, min(beam, C))."""
    values, idx = torch.sort(cand, dim=1, descending=True, stable=True)
    return values[:, :beam], idx[:, :beam]


def resolve(trie: PrefixTrie, sids: Tensor, scores: Tensor, slate_size: int) -> Slate:
    """Beams (B, k, L) with scores (B, k), best first -> a slate of ``slate_size`` distinct live ads."""
    B = sids.shape[0]
    ads = np.full((B, slate_size), -1, dtype=np.int64)
    out = np.full((B, slate_size), -np.inf)
    sids_l, scores_l = sids.tolist(), scores.tolist()
    for b in range(B):
        seen: set[int] = set()
        for sid, score in zip(sids_l[b], scores_l[b], strict=True):
            if score == -np.inf or len(seen) == slate_size:
                break
            for ad in trie.ads(sid):
                if ad not in seen and len(seen) < slate_size:
                    ads[b, len(seen)], out[b, len(seen)] = ad, score
                    seen.add(ad)
    return Slate(ads, out)


@torch.no_grad()
def beam_search(model: SlateModel, trie: PrefixTrie, tokens: Tensor, positions: Tensor,
                *, beam: int, slate_size: int) -> Slate:
    """Batched constrained beam search with a KV cache.

    Args:
        tokens, positions: (B, T) left-padded history tokens and item positions (:func:`history_tokens`
            with ``last_pos = max_items - 1``: the generated item sits at position ``max_items``).
        beam: beams kept per request at every level.
        slate_size: ads returned per request (S).
    """
    model.eval()
    cfg = model.config
    B, W, device = tokens.shape[0], cfg.codebook_size, tokens.device
    valid = tokens != PAD
    h, cache = model.trunk(tokens, positions, valid)
    logits = model.level_logits(h[:, -1], 0)  # (B, W)
    scores = torch.zeros(B, 1, device=device)
    prefix = torch.zeros(B, 1, 0, dtype=torch.int64, device=device)  # (B, k, level)
    for level in range(cfg.levels):
        k = prefix.shape[1]
        logp = F.log_softmax(logits.float(), dim=-1)
        allowed = allowed_tokens(trie, prefix.reshape(B * k, level).cpu(), W).to(device)  # the trie lives on CPU
        logp = logp.masked_fill(~allowed, -torch.inf)
        scores, idx = select_top((scores.reshape(B * k, 1) + logp).reshape(B, k * W), beam)  # (B, k')
        parent, token = idx // W, idx % W
        prefix = torch.cat([prefix.gather(1, parent[..., None].expand(-1, -1, level)), token[..., None]], dim=2)
        if level + 1 < cfg.levels:
            rows = (torch.arange(B, device=device)[:, None] * k + parent).reshape(-1)  # (B * k',)
            cache = [(kk.index_select(0, rows), vv.index_select(0, rows)) for kk, vv in cache]
            valid = torch.cat([valid.index_select(0, rows), torch.ones(len(rows), 1, dtype=torch.bool, device=device)], dim=1)
            new = (N_SPECIAL + level * W + token).reshape(-1, 1)  # (B * k', 1)
            pos = torch.full_like(new, cfg.max_items)
            h, cache = model.trunk(new, pos, valid, cache)
            logits = model.level_logits(h[:, -1], level + 1)
    return resolve(trie, prefix, scores, slate_size)


def generate_slate(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, history: np.ndarray,
                   *, beam: int, slate_size: int) -> Slate:
    """Slates for left-padded item histories (B, m): the last ``max_items`` items are read."""
    history = np.asarray(history, dtype=np.int64)[:, -model.config.max_items:]
    tokens, positions = history_tokens(history, sids, model.config.codebook_size, model.config.max_items - 1)
    device = next(model.parameters()).device
    return beam_search(model, trie, tokens.to(device), positions.to(device), beam=beam, slate_size=slate_size)


@torch.no_grad()
def beam_search_reference(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, history: np.ndarray,
                          *, beam: int, slate_size: int) -> tuple[list[int], list[float]]:
    """One request, no cache, no batching: re-reads the whole sequence for every beam and level.

    Args:
        history: (m,) item indices (0 = padding, ignored).

    Returns:
        (ads, scores): up to ``slate_size`` distinct live ads, best first, and their SID log-probabilities.
    """
    model.eval()
    cfg = model.config
    items = np.asarray(history, dtype=np.int64)
    items = items[items > 0][-cfg.max_items:]
    tokens, positions = history_tokens(items[None], sids, cfg.codebook_size, cfg.max_items - 1)
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for level in range(cfg.levels):
        cands = []
        for prefix, score in beams:
            extra = torch.tensor([[N_SPECIAL + lv * cfg.codebook_size + c for lv, c in enumerate(prefix)]],
                                 dtype=torch.int64)
            seq = torch.cat([tokens, extra], dim=1)  # CPU: the reference is for tests
            pos = torch.cat([positions, torch.full((1, len(prefix)), cfg.max_items)], dim=1)
            logp = F.log_softmax(model.level_logits(model(seq, pos)[0, -1], level).float(), dim=-1)
            ok = allowed_tokens(trie, torch.tensor([prefix], dtype=torch.int64).reshape(1, level),
                                cfg.codebook_size, reference=True)[0]
            cands += [((*prefix, c), score + float(logp[c])) for c in range(cfg.codebook_size) if ok[c]]
        beams = sorted(cands, key=lambda pc: -pc[1])[:beam]  # stable: ties keep (beam, code) order
    ads: list[int] = []
    scores: list[float] = []
    for sid, score in beams:
        for ad in trie.ads(sid):
            if ad not in ads and len(ads) < slate_size:
                ads.append(ad)
                scores.append(score)
    return ads, scores
