"""The ad engine: live ads from the ledger, constrained bid-aware decoding, the auction, slot tokens.

The decoder follows the bundle's family: "sid" bundles decode by trie-constrained, bid-aware beam
search; "parallel" bundles score every live ad exactly (:class:`genads.parallel.scoring.LiveAds`), with
the bid term ``log(bid ** alpha + beta)`` added per ad, and take the best ``C``.

One request: the user's history -> trie-constrained beam search over the ads whose campaigns are
active with budget left (with token-level bids when :mod:`genads.decode.bidding` is present) ->
``C`` candidate ads -> pCTR of each (the bundle's prior, or the slate reward model on the
candidate slate) -> auction by bid x pCTR: the learned payment network when it was trained for
this many candidates and slots, GSP otherwise (or always, with ``mechanism="gsp"``) -> prices
capped at the bid -> a signed token per slot, which a later click event is charged by.

The live set follows the ledger: :meth:`AdEngine.refresh` compares the ledger's change counter
(at most every ``refresh_s`` seconds, at once after a local change) and updates the trie in place
by the difference, under the lock that decoding holds. Refreshes are serialised and only ever
move forward (a refresh that read an older counter never replaces a newer live set), so once a
pause or an exhausted budget was applied no later request is built from the old set.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from genads.auction.mechanisms import gsp
from genads.auction.payment_net import LearnedPayments
from genads.decode.candidates import Candidates
from genads.families import family
from genads.parallel.preselect import PreselectConfig
from genads.serve.bundle import Bundle
from genads.serve.ids import new_id
from genads.serve.ledger import MICROS, Campaign, SQLLedger
from genads.serve.tokens import SlotToken, TokenSecrets

MECHANISMS = ("learned", "gsp")


@dataclass(frozen=True)
class ServeConfig:
    mechanism: str = "learned"
    """"learned": the payment network where it fits the auction (else GSP); "gsp": GSP always."""
    max_slots: int = 20
    min_candidates: int = 5
    """Candidate ads decoded per request: max(min_candidates, slots + extra_candidates)."""
    extra_candidates: int = 2
    refresh_s: float = 1.0
    """How often (seconds) to check the ledger for campaign changes made by other servers."""
    token_ttl_s: float = 86400.0
    """How long a slot token can be charged."""
    bid_alpha: float = 1.0
    """Token-level bidding: beam scores add log(bid ** bid_alpha + bid_beta); 0 turns bids off."""
    bid_beta: float = 0.0
    beam: int = 0
    """Beam width of decoding (at least the candidates needed); 0 = the bundle's."""
    preselect_min_ads: int = 200_000
    """Parallel family: with at least this many live ads at start, an IVF index pre-selects candidates that exact
    scoring then ranks (:mod:`genads.parallel.preselect`); 0 = never."""
    preselect_nprobe: int = 32
    preselect_shortlist: int = 200
    min_pause_s: float = 60.0
    """A paused campaign can be resumed only this long after its pause (clicks on a paused campaign are free:
    flapping pause around them would dodge their charges)."""

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism={self.mechanism!r} must be one of {MECHANISMS}")
        for name in ("max_slots", "min_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.extra_candidates < 0 or self.refresh_s < 0 or self.token_ttl_s <= 0:
            raise ValueError("need extra_candidates >= 0, refresh_s >= 0 and token_ttl_s > 0")
        if self.beam < 0:
            raise ValueError(f"beam={self.beam} must be >= 0 (0 = the bundle's)")
        if self.preselect_min_ads < 0 or self.preselect_nprobe < 1 or self.preselect_shortlist < 1:
            raise ValueError("need preselect_min_ads >= 0 and preselect_nprobe, preselect_shortlist >= 1")
        if self.min_pause_s < 0:
            raise ValueError(f"min_pause_s={self.min_pause_s} must be >= 0")
        if self.bid_alpha < 0 or self.bid_beta < 0:
            raise ValueError(f"bid_alpha={self.bid_alpha} and bid_beta={self.bid_beta} must be >= 0")


@dataclass(frozen=True)
class Placement:
    ad_id: int
    position: int
    campaign_id: int
    bid: float
    price: float
    """Per click; <= bid."""
    pctr: float
    title: str
    token: str


@dataclass(frozen=True)
class AdRequest:
    """One request for :meth:`AdEngine.serve_batch` (the arguments of :meth:`AdEngine.serve`)."""

    history: np.ndarray
    slots: int
    exclude: frozenset[int] = frozenset()
    campaign_room: dict[int, int] | None = None
    user: str = ""


@dataclass(frozen=True)
class AdResult:
    request_id: str
    mechanism: str
    placements: list[Placement]


def seed_campaigns(ledger: SQLLedger, bundle: Bundle) -> int:
    """One active campaign per advertiser of the bundle that has no campaign in the ledger yet (its ads, median bid,
    its budget): every advertiser on a fresh ledger, and after a redeploy that kept the state
    (``genads export --keep-state``) the advertisers new in the catalogue; the others' campaigns are theirs."""
    known = {c.advertiser_id for c in ledger.campaigns()}
    rows = []
    for adv, group in bundle.ads.groupby("advertiser_id", sort=True):
        if int(adv) in known:
            continue
        rows.append((int(adv), f"advertiser {adv}", group["ad_id"].astype(int).tolist(),
                     float(group["bid"].median()), float(group["budget"].iloc[0])))
    if rows:
        ledger.create_campaigns(rows)
    return len(rows)


class AdEngine:
    def __init__(self, bundle: Bundle, ledger: SQLLedger, config: ServeConfig | None = None,
                 secrets: TokenSecrets | None = None) -> None:
        self.bundle, self.ledger, self.config = bundle, ledger, config or ServeConfig()
        ads = bundle.ads
        self.item_of = dict(zip(ads["ad_id"].astype(int).tolist(), ads["item"].astype(int).tolist(), strict=True))
        n = len(bundle.codes)
        self.ad_of = np.full(n, -1, dtype=np.int64)
        self.ad_of[ads["item"].to_numpy()] = ads["ad_id"].to_numpy()
        self.pctr = np.full(n, 1e-3)
        self.pctr[ads["item"].to_numpy()] = np.clip(ads["pctr"].to_numpy(dtype=float), 1e-6, 1.0)
        self.titles = dict(zip(ads["ad_id"].astype(int).tolist(), ads["creative_title"].astype(str).tolist(), strict=True))
        self.advertiser_of = dict(zip(ads["ad_id"].astype(int).tolist(), ads["advertiser_id"].astype(int).tolist(),
                                      strict=True))
        cfg = self.config
        self.candidates: Candidates = family(bundle.family).candidates(
            bundle.model, bundle.codes, beam=cfg.beam or bundle.beam, bid_alpha=cfg.bid_alpha, bid_beta=cfg.bid_beta,
            preselect=PreselectConfig(nprobe=cfg.preselect_nprobe, shortlist=cfg.preselect_shortlist),
            preselect_min_ads=cfg.preselect_min_ads)
        """The live ads the generator decodes from: a trie + bid table (beam search) or codes scored exactly."""
        self.live: dict[int, tuple[int, int]] = {}
        """item -> (campaign_id, bid_micros) of the best-bidding serving campaign holding it."""
        self.secrets = secrets or TokenSecrets.generate()
        """Signs slot tokens (a fresh in-memory secret unless given: the server passes state/token.secret)."""
        self.lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._version, self._checked = -1, 0.0
        self.payments = LearnedPayments(bundle.payment_net) if bundle.payment_net is not None else None
        self.refresh(force=True)
        with self.lock:
            self.candidates.prepare()  # e.g. the IVF index of a large catalogue, over the first live set

    # --- live ads -----------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Re-read the campaigns if the ledger changed; True when the live set was rebuilt."""
        if not force and time.monotonic() - self._checked < self.config.refresh_s:
            return False
        with self._refresh_lock:  # one refresh at a time: an older read never lands after a newer one
            self._checked = time.monotonic()
            version = self.ledger.version()  # read before the campaigns: they are at least this new
            if version <= self._version:
                return False
            self._apply(self.ledger.campaigns())
            self._version = version
            return True

    def mark_stale(self) -> None:
        """A local change: re-read the ledger before the next request."""
        self._checked = 0.0

    def _apply(self, campaigns: list[Campaign]) -> None:
        live: dict[int, tuple[int, int]] = {}
        for c in campaigns:
            if not c.serving:
                continue
            for ad in c.ad_ids:
                item = self.item_of.get(ad)
                if item is not None and (item not in live or c.bid_micros > live[item][1]):
                    live[item] = (c.campaign_id, c.bid_micros)
        with self.lock:  # only what changed: a campaign edit must not stall decoding on 100k ads
            self.candidates.apply(set(self.live) - set(live), {item: bid / MICROS for item, (_, bid) in live.items()
                                                               if item not in self.live or self.live[item][1] != bid})
            self.live = live

    # --- requests -----------------------------------------------------------------------------
    def ad_index(self, ad: int | str) -> int | None:
        """The service's integer ad_id of an ad named by the dataset's id (or by that ad_id); None if unknown."""
        if isinstance(ad, int) and ad in self.item_of:
            return ad
        idx = self.bundle.vocab.index_of("ad", ad) if self.bundle.vocab is not None else (
            ad if isinstance(ad, int) else None)
        return idx if idx is not None and idx in self.item_of else None

    def ad_label(self, ad_id: int) -> int | str:
        """The dataset's own id of a service ad_id."""
        return self.bundle.vocab.label("ad", ad_id) if self.bundle.vocab is not None else int(ad_id)

    def advertiser_label(self, advertiser_id: int) -> int | str:
        """The dataset's own id of an advertiser (``shop-3``), or the integer itself."""
        try:
            return self.bundle.vocab.label("advertiser", advertiser_id) if self.bundle.vocab is not None else advertiser_id
        except KeyError:  # an index no dataset id stands for (an integer advertiser added by the admin)
            return int(advertiser_id)

    def advertiser_index(self, advertiser: int | str) -> int | None:
        """The service's integer advertiser_id of an advertiser named by the dataset's id (or by that integer);
        None for a string the dataset does not hold."""
        if isinstance(advertiser, int):
            return advertiser
        return self.bundle.vocab.index_of("advertiser", advertiser) if self.bundle.vocab is not None else None

    def history_items(self, ads: list[int | str]) -> tuple[np.ndarray, int | None]:
        """Item indices of a history given as ads; also the position of the first unknown ad (or None)."""
        items = []
        for i, ad in enumerate(ads):
            idx = self.ad_index(ad)
            if idx is None:
                return np.zeros(0, np.int64), i
            items.append(self.item_of[idx])
        return np.asarray(items, dtype=np.int64), None

    def user_history(self, user_id: int | str) -> np.ndarray:
        """The bundle's history of a known user (the dataset's id, integer or string); empty (cold start) otherwise."""
        user = self.bundle.vocab.index_of("user", user_id) if self.bundle.vocab is not None else user_id
        h = None if user is None else (self.bundle.histories or {}).get(int(user))
        return np.zeros(0, np.int64) if h is None else h[h > 0]

    def serve(self, history: np.ndarray, slots: int, exclude: set[int] = frozenset(),
              campaign_room: dict[int, int] | None = None, user: str = "") -> AdResult:
        """Fill up to ``slots`` positions for one request (history: item indices, oldest first).

        ``exclude``: ad ids not to show; ``campaign_room``: campaign_id -> how many more of its ads may be shown
        (a user's frequency caps; a campaign not named is not limited); ``user``: the user's hash
        (:func:`genads.serve.tokens.user_hash`) signed into each slot token."""
        return self.serve_batch([AdRequest(history, slots, frozenset(exclude), campaign_room, user)])[0]

    def serve_batch(self, requests: list[AdRequest]) -> list[AdResult]:
        """:meth:`serve` for several requests at once: one batched decode (a forward over all histories, then the
        exact scores or the beam per row), then each request's exclusions, caps, auction and tokens. Every request
        gets what it would get alone (the same candidates, allocation and prices)."""
        if not requests:
            return []
        self.refresh()
        m = self.bundle.model.config.max_items
        hist = np.zeros((len(requests), m), dtype=np.int64)
        for row, req in enumerate(requests):
            tail = np.asarray(req.history, dtype=np.int64)[-m:]
            if len(tail):
                hist[row, m - len(tail):] = tail
        with self.lock:
            live = self.live  # never mutated: _apply swaps in a new dict
            n_cand = [min(max(self.config.min_candidates, r.slots + self.config.extra_candidates) + len(r.exclude),
                          len(live)) for r in requests]
            ads, logprob = self.candidates.top(hist, n_cand)
        lots = []
        for row, req in enumerate(requests):
            if n_cand[row] == 0:
                lots.append(_Lot(new_id(), [], req.slots, req.user))
                continue
            cand = ads[row, :n_cand[row]].tolist()
            keep = [j for j, i in enumerate(cand) if i > 0 and int(self.ad_of[i]) not in req.exclude]
            if req.campaign_room:  # as many candidates of a campaign as it has room: any allocation respects the caps
                keep = _within_room(keep, [live[int(i)][0] if i > 0 else None for i in cand], req.campaign_room)
            keep = keep[:max(self.config.min_candidates, req.slots + self.config.extra_candidates)]
            items = [int(cand[j]) for j in keep]
            lots.append(_Lot(new_id(), items, req.slots, req.user, hist[row:row + 1],
                             np.asarray(logprob[row], dtype=np.float64)[keep]))
        return self._auctions(lots, live)

    def _quality(self, items: list[int], bids: np.ndarray, hist: np.ndarray, logprob: np.ndarray) -> np.ndarray:
        """pCTR of each candidate: the reward model on the candidate slate if there is one, else the prior."""
        reward = self.bundle.reward
        if reward is None or len(items) > reward.config.max_slate or not self.candidates.reads_reward_model:
            return self.pctr[items]
        from genads.reward.model import slate_inputs  # present whenever a reward model was loaded

        bid_of = np.zeros(len(self.bundle.codes), dtype=np.float32)
        bid_of[items] = bids
        sids, b, valid = slate_inputs(np.asarray([items]), self.bundle.codes, bid_of)
        kwargs = {}
        if reward.config.use_history:
            h = hist[:, hist[0] > 0]
            kwargs = {"history": torch.as_tensor(self.bundle.codes[h]), "history_valid": torch.ones(h.shape, dtype=torch.bool)}
        if reward.config.use_score:  # the slate model's log P(SID | history) of each candidate
            kwargs["scores"] = torch.as_tensor(logprob, dtype=torch.float32)[None]
        p = reward.predict(sids, b, valid, **kwargs)[0, :, 0].double().numpy()
        return np.clip(p, 1e-6, 1.0)

    def _auctions(self, lots: list[_Lot], live: dict) -> list[AdResult]:
        """Each lot's auction by bid x pCTR; lots with as many candidates and slots under the same mechanism are
        run as one batch of rows (the mechanisms treat rows independently: each gets what it would alone)."""
        groups: dict[tuple[int, int, bool], list[int]] = {}
        for i, lot in enumerate(lots):
            if lot.items:
                lot.bids = np.array([live[it][1] / MICROS for it in lot.items])
                lot.quality = self._quality(lot.items, lot.bids, lot.hist, lot.logprob)
                k = min(lot.slots, len(lot.items))
                net = self.bundle.payment_net
                fits = net is not None and net.config.n_bidders == len(lot.items) and len(net.config.slot_ctr) == k
                groups.setdefault((len(lot.items), k, self.config.mechanism == "learned" and fits), []).append(i)
        allocs: dict[int, tuple[list[int], list[float], str]] = {}
        for (_, k, use_learned), rows in groups.items():
            alloc = (self.payments if use_learned else gsp)(np.stack([lots[i].bids for i in rows]),
                                                            np.stack([lots[i].quality for i in rows]), k)
            for r, i in enumerate(rows):
                allocs[i] = (alloc.winners[r].tolist(), alloc.prices[r].tolist(), "learned" if use_learned else "gsp")
        now = time.time()
        return [self._placements(lot, allocs[i], live, now) if i in allocs else AdResult(lot.request_id, "none", [])
                for i, lot in enumerate(lots)]

    def _placements(self, lot: _Lot, alloc: tuple[list[int], list[float], str], live: dict, now: float) -> AdResult:
        """The lot's winners in slot order, priced (never above the bid) with a signed token each."""
        winners, prices, mechanism = alloc
        out = []
        for pos, (w, price) in enumerate(zip(winners, prices, strict=True)):
            if w < 0:
                continue
            item = lot.items[w]
            campaign_id, bid_micros = live[item]
            price_micros = max(min(round(price * MICROS), bid_micros), 0)  # never above the bid
            ad_id = int(self.ad_of[item])
            token = self.secrets.sign(SlotToken(lot.request_id, ad_id, campaign_id, price_micros, bid_micros, now,
                                                lot.user))
            out.append(Placement(ad_id, pos + 1, campaign_id, bid_micros / MICROS, price_micros / MICROS,
                                 float(lot.quality[w]), self.titles.get(ad_id, ""), token))
        return AdResult(lot.request_id, mechanism, out)


@dataclass
class _Lot:
    """One request's auction: its candidates (items, best first) and, once looked up, their bids and pCTRs."""

    request_id: str
    items: list[int]
    slots: int
    user: str
    hist: np.ndarray | None = None
    logprob: np.ndarray | None = None
    bids: np.ndarray | None = None
    quality: np.ndarray | None = None


def _within_room(keep: list[int], campaign_of: list[int | None], room: dict[int, int]) -> list[int]:
    """The candidates ``keep`` (indices into ``campaign_of``) in order, at most ``room[c]`` of campaign ``c``."""
    left, out = dict(room), []
    for j in keep:
        c = campaign_of[j]
        if c not in left:
            out.append(j)
        elif left[c] > 0:
            left[c] -= 1
            out.append(j)
    return out
