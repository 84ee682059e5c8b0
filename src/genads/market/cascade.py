"""The cascade baseline: retrieve (SASRec) -> rank (DIN pCTR) -> auction (GSP).

Retrieval keeps the ``retrieve`` live ads SASRec scores highest for the user's click history — by
relevance alone, blind to bids, which is where a cascade can drop a high-value candidate before
the auction sees it — or, with ``bid_alpha > 0`` (the market verdict's bid-aware cascade), by
``SASRec logit + bid_alpha * log bid``: raising an ad's bid can only move it up the retrieval order. The ranker predicts each retrieved ad's CTR; the auction takes the
``candidates`` ads of highest eCPM = bid x pCTR (GSP's outcome on the top ``ad_load + 1`` eCPMs
is the same as on all of them) and ranks and prices them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from genads.auction.mechanisms import Allocation, gsp
from genads.baselines.sasrec import SASRec, SASRecConfig
from genads.data.split import left_pad
from genads.market.logs import Impressions, Logs
from genads.market.ranker import DIN, RankerConfig, fit_ranker, fit_ranker_early
from genads.market.world import World


@dataclass(frozen=True)
class CascadeConfig:
    retrieve: int = 50
    """Ads kept by retrieval."""
    candidates: int = 6
    """Ads that enter the auction (top eCPM among the retrieved)."""
    sasrec: SASRecConfig = field(default_factory=lambda: SASRecConfig(
        max_len=30, d_model=32, n_layers=2, n_heads=1, dropout=0.2, loss="ce", epochs=20, eval_every=3, patience=2,
        batch_size=128))
    ranker: RankerConfig = field(default_factory=RankerConfig)
    bid_alpha: float = 0.0
    """Weight of log bid in the retrieval score (0: bid-blind retrieval, today's cascade)."""

    def __post_init__(self) -> None:
        if self.retrieve < self.candidates or self.candidates < 2:
            raise ValueError(f"need retrieve={self.retrieve} >= candidates={self.candidates} >= 2")
        if self.bid_alpha < 0:
            raise ValueError(f"bid_alpha={self.bid_alpha} must be >= 0")


class Cascade:
    """The three stages over trained models; :meth:`propose` gives the auction's candidates."""

    name = "cascade"

    def __init__(self, retriever: SASRec, ranker: DIN, cfg: CascadeConfig, slot_ctr: np.ndarray) -> None:
        self.retriever, self.ranker, self.cfg = retriever, ranker, cfg
        self.slot_ctr = np.asarray(slot_ctr, dtype=float)

    @torch.no_grad()
    def propose(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates for a batch of requests.

        Args:
            history: (B, L) left-padded clicked item indices (item = ad + 1).
            live: (n_ads,) bool, ads whose advertiser can still pay.
            bids: (n_ads,) bid per click.

        Returns:
            (ads (B, n) with -1 where fewer are live, pCTR (B, n)).
        """
        top = self.retrieve(history, live, bids)
        if top is None:
            return np.full((len(history), self.cfg.candidates), -1), np.ones((len(history), self.cfg.candidates))
        k = top.shape[1]
        pctr = self.ranker.pctr(history, top + 1)  # (B, k)
        ecpm = bids[top] * pctr
        n = min(self.cfg.candidates, k)
        best = np.argsort(-ecpm, axis=1, kind="stable")[:, :n]
        ads, quality = np.take_along_axis(top, best, 1), np.take_along_axis(pctr, best, 1)
        pad = self.cfg.candidates - n
        return (np.pad(ads, ((0, 0), (0, pad)), constant_values=-1),
                np.pad(np.maximum(quality, 1e-9), ((0, 0), (0, pad)), constant_values=1e-9))

    @torch.no_grad()
    def retrieve(self, history: np.ndarray, live: np.ndarray, bids: np.ndarray | None = None) -> np.ndarray | None:
        """(B, k) the ``retrieve`` live ads of highest retrieval score (None when no ad is live): SASRec's logit,
        plus ``bid_alpha * log bid`` when the cascade is bid-aware (``bids`` (n_ads,) then required)."""
        net = self.retriever.net
        net.eval()
        seq = torch.from_numpy(left_pad(list(history), self.retriever.config.max_len))
        scores = net.scores(seq)[:, 1:].double().numpy()  # (B, n_ads)
        if self.cfg.bid_alpha > 0:
            if bids is None:
                raise ValueError("a bid-aware cascade (bid_alpha > 0) needs the bids to retrieve")
            scores = scores + self.cfg.bid_alpha * np.log(np.maximum(np.asarray(bids, dtype=float), 1e-12))[None]
        scores[:, ~live] = -np.inf
        k = min(self.cfg.retrieve, int(live.sum()))
        if k == 0:
            return None
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]

    def auction(self, bids: np.ndarray, quality: np.ndarray) -> Allocation:
        return gsp(bids, quality, len(self.slot_ctr), slot_ctr=self.slot_ctr)


def build_cascade(world: World, logs: Logs, cfg: CascadeConfig, seed: int,
                  held: Impressions | None = None) -> tuple[Cascade, dict]:
    """Train SASRec on the click histories and DIN on the impression log; returns the cascade and a log.

    With ``held`` (held-out impressions: ``logs.impressions`` is then the training part only), DIN is
    early-stopped on them (:func:`fit_ranker_early`) and the log carries its held-out log-loss and AUC.
    """
    retriever = SASRec(cfg.sasrec)
    sas_log = retriever.fit(logs.split(), seed=seed, progress=False)
    ranker = DIN(world.ad_features, cfg.ranker)
    if held is not None:
        din = fit_ranker_early(ranker, logs.impressions, held, world.config.ad_load, world.slot_ctr, cfg.ranker, seed)
        info = {"sasrec_epochs": len(sas_log), "sasrec_valid_ndcg@10": max(
            (r.get("valid_ndcg@10", 0.0) for r in sas_log), default=0.0), "din": din}
        return Cascade(retriever, ranker, cfg, world.slot_ctr), info
    losses = fit_ranker(ranker, logs.impressions, world.slot_ctr, cfg.ranker, seed)
    info = {"sasrec_epochs": len(sas_log), "sasrec_valid_ndcg@10": max((r.get("valid_ndcg@10", 0.0) for r in sas_log),
                                                                         default=0.0),
            "ranker_loss": losses}
    return Cascade(retriever, ranker, cfg, world.slot_ctr), info
