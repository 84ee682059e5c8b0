"""genads end to end on the parallel-code generator: exact value-aware generation over every live ad.

The SID pipeline (:mod:`genads.market.e2e`) generates candidates by beam search and asks a separate
reward model for their pCTR. This one uses the parallel-code generator (:mod:`genads.parallel`):

1. The generator reads the user's click history once; its state ``h`` gives the exact
   log-probability ``log P(ad | history)`` of every live ad (a sum of one log-probability per code,
   no beam, nothing pruned) and, through the value head (:mod:`genads.market.value`), a calibrated
   position-free pCTR of every live ad.
2. The candidates are the live ads of highest generation score

       score = relevance_weight * log P(ad | history) + log pCTR(ad) + alpha * log bid(ad)

   (``alpha * log bid + log pCTR`` is the log eCPM: value inside generation, for the whole live
   catalogue, where a cascade first keeps ``retrieve`` ads by relevance alone).
3. The auction ranks the candidates by bid x pCTR and charges the learned payment network's prices
   (EGA) or GSP's (``payments="gsp"``).

The value head reads the generator's state joined by the mean content vector of the history (the
cascade's DIN reads the same content vectors). The state and log-probabilities are computed once per
history batch and cached (the market's
histories are fixed during an episode), so serving an episode costs one bilinear product per batch.
List-wise RL (:mod:`genads.market.rl`) fine-tunes a copy of the value head that only shapes
generation (``policy_head``), so the auction keeps the calibrated pCTR.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from genads.auction.mechanisms import Allocation, gsp
from genads.auction.payment_net import LearnedPayments, PaymentNet
from genads.market.logs import Logs
from genads.market.value import ValueConfig, ValueHead, fit_value_head
from genads.parallel.joint_value import JointConfig, fit_joint
from genads.parallel.model import ParallelConfig, ParallelModel, item_logprobs
from genads.parallel.recommender import PRESETS, sized_config
from genads.parallel.train import ParallelTrainConfig, fit
from genads.tokenize.pq import PQCodebook, PQConfig


@dataclass(frozen=True)
class ParallelE2EConfig:
    candidates: int = 6
    """Ads generated per request (the auction's bidders)."""
    codes: PQConfig = field(default_factory=lambda: PQConfig(n_codes=8, nbits=4, dim=16))
    model: ParallelConfig = field(default_factory=lambda: replace(PRESETS["small"][0], n_items=1, max_items=30))
    train: ParallelTrainConfig = field(default_factory=lambda: replace(
        PRESETS["small"][1], epochs=20, patience=3, n_negatives=256, batch_size=128))
    value: ValueConfig = field(default_factory=ValueConfig)
    joint: JointConfig = field(default_factory=JointConfig)
    """The jointly trained variant (:func:`build_joint`): trunk and value head on next-ad + click likelihood."""
    relevance_weight: float = 0.0
    """Weight of the generator's log P(ad | history) in the generation score (0: pure log eCPM)."""
    alpha: float = 1.0
    """Exponent of the bid in the generation score (0: bids do not shape which ads are generated)."""
    payments: Literal["learned", "gsp"] = "learned"
    lcb_z: float = 0.0
    """Generate on a lower confidence bound: the policy head's pCTR logit minus ``lcb_z`` posterior sds of the ad's
    bias (:func:`genads.market.value.shrunk_head`); the auction still ranks and prices with the point pCTR."""
    reserve: float = 0.0
    """GSP's per-click reserve price (``payments="gsp"``)."""
    gate: int = 0
    """Generate among the ``gate`` live ads of highest ``log P(ad | history) + gate_alpha * log bid`` only (the
    generator's own relevance as a candidate gate, as a cascade's retrieval; 0: every live ad)."""
    gate_alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.candidates < 2:
            raise ValueError(f"candidates={self.candidates} must be >= 2")
        if self.payments not in ("learned", "gsp"):
            raise ValueError(f"payments={self.payments!r} must be 'learned' or 'gsp'")
        if self.gate < 0 or self.gate_alpha < 0:
            raise ValueError(f"gate={self.gate} and gate_alpha={self.gate_alpha} must be >= 0")
        if self.relevance_weight < 0 or self.alpha < 0 or self.lcb_z < 0 or self.reserve < 0:
            raise ValueError(f"relevance_weight={self.relevance_weight}, alpha={self.alpha}, lcb_z={self.lcb_z} and "
                             f"reserve={self.reserve} must be >= 0")


class ParallelEndToEnd:
    """The parallel generator + value head + payments behind the market's pipeline protocol."""

    name = "end-to-end-parallel"

    def __init__(self, model: ParallelModel, item_codes: np.ndarray, head: ValueHead, cfg: ParallelE2EConfig,
                 slot_ctr: np.ndarray, net: PaymentNet | None = None, policy_head: ValueHead | None = None,
                 content: np.ndarray | None = None) -> None:
        self.model, self.head, self.cfg, self.net = model, head, cfg, net
        self.policy_head = policy_head if policy_head is not None else head
        self.item_codes = torch.as_tensor(item_codes, dtype=torch.long)
        self.content = None if content is None else torch.cat([
            torch.zeros(1, content.shape[1]), torch.as_tensor(np.asarray(content, dtype=np.float32))])
        """(n_items + 1, c) content vectors by item index: their mean over the history joins the user state."""
        self.slot_ctr = np.asarray(slot_ctr, dtype=float)
        self._cache: dict[bytes, tuple[Tensor, Tensor]] = {}

    def with_config(self, head: ValueHead | None = None, policy_head: ValueHead | None = None,
                    **changes) -> ParallelEndToEnd:
        """The same trained parts under other generation or payment settings (the ablations). A new ``head``
        without a ``policy_head`` generates with that head too."""
        policy = policy_head if policy_head is not None else (head if head is not None else self.policy_head)
        out = ParallelEndToEnd(self.model, self.item_codes.numpy(), head or self.head, replace(self.cfg, **changes),
                               self.slot_ctr, self.net, policy)
        out.content = self.content
        return out

    @torch.no_grad()
    def states(self, history: np.ndarray) -> Tensor:
        """(B, D) the generator's state after each left-padded history (B, L)."""
        self.model.eval()
        hist = np.ascontiguousarray(np.asarray(history, dtype=np.int64)[:, -self.model.config.max_items:])
        width = max(1, int((hist > 0).sum(1).max())) if hist.size else 1
        hist = torch.from_numpy(hist[:, -width:])
        return self.model(hist, self.item_codes[hist])[:, -1]

    def relevance(self, h: Tensor) -> Tensor:
        """(B, n_ads) exact log P(ad | history) of ads 0..n_ads-1 (item index = ad + 1), the ID term included for a
        generator that has one (:func:`genads.parallel.model.item_logprobs`); differentiable in the generator's
        heads."""
        return item_logprobs(self.model, h, self.item_codes, self.cfg.train.item_temperature)

    @torch.no_grad()
    def user_state(self, history: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """(user state (B, D [+ c]), relevance (B, n_ads), history (B, L) item indices) of left-padded histories:
        the generator's state, joined by the mean content vector of the history's items when the pipeline has
        content vectors."""
        key = np.ascontiguousarray(history).tobytes()
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            h = self.states(history)
            logp = self.relevance(h)
            if self.content is not None:
                hist = torch.as_tensor(np.asarray(history, dtype=np.int64))
                real = (hist > 0).float()
                pooled = (self.content[hist] * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1.0)
                h = torch.cat([h, pooled], dim=1)
            self._cache[key] = (h, logp, torch.as_tensor(np.asarray(history, dtype=np.int64)))
        return self._cache[key]

    def policy_scores(self, h: Tensor, logp: Tensor, bids: np.ndarray,
                      history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(generation score (B, n_ads), pCTR logit (B, n_ads)) for states ``h`` and relevance ``logp``.

        The score reads the policy head (the value head, or its RL-fine-tuned copy); the pCTR the auction ranks
        and prices with always comes from the supervised, calibrated value head.
        """
        items = torch.arange(1, len(self.item_codes))
        logit = self.head.logits(h, logp, items, history)
        gen_logit = logit if self.policy_head is self.head else self.policy_head.logits(h, logp, items, history)
        if self.cfg.lcb_z > 0:
            gen_logit = gen_logit - self.cfg.lcb_z * self.policy_head.bias_sd[items][None]
        log_bid = torch.log(torch.as_tensor(np.maximum(bids, 1e-12), dtype=logit.dtype))
        score = self.cfg.relevance_weight * logp + torch.nn.functional.logsigmoid(gen_logit) + self.cfg.alpha * log_bid
        return score, logit

    @torch.no_grad()
    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ads (B, n) with -1 where fewer are live, pCTR (B, n)) — see :meth:`Cascade.propose`."""
        n, b = self.cfg.candidates, len(history)
        ok = np.asarray(live, dtype=bool) & (np.asarray(bids) > 0)
        if not ok.any():
            return np.full((b, n), -1), np.full((b, n), 1e-9)
        h, logp, hist = self.user_state(history)
        score, logit = self.policy_scores(h, logp, bids, hist)
        score = score.double().masked_fill(torch.from_numpy(~ok)[None], -np.inf)
        if 0 < self.cfg.gate < int(ok.sum()):
            rel = logp.double() + self.cfg.gate_alpha * torch.log(torch.as_tensor(np.maximum(bids, 1e-12),
                                                                                  dtype=torch.float64))
            keep = torch.topk(rel.masked_fill(torch.from_numpy(~ok)[None], -np.inf), self.cfg.gate, dim=1).indices
            score = torch.full_like(score, -np.inf).scatter_(1, keep, score.gather(1, keep))
        take = min(n, int(ok.sum()))
        top = torch.topk(score, take, dim=1).indices
        ads = np.full((b, n), -1, dtype=np.int64)
        ads[:, :take] = top.numpy()
        pctr = np.full((b, n), 1e-9)
        pctr[:, :take] = torch.sigmoid(logit.double().gather(1, top)).numpy()
        return ads, np.maximum(pctr, 1e-9)

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation:
        k = len(self.slot_ctr)
        if self.cfg.payments == "learned":
            if self.net is None:
                raise RuntimeError("payments='learned' needs a trained payment network (ParallelEndToEnd.net)")
            return LearnedPayments(self.net)(bids, quality, k, slot_ctr=self.slot_ctr)
        return gsp(bids, quality, k, slot_ctr=self.slot_ctr, reserve=self.cfg.reserve)


def train_generator(logs: Logs, features: np.ndarray, cfg: ParallelE2EConfig, seed: int,
                    ) -> tuple[ParallelModel, np.ndarray, list[dict]]:
    """PQ codes of the ads' content vectors, then the parallel generator on the click histories."""
    book = PQCodebook.fit(features, replace(cfg.codes, seed=seed))
    codes = np.concatenate([np.zeros((1, book.config.n_codes), np.int64), book.encode(features)])
    torch.manual_seed(seed)
    model = ParallelModel(sized_config(cfg.model, codes, len(codes) - 1))
    log = fit(model, codes, logs.split(), cfg.train, seed=seed, progress=False)
    return model, codes, log


def item_features(model: ParallelModel, codes: np.ndarray, content: np.ndarray | None = None) -> Tensor:
    """(n_items + 1, f): each item's code embeddings, its ID embedding (when the generator has one) and its
    content vector (``content`` (n_items, c), the vectors the codes were made from; the cascade's ranker reads
    the same vectors)."""
    with torch.no_grad():
        parts = [model.item_vectors(torch.as_tensor(codes, dtype=torch.long))]
        if model.item is not None:
            parts.append(model.item.weight[: len(codes)])
        if content is not None:
            c = torch.as_tensor(np.asarray(content, dtype=np.float32))
            parts.append(torch.cat([c.new_zeros(1, c.shape[1]), c]))
    return torch.cat(parts, dim=1)


def train_value_head(pipe_model: ParallelModel, codes: np.ndarray, logs: Logs, slot_ctr: np.ndarray, k: int,
                     cfg: ValueConfig, seed: int, content: np.ndarray | None = None,
                     e2e: ParallelE2EConfig | None = None) -> tuple[ValueHead, dict]:
    """The value head on the impression log (``k`` ads per request, rows grouped by request in time order);
    ``e2e`` the pipeline's config (its relevance reads the generator's item temperature)."""
    torch.manual_seed(seed)
    probe = ParallelEndToEnd(pipe_model, codes, None, e2e or ParallelE2EConfig(), slot_ctr,  # type: ignore[arg-type]
                             content=content)
    imp = logs.impressions
    per_req = imp.history[::k]
    hs, rel = [], []
    for s in range(0, len(per_req), 1024):
        h, logp, _ = probe.user_state(per_req[s:s + 1024])
        hs.append(h)
        rel.append(logp)
    h_req, logp_req = torch.cat(hs), torch.cat(rel)  # (R, D), (R, n_ads)
    request = np.repeat(np.arange(len(per_req)), k)
    items = torch.from_numpy(imp.item)
    row_logp = logp_req[torch.from_numpy(request), items - 1]
    head = ValueHead(h_req.shape[1], item_features(pipe_model, codes, content), cfg)
    info = fit_value_head(head, h_req[torch.from_numpy(request)], row_logp, items, imp.slot, imp.click, request,
                          slot_ctr, cfg, seed, history=torch.as_tensor(imp.history))
    return head, info


def build_parallel_e2e(world, logs: Logs, cfg: ParallelE2EConfig, seed: int) -> tuple[ParallelEndToEnd, dict]:
    """Generator and value head from the logs (the payment network is trained by the caller, on its profiles)."""
    model, codes, gen_log = train_generator(logs, world.ad_features, cfg, seed)
    head, value_info = train_value_head(model, codes, logs, world.slot_ctr, world.config.ad_load, cfg.value, seed,
                                        world.ad_features, cfg)
    pipe = ParallelEndToEnd(model, codes, head, cfg, world.slot_ctr, content=world.ad_features)
    info = {"generator_epochs": len(gen_log),
            "generator_valid_ndcg@10": max((r.get("valid_ndcg@10", 0.0) for r in gen_log), default=0.0),
            "codes": f"{codes.shape[1]} x {int(codes.max()) + 1}", "value_head": value_info}
    return pipe, info


def build_joint(pipe: ParallelEndToEnd, world, logs: Logs, cfg: ParallelE2EConfig, seed: int,
                ) -> tuple[ParallelEndToEnd, dict]:
    """The pipeline whose generator trunk and value head are trained jointly (the market verdict's fix (b);
    :mod:`genads.parallel.joint_value`), starting from ``pipe``'s separately trained generator and head, on the same
    logs and the same held-out requests (``cfg.value.holdout``)."""
    imp = logs.impressions
    model, head, info = fit_joint(pipe.model, pipe.head, pipe.item_codes.numpy(), logs.split(), imp.history,
                                  imp.item, imp.slot, imp.click, world.config.ad_load, world.slot_ctr,
                                  cfg.value.holdout, cfg.joint, cfg.train, seed, world.ad_features)
    out = ParallelEndToEnd(model, pipe.item_codes.numpy(), head, pipe.cfg, pipe.slot_ctr, pipe.net,
                           content=world.ad_features)
    return out, info
