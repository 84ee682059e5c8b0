"""Trie-constrained beam search over Semantic IDs: every generated SID names a live ad.

:func:`beam_search` decodes a batch of requests at once: one pass over the histories fills a KV
cache that a request's beams share (:class:`~genads.decode.stepper.BeamStepper`), then each of the
L levels extends every beam by one token, keeping the ``beam`` best continuations per request among
those the :class:`~genads.tokenize.trie.PrefixTrie` allows. Each beam carries its node of the trie's
:class:`~genads.tokenize.trie.TrieIndex`, so a level scores only the live children of each beam
(no (B * k, V) masks, no prefix lookups). Finished SIDs are resolved to their ads: an SID shared by
several ads yields each of them once (in ad order, at that SID's score), never one ad twice.
:func:`beam_search_reference` is the naive per-request loop (no cache, no batching, masks and bid
terms from full scans) the fast path is tested against.

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
from genads.decode.stepper import BeamStepper
from genads.slate.model import N_SPECIAL, SlateModel, history_tokens
from genads.tokenize.trie import PrefixTrie, TrieIndex, expand_ranges


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
    check_width(trie, width)
    mask = trie.mask_reference(prefixes) if reference else trie.mask(prefixes)
    return F.pad(mask, (0, width - trie.vocab_size), value=False)


def check_width(trie: PrefixTrie, width: int, bids: BidTable | None = None) -> None:
    if trie.vocab_size > width:
        raise ValueError(f"trie vocab_size={trie.vocab_size} exceeds the model's codebook_size={width}")
    if bids is not None and bids.trie is not trie:
        raise ValueError("bids is a BidTable over another trie than the one decoding uses")


def top_per_group(group: np.ndarray, score: np.ndarray, r: int, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``r`` best scores of each group, ties to the earlier element: (element index, rank in group).

    ``group`` (M,) must be sorted (elements of a group contiguous). Wide groups are cut down first
    with a row-wise ``np.partition`` (O(M)); only the kept elements are sorted.
    """
    counts = np.bincount(group, minlength=n_groups)
    if len(group) and counts.max() > r:
        starts = np.cumsum(counts) - counts
        dense = np.full((n_groups, counts.max()), np.inf, dtype=score.dtype)  # negated scores, padded with +inf
        dense[group, np.arange(len(group)) - starts[group]] = -score
        kth = -np.partition(dense, r - 1, axis=1)[:, r - 1][group]  # r-th best of each element's group
        above, tie = score > kth, score == kth
        n_above = np.bincount(group[above], minlength=n_groups)
        tie_idx = np.flatnonzero(tie)
        tie_rank = np.arange(len(tie_idx)) - np.searchsorted(group[tie_idx], group[tie_idx])  # ties: index order
        keep = above
        keep[tie_idx[tie_rank < (r - n_above)[group[tie_idx]]]] = True
        sel = np.flatnonzero(keep)
    else:
        sel = np.arange(len(group))
    order = sel[np.lexsort((-score[sel], group[sel]))]  # stable: by group, then score descending, then index
    kept = np.bincount(group[order], minlength=n_groups)
    rank = np.arange(len(order)) - (np.cumsum(kept) - kept)[group[order]]
    return order[rank < r], rank[rank < r]


def extend(index: TrieIndex, node: np.ndarray, logprob: np.ndarray, logp: Tensor, level: int, beam: int,
           bids: BidTable | None, config: BidConfig) -> tuple[np.ndarray, ...]:
    """One level of beam search over the live children of each beam's trie node.

    Args:
        node, logprob: (B, k) depth-``level`` trie node of each beam (-1: a dead slot) and its SID log-prob.
        logp: (B * k, W) the model's log-probabilities of the next code.

    Returns:
        (node, parent, code, logprob, score), each (B, k'): the new beams' depth-``level + 1`` nodes,
        the beam they extend, their last code, log-probability and score (log-prob + bid term).
    """
    B, k = node.shape
    row, child = index.children(level, node.reshape(-1))  # (M,) live continuations only
    code = index.token[level + 1][child]
    flat = torch.from_numpy(row * logp.shape[1] + code).to(logp.device)
    lp = logprob.reshape(-1)[row] + logp.reshape(-1)[flat].cpu().numpy()  # (M,) float32
    score = lp if bids is None else lp + bids.node_log_weight(level + 1, child, config).astype(np.float32)
    req = row // k
    top, slot = top_per_group(req, score, beam, B)
    width = max(1, int(slot.max(initial=0)) + 1)
    out = [np.full((B, width), fill, dtype) for fill, dtype in
           ((-1, np.int64), (0, np.int64), (0, np.int64), (-np.inf, np.float32), (-np.inf, np.float32))]
    r = req[top]
    for arr, values in zip(out, (child, row % k, code, lp, score), strict=True):
        arr[r, slot] = values[top]
    return tuple(out)


def resolve(index: TrieIndex, node: np.ndarray, score: np.ndarray, logprob: np.ndarray, slate_size: int,
            bids: BidTable | None = None, config: BidConfig | None = None) -> Slate:
    """Finished beams -> a slate of ``slate_size`` distinct live ads per request.

    Every ad of every finite-score beam (``node`` (B, k): depth-L trie nodes, -1 dead) is a candidate
    scored ``logprob + log(own bid ** alpha + beta)`` (just ``logprob`` without bids); candidates are
    sorted by that score, ties kept in beam then ad order, and -inf scores (a zero bid with beta = 0)
    are never allocated.
    """
    B = node.shape[0]
    b, j = np.nonzero((node >= 0) & (score > -np.inf))  # request-major, beam order
    n = node[b, j]
    lo = index.start[index.depth][n]
    owner, pos = expand_ranges(lo, index.start[index.depth][n + 1] - lo)  # ads of an SID: in id order
    req, lp = b[owner], logprob[b, j].astype(np.float64)[owner]
    bid = bids.position_bids()[pos] if bids is not None else np.full(len(pos), np.nan)
    cand = lp + config.log_weight(bid) if bids is not None else lp
    finite = cand > -np.inf
    top, slot = top_per_group(req[finite], cand[finite], slate_size, B)
    ads = np.full((B, slate_size), -1, dtype=np.int64)
    out, lp_out, bid_out = (np.full((B, slate_size), v) for v in (-np.inf, -np.inf, np.nan))
    r = req[finite][top]
    for arr, values in zip((ads, out, lp_out, bid_out), (index.ads[pos], cand, lp, bid), strict=True):
        arr[r, slot] = values[finite][top]
    return Slate(ads, out, lp_out, bid_out)


@torch.no_grad()
def beam_search(model: SlateModel, trie: PrefixTrie, tokens: Tensor, positions: Tensor,
                *, beam: int, slate_size: int, bids: BidTable | None = None,
                bid_config: BidConfig | None = None) -> Slate:
    """Batched constrained beam search.

    The history is read once into a KV cache shared by the request's beams (:class:`BeamStepper`);
    each beam carries its trie node, so a level scores only the live children of the beam's node.

    Args:
        tokens, positions: (B, T) left-padded history tokens and item positions (:func:`history_tokens`
            with ``last_pos = max_items - 1``: the generated item sits at position ``max_items``).
        beam: beams kept per request at every level.
        slate_size: ads returned per request (S); ``slate_size = beam`` gives the whole candidate pool.
        bids: live ads' bids (over this ``trie``); None decodes on the model's log-probabilities alone.
        bid_config: alpha, beta and max/mean aggregation of the bid term (default ``BidConfig()``).
    """
    if model.training:  # eval() walks every submodule: ~0.5 ms per serving request when repeated
        model.eval()
    cfg = model.config
    check_width(trie, cfg.codebook_size, bids)
    bid_config = bid_config or BidConfig()
    B, device = tokens.shape[0], tokens.device
    index = trie.index()  # the trie lives on CPU
    stepper = BeamStepper(model, tokens, positions)
    node = np.full((B, 1), 0 if len(index.ads) else -1, dtype=np.int64)  # the root
    logprob = score = np.zeros((B, 1), dtype=np.float32)
    logits = model.level_logits(stepper.last[:, None], 0)  # (B, 1, W)
    for level in range(cfg.levels):
        logp = F.log_softmax(logits.float(), dim=-1).reshape(-1, cfg.codebook_size)  # (B * k, W)
        node, parent, code, logprob, score = extend(index, node, logprob, logp, level, beam, bids, bid_config)
        if level + 1 < cfg.levels:
            stepper.reorder(torch.from_numpy(parent).to(device))
            logits = model.level_logits(stepper.step(torch.from_numpy(code).to(device), level), level + 1)
    return resolve(index, node, score, logprob, slate_size, bids, bid_config)


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
            term = torch.zeros(cfg.codebook_size) if bids is None else bids.log_weight_reference(done, bid_config)[0]
            cands += [((*prefix, c), lp + float(logp[c]) + float(term[c]), lp + float(logp[c]))
                      for c in range(cfg.codebook_size) if ok[c]]
        beams = sorted(cands, key=lambda pc: -pc[1])[:beam]  # stable: ties keep (beam, code) order
    ranked = []  # (score, logprob, ad, bid) of every ad of every finished beam
    for sid, score, lp in beams:
        for ad in trie.ads(sid) if score > -np.inf else []:
            bid = np.nan if bids is None else bids.bid(ad)
            ad_score = lp if bids is None else lp + float(bid_config.log_weight(np.array(bid)))
            ranked += [(ad_score, lp, ad, bid)] if ad_score > -np.inf else []
    ranked = sorted(ranked, key=lambda c: -c[0])[:slate_size]  # stable: ties keep beam, then ad, order
    row = lambda j, fill: np.array([[c[j] for c in ranked] + [fill] * (slate_size - len(ranked))])  # noqa: E731
    return Slate(row(2, -1).astype(np.int64), row(0, -np.inf), row(1, -np.inf), row(3, np.nan))
