"""genads end to end: slate model + token-level bidding -> reward model pCTR -> learned payments.

One generative model proposes the auction's candidates: beam search over Semantic IDs (RQ-KMeans
codes of the ads' content vectors) constrained to the live ads, with every partial SID scored by
``log P(prefix) + log(bid(prefix) ** alpha + beta)`` (:mod:`genads.decode.bidding`; ``bid(prefix)``
is the max — or, EGA's ablation, the mean — bid of the live ads under the prefix). So bids shape
*which* ads are generated, not only how they are ordered afterwards. A quality model gives each
candidate's position-free pCTR (the permutation-aware reward model, or — ``quality="slate"`` —
the slate model's own log-probability calibrated into a CTR on the impression log); the ads are
ranked by bid x pCTR and pay what EGA's payment network charges (``payments="learned"``), or GSP
prices on the same allocation (``payments="gsp"``, EGA's ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from genads.auction.mechanisms import Allocation, gsp
from genads.auction.payment_net import LearnedPayments, PaymentNet
from genads.decode.beam import generate_slate, live_trie
from genads.decode.bidding import BidConfig, BidTable
from genads.market.logs import Impressions, Logs
from genads.reward.model import RewardConfig, SlateRewardModel, slate_inputs
from genads.reward.simulate import ImpressionLog
from genads.reward.train import RewardTrainConfig
from genads.reward.train import fit as fit_reward
from genads.slate.model import N_SPECIAL, PRESETS, SlateConfig, SlateModel, history_tokens, sized_for
from genads.slate.train import TRAIN_PRESETS, TrainConfig, fit
from genads.tokenize.collisions import disambiguate
from genads.tokenize.rq_kmeans import RQKMeansConfig, RQKMeansTokenizer


@dataclass(frozen=True)
class EndToEndConfig:
    candidates: int = 6
    """Ads generated per request (the auction's bidders)."""
    beam: int = 12
    tokenizer: RQKMeansConfig = field(default_factory=lambda: RQKMeansConfig(levels=2, codebook_size=16, n_iter=20))
    slate: SlateConfig = field(default_factory=lambda: replace(PRESETS["small"], max_items=20, dropout=0.1))
    train: TrainConfig = field(default_factory=lambda: replace(TRAIN_PRESETS["small"], epochs=10, eval_every=2, patience=2, eval_users=500))
    bidding: BidConfig = field(default_factory=lambda: BidConfig(alpha=1.0, beta=0.0, aggregate="max"))
    payments: Literal["learned", "gsp"] = "learned"
    quality: Literal["reward", "slate"] = "reward"
    """pCTR of the candidates: the slate reward model, or the slate model's calibrated log-probability."""
    reward_epochs: int = 3
    payment_iterations: int = 1000
    payment_profiles: int = 4000
    """Auctions (from training traffic) the payment network is trained on."""

    def __post_init__(self) -> None:
        if self.candidates < 2 or self.beam < self.candidates:
            raise ValueError(f"need beam={self.beam} >= candidates={self.candidates} >= 2")
        if self.payments not in ("learned", "gsp"):
            raise ValueError(f"payments={self.payments!r} must be 'learned' or 'gsp'")
        if self.quality not in ("reward", "slate"):
            raise ValueError(f"quality={self.quality!r} must be 'reward' or 'slate'")
        if self.payment_iterations < 1 or self.payment_profiles < 1:
            raise ValueError("payment_iterations and payment_profiles must be >= 1")


def make_sids(features: np.ndarray, cfg: RQKMeansConfig, seed: int) -> np.ndarray:
    """(n_ads + 1, levels + 1) unique SIDs of items 1..n_ads (row 0 = padding)."""
    codes = disambiguate(RQKMeansTokenizer(cfg).fit(features, seed=seed))
    return np.concatenate([np.zeros((1, codes.shape[1]), np.int64), codes])


@torch.no_grad()
def sid_logprob(model: SlateModel, sids: np.ndarray, history: np.ndarray, items: np.ndarray,
                batch: int = 2048) -> np.ndarray:
    """(B, C) log P(SID of ``items[b, c]`` | ``history[b]``) under the slate model; -inf where item <= 0."""
    model.eval()
    cfg = model.config
    b, c = items.shape
    hist = np.repeat(np.asarray(history, dtype=np.int64)[:, -cfg.max_items:], c, axis=0)
    flat = np.maximum(items.reshape(-1), 0)
    out = np.empty(len(flat))
    for s in range(0, len(flat), batch):
        tok, pos = history_tokens(hist[s:s + batch], sids, cfg.codebook_size, cfg.max_items - 1)
        code = torch.from_numpy(sids[flat[s:s + batch]])  # (n, L)
        item_tok = N_SPECIAL + torch.arange(cfg.levels) * cfg.codebook_size + code
        seq = torch.cat([tok, item_tok], dim=1)
        pos = torch.cat([pos, torch.full_like(item_tok, cfg.max_items)], dim=1)
        h = model(seq, pos)[:, -cfg.levels - 1:-1]  # states that predict each level of the item
        total = torch.zeros(len(code))
        for lv in range(cfg.levels):
            logp = torch.log_softmax(model.level_logits(h[:, lv], lv).float(), dim=-1)
            total += logp.gather(1, code[:, lv:lv + 1])[:, 0]
        out[s:s + batch] = total.double().numpy()
    return np.where(items.reshape(-1) > 0, out, -np.inf).reshape(b, c)


class SlateScoreCTR(nn.Module):
    """pCTR = sigmoid(a + b * log P(ad | history)): the slate model's score calibrated on the log."""

    def __init__(self, model: SlateModel, sids: np.ndarray) -> None:
        super().__init__()
        self.model, self.sids = model, sids
        self.a = nn.Parameter(torch.tensor(-3.0))
        self.b = nn.Parameter(torch.tensor(0.1))

    def fit(self, imp: Impressions, slot_ctr: np.ndarray, rows: int, seed: int) -> None:
        """Fit (a, b) by the position-based likelihood on up to ``rows`` logged impressions."""
        idx = np.random.default_rng(seed).permutation(len(imp.item))[:rows]
        score = torch.from_numpy(sid_logprob(self.model, self.sids, imp.history[idx], imp.item[idx, None])[:, 0])
        exam = torch.as_tensor(slot_ctr, dtype=torch.float64)[torch.from_numpy(imp.slot[idx])]
        y = torch.from_numpy(imp.click[idx]).double()
        opt = torch.optim.LBFGS([self.a, self.b], max_iter=100, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            p = (exam * torch.sigmoid(self.a.double() + self.b.double() * score)).clamp(1e-9, 1 - 1e-9)
            loss = nn.functional.binary_cross_entropy(p, y)
            loss.backward()
            return loss

        opt.step(closure)

    @torch.no_grad()
    def pctr(self, history: np.ndarray, items: np.ndarray, bids: np.ndarray) -> np.ndarray:
        del bids  # the slate score does not read bids
        score = torch.from_numpy(sid_logprob(self.model, self.sids, history, items))
        return torch.sigmoid(self.a.double() + self.b.double() * score).numpy()


class RewardCTR:
    """Position-free pCTR from the permutation-aware slate reward model (:mod:`genads.reward`).

    Trained on the impression log (each request's ads in their slots, with the user's history as
    context). A candidate's quality is the model's click probability for it at the top ad slot of
    the candidate slate (the others following in generated order), divided by that slot's
    examination. Bids enter the model as a constant: in this market a bid never changes a CTR, and
    a pCTR that read the bid would let a bidder buy quality.
    """

    def __init__(self, sids: np.ndarray, slot_ctr: np.ndarray, max_history: int, seed: int) -> None:
        self.sids, self.slot_ctr, self.max_history = sids, np.asarray(slot_ctr, dtype=float), max_history
        cfg = RewardConfig(levels=sids.shape[1], codebook_size=int(sids.max()) + 1, max_slate=16, d_model=32,
                           n_layer=2, n_head=2, use_history=True)
        torch.manual_seed(seed)
        self.model = SlateRewardModel(cfg)
        self.log: dict = {}

    def fit(self, imp: Impressions, k: int, cfg: RewardTrainConfig, seed: int) -> None:
        """Fit on the log: ``k`` ads per request, rows of ``imp`` grouped by request."""
        n = len(imp.item) // k
        log = ImpressionLog(slates=imp.item.reshape(n, k), clicks=imp.click.reshape(n, k), conversions=None,
                            rows=np.arange(n))
        history = imp.history[::k]
        ones = np.ones(len(self.sids))
        self.log = fit_reward(self.model, log, self.sids, ones, cfg, seed=seed, history=history)

    @torch.no_grad()
    def pctr(self, history: np.ndarray, items: np.ndarray, bids: np.ndarray) -> np.ndarray:
        del bids  # constant bid input (see the class docstring)
        b, n = items.shape
        order = (np.arange(n)[:, None] + np.arange(n)[None]) % n  # rotation c puts candidate c on top
        slates = items[:, order].reshape(b * n, n)  # (B*n, n)
        s, bid, valid = slate_inputs(slates, self.sids, np.ones(len(self.sids)))
        hist = np.repeat(np.asarray(history, dtype=np.int64)[:, -self.max_history:], n, axis=0)
        hs = torch.as_tensor(self.sids[np.maximum(hist, 0)])
        p = self.model.predict(s, bid, valid, hs, torch.as_tensor(hist > 0))[:, 0, 0].double().numpy()
        return np.clip(p.reshape(b, n) / self.slot_ctr[0], 1e-9, 1.0)


class EndToEnd:
    """The generative pipeline over trained parts; :meth:`propose` gives the auction's candidates."""

    name = "end-to-end"

    def __init__(self, model: SlateModel, sids: np.ndarray, quality, payment_net: PaymentNet | None,
                 cfg: EndToEndConfig, slot_ctr: np.ndarray) -> None:
        self.model, self.sids, self.quality, self.net, self.cfg = model, sids, quality, payment_net, cfg
        self.slot_ctr = np.asarray(slot_ctr, dtype=float)
        self._trie_key: bytes | None = None
        self._trie = None

    def with_config(self, quality=None, **changes) -> EndToEnd:
        """The same trained parts under other decoding, payment or pCTR settings (the ablations)."""
        return EndToEnd(self.model, self.sids, quality or self.quality, self.net, replace(self.cfg, **changes),
                        self.slot_ctr)

    def _live_trie(self, live: np.ndarray):
        key = np.packbits(live).tobytes()
        if key != self._trie_key:
            self._trie, self._trie_key = live_trie(self.sids, np.flatnonzero(live) + 1), key
        return self._trie

    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ads (B, n) with -1 where fewer are live, pCTR (B, n)) — see :meth:`Cascade.propose`."""
        n = self.cfg.candidates
        if not live.any():
            return np.full((len(history), n), -1), np.full((len(history), n), 1e-9)
        ads = self.generate(history, live, bids)
        items = np.where(ads >= 0, ads + 1, -1)
        quality = self.quality.pctr(history, np.where(items > 0, items, 0), np.where(ads >= 0, bids[ads], 0.0))
        return ads, np.where(ads >= 0, np.maximum(quality, 1e-9), 1e-9)

    def generate(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> np.ndarray:
        """(B, candidates) ads the slate model generates (beam search over live SIDs, bids in the score
        unless ``bidding.alpha = 0``); -1 past the last live ad."""
        trie = self._live_trie(live)
        table = BidTable(trie, {int(a) + 1: float(bids[a]) for a in np.flatnonzero(live)})
        slate = generate_slate(self.model, trie, self.sids, history, beam=self.cfg.beam, slate_size=self.cfg.candidates,
                               bids=table if self.cfg.bidding.alpha > 0 else None, bid_config=self.cfg.bidding)
        return np.where(slate.ads > 0, slate.ads - 1, -1)

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation:
        k = len(self.slot_ctr)
        if self.cfg.payments == "learned":
            return LearnedPayments(self.net)(bids, quality, k, slot_ctr=self.slot_ctr)
        return gsp(bids, quality, k, slot_ctr=self.slot_ctr)


def train_slate(logs: Logs, features: np.ndarray, cfg: EndToEndConfig, seed: int) -> tuple[SlateModel, np.ndarray, list]:
    """SIDs from the ads' content vectors, then the slate model on the click histories."""
    sids = make_sids(features, cfg.tokenizer, seed)
    torch.manual_seed(seed)
    model = SlateModel(sized_for(cfg.slate, sids))
    log = fit(model, sids, logs.split(), cfg.train, seed=seed, progress=False)
    return model, sids, log
