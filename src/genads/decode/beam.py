"""Trie-constrained beam search over Semantic IDs: every generated SID names a live ad.

:func:`beam_search` decodes a batch of requests at once: one pass over the histories fills a KV
cache, then each of the L levels extends every beam by one token, keeping the ``beam`` best
continuations per request among those the :class:`~genads.tokenize.trie.PrefixTrie` allows.
Finished SIDs are resolved to ads with ``trie.ads``: an SID shared by several ads yields each of
them once (in ad order, at that SID's score), never one ad twice. :func:`beam_search_reference`
is the naive per-request loop (no cache, no batching) the fast path is tested against.

Token-level bidding (optional ``bids`` = :class:`~genads.decode.bidding.BidTable` and ``bid_config``):
a beam's score is its model log-probability plus the bid term ``log(bid(prefix) ** alpha + beta)`` of
its *current* prefix, not a sum of the terms of its prefixes. Why not accumulate: the term of a
prefix already stands for the best (or mean) ad still reachable below it, so summing it over levels
would count the same advertiser's bid once per level (an effective exponent ``alpha * L`` that grows
with the SID length and favours deep, narrow subtrees); the current prefix's term is a re-estimate
that replaces the previous one, and at the last level it is exactly the finished SID's weight, so
finished beams are ranked by ``log(P(sid) * (bid ** alpha + beta))``. It also makes allocation
monotone: raising one ad's bid raises only the terms of that ad's own prefixes, so a beam that kept
the ad keeps it, and its slate rank never gets worse (tests/decode/test_bidding.py). Each slate ad
is scored with its own bid (ads sharing an SID are ordered by it); ``Slate.logprob`` keeps the pure
model log-probability and ``Slate.bids`` the bid, for payments and re-ranking. To get a candidate
pool for a re-ranker, ask for ``slate_size = beam``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genads.decode.bidding import BidConfig, BidTable
from genads.slate.model import N_SPECIAL, PAD, SlateModel, history_tokens
from genads.tokenize.trie import PrefixTrie


@dataclass
class Slate:
    """Generated ads per request, best first."""

    ads: np.ndarray
    """(B, S) int64 ads (item indices, or whatever ids the trie holds); -1 past the last live ad found."""
    scores: np.ndarray
    """(B, S) float beam score of each ad: its SID's model log-probability, plus its bid term
    ``log(bid ** alpha + beta)`` when decoding with bids; -inf where ``ads`` is -1."""
    logprob: np.ndarray | None = None
    """(B, S) the SID's model log-probability alone (equals ``scores`` without bids); -inf where ``ads`` is -1."""
    bids: np.ndarray | None = None
    """(B, S) each ad's bid; NaN without a bid table or where ``ads`` is -1."""


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


def bid_term(trie: PrefixTrie, prefixes: Tensor, width: int, bids: BidTable | None, config: BidConfig,
             reference: bool = False) -> Tensor:
    """(N, width) float additive term of each next token: 0 (or log(bid^alpha + beta)) where allowed, -inf elsewhere."""
    if bids is None:
        allowed = allowed_tokens(trie, prefixes, width, reference)
        return torch.zeros(allowed.shape).masked_fill_(~allowed, -torch.inf)
    if bids.trie is not trie:
        raise ValueError("bids is a BidTable over another trie than the one decoding uses")
    allowed_tokens(trie, prefixes[:0], width)  # the codebook-width check
    term = bids.log_weight_reference(prefixes, config) if reference else bids.log_weight(prefixes, config)
    return F.pad(term, (0, width - trie.vocab_size), value=-torch.inf)


def resolve(trie: PrefixTrie, sids: Tensor, scores: Tensor, logprob: Tensor, slate_size: int,
            bids: BidTable | None = None, config: BidConfig | None = None) -> Slate:
    """Beams (B, k, L) with scores and model log-probs (B, k), best first -> ``slate_size`` distinct live ads.

    Every ad of every finite-score beam is a candidate scored ``logprob + log(own bid ** alpha + beta)``
    (just ``logprob`` without bids); candidates are sorted by that score, ties kept in beam then ad
    order, and -inf scores (a zero bid with beta = 0) are never allocated.
    """
    B = sids.shape[0]
    ads = np.full((B, slate_size), -1, dtype=np.int64)
    out, lp_out, bid_out = (np.full((B, slate_size), v) for v in (-np.inf, -np.inf, np.nan))
    for b, (sid_b, score_b, lp_b) in enumerate(zip(sids.tolist(), scores.tolist(), logprob.tolist(), strict=True)):
        cands = _candidates(trie, sid_b, score_b, lp_b, bids, config)
        for j, (score, lp, ad, bid) in enumerate(cands[:slate_size]):
            ads[b, j], out[b, j], lp_out[b, j], bid_out[b, j] = ad, score, lp, bid
    return Slate(ads, out, lp_out, bid_out)


def _candidates(trie: PrefixTrie, sids: list, scores: list[float], logprob: list[float],
                bids: BidTable | None, config: BidConfig | None) -> list[tuple[float, float, int, float]]:
    """(score, logprob, ad, bid) of the ads of one request's finished beams, best first."""
    cands = []
    for sid, score, lp in zip(sids, scores, logprob, strict=True):
        if score == -np.inf:
            continue
        for ad in trie.ads(sid):
            if bids is None:
                cands.append((lp, lp, ad, np.nan))
            else:
                bid = bids.bid(ad)
                cands.append((lp + float(config.log_weight(np.array(bid))), lp, ad, bid))
    cands.sort(key=lambda c: -c[0])  # stable: ties keep beam, then ad, order
    return [c for c in cands if c[0] > -np.inf]


@torch.no_grad()
def beam_search(model: SlateModel, trie: PrefixTrie, tokens: Tensor, positions: Tensor,
                *, beam: int, slate_size: int, bids: BidTable | None = None,
                bid_config: BidConfig | None = None) -> Slate:
    """Batched constrained beam search with a KV cache.

    Args:
        tokens, positions: (B, T) left-padded history tokens and item positions (:func:`history_tokens`
            with ``last_pos = max_items - 1``: the generated item sits at position ``max_items``).
        beam: beams kept per request at every level.
        slate_size: ads returned per request (S); ``slate_size = beam`` gives the whole candidate pool.
        bids: live ads' bids (over this ``trie``); None decodes on the model's log-probabilities alone.
        bid_config: alpha, beta and max/mean aggregation of the bid term (default ``BidConfig()``).
    """
    model.eval()
    cfg = model.config
    bid_config = bid_config or BidConfig()
    B, W, device = tokens.shape[0], cfg.codebook_size, tokens.device
    valid = tokens != PAD
    h, cache = model.trunk(tokens, positions, valid)
    logits = model.level_logits(h[:, -1], 0)  # (B, W)
    logprob = torch.zeros(B, 1, device=device)
    prefix = torch.zeros(B, 1, 0, dtype=torch.int64, device=device)  # (B, k, level)
    for level in range(cfg.levels):
        k = prefix.shape[1]
        term = bid_term(trie, prefix.reshape(B * k, level).cpu(), W, bids, bid_config).to(device)  # trie on CPU
        cand_lp = logprob.reshape(B * k, 1) + F.log_softmax(logits.float(), dim=-1)  # (B * k, W)
        scores, idx = select_top((cand_lp + term).reshape(B, k * W), beam)  # (B, k')
        logprob = cand_lp.reshape(B, k * W).gather(1, idx)
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
    return resolve(trie, prefix.cpu(), scores.cpu(), logprob.cpu(), slate_size, bids, bid_config)


def generate_slate(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, history: np.ndarray,
                   *, beam: int, slate_size: int, bids: BidTable | None = None,
                   bid_config: BidConfig | None = None) -> Slate:
    """Slates for left-padded item histories (B, m): the last ``max_items`` items are read."""
    history = np.asarray(history, dtype=np.int64)[:, -model.config.max_items:]
    tokens, positions = history_tokens(history, sids, model.config.codebook_size, model.config.max_items - 1)
    device = next(model.parameters()).device
    return beam_search(model, trie, tokens.to(device), positions.to(device), beam=beam, slate_size=slate_size,
                       bids=bids, bid_config=bid_config)


@torch.no_grad()
def beam_search_reference(model: SlateModel, trie: PrefixTrie, sids: np.ndarray, history: np.ndarray,
                          *, beam: int, slate_size: int, bids: BidTable | None = None,
                          bid_config: BidConfig | None = None) -> Slate:
    """One request, no cache, no batching: re-reads the whole sequence for every beam and level.

    Bid terms, when ``bids`` is given, come from a naive scan over every live ad per prefix.

    Args:
        history: (m,) item indices (0 = padding, ignored).

    Returns:
        A one-row :class:`Slate`: up to ``slate_size`` distinct live ads, best first, their scores,
        SID log-probabilities and bids.
    """
    model.eval()
    cfg = model.config
    bid_config = bid_config or BidConfig()
    items = np.asarray(history, dtype=np.int64)
    items = items[items > 0][-cfg.max_items:]
    tokens, positions = history_tokens(items[None], sids, cfg.codebook_size, cfg.max_items - 1)
    beams: list[tuple[tuple[int, ...], float, float]] = [((), 0.0, 0.0)]  # (prefix, score, logprob)
    for level in range(cfg.levels):
        cands = []
        for prefix, _, lp in beams:
            extra = torch.tensor([[N_SPECIAL + lv * cfg.codebook_size + c for lv, c in enumerate(prefix)]],
                                 dtype=torch.int64)
            seq = torch.cat([tokens, extra], dim=1)  # CPU: the reference is for tests
            pos = torch.cat([positions, torch.full((1, len(prefix)), cfg.max_items)], dim=1)
            logp = F.log_softmax(model.level_logits(model(seq, pos)[0, -1], level).float(), dim=-1)
            done = torch.tensor([prefix], dtype=torch.int64).reshape(1, level)
            ok = allowed_tokens(trie, done, cfg.codebook_size, reference=True)[0]
            term = bid_term(trie, done, cfg.codebook_size, bids, bid_config, reference=True)[0]
            cands += [((*prefix, c), lp + float(logp[c]) + float(term[c]), lp + float(logp[c]))
                      for c in range(cfg.codebook_size) if ok[c]]
        beams = sorted(cands, key=lambda pc: -pc[1])[:beam]  # stable: ties keep (beam, code) order
    ranked = _candidates(trie, [b[0] for b in beams], [b[1] for b in beams], [b[2] for b in beams], bids, bid_config)
    ranked = ranked[:slate_size]
    row = lambda j, fill: np.array([[c[j] for c in ranked] + [fill] * (slate_size - len(ranked))])  # noqa: E731
    return Slate(row(2, -1).astype(np.int64), row(0, -np.inf), row(1, -np.inf), row(3, np.nan))
