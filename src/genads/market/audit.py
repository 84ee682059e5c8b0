"""Regret audit of a pipeline's auction: EGA's Ψ = total ex-post regret / total truthful utility.

The audited mechanism is the auction exactly as the pipeline runs it on a stored candidate set:
allocation by bid x pCTR into the ad slots, per-click prices from GSP or the payment network. A
bidder's utility uses what the platform never sees — its true value and the ad's *true* CTR — so a
misreport that pays off because the pCTR is wrong counts as regret too. Regret is searched with the
strong estimator of :mod:`genads.auction.regret`: EGA's misreport grid and projected gradient
ascent from many random restarts (GSP prices have no gradient in the bid: restarts only); the
reported Ψ is the larger of the two (both are lower bounds of the true regret).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genads.auction.payment_net import PaymentNet, position_allocation
from genads.auction.regret import AscentConfig, grid_regret, regret_report


@dataclass(frozen=True)
class AuditConfig:
    restarts: int = 32
    steps: int = 60
    lr_scale: float = 0.05
    """Ascent step size as a share of the median value."""
    generation_advertisers: int = 0
    """Advertisers audited with re-generated candidates (:func:`generation_psi`; 0 = off: it re-runs the
    pipeline ``advertisers x (1 + gammas)`` times)."""
    generation_requests: int = 64
    """Requests (of held-out users) per re-generation in that audit."""

    def __post_init__(self) -> None:
        if self.restarts < 1 or self.steps < 0 or self.lr_scale <= 0:
            raise ValueError(f"need restarts={self.restarts} >= 1, steps={self.steps} >= 0, lr_scale > 0")
        if self.generation_advertisers < 0 or self.generation_requests < 1:
            raise ValueError(f"need generation_advertisers={self.generation_advertisers} >= 0 and "
                             f"generation_requests={self.generation_requests} >= 1")


def gsp_price(bids: Tensor, quality: Tensor) -> Tensor:
    """(N, n) GSP price per click: the next score down over own pCTR (ties broken by index)."""
    n = bids.shape[-1]
    scores = bids * quality
    diff = scores[..., None, :] - scores[..., :, None]  # (N, i, j): s_j - s_i
    earlier = torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)
    rank = ((diff > 0) | ((diff == 0) & earlier)).sum(-1)  # (N, n)
    ordered = torch.cat([scores.sort(-1, descending=True).values, torch.zeros_like(scores[..., :1])], -1)
    return ordered.gather(-1, (rank + 1).clamp(max=n)) / quality


class AuditedAuction:
    """A :data:`~genads.auction.regret.DifferentiableMechanism`: bids (N, n, 1), context (N, n, 2) =
    (pCTR, true CTR) -> (true click probability (N, n, 1), expected payment (N, n))."""

    def __init__(self, slot_ctr: np.ndarray, net: PaymentNet | None = None) -> None:
        self.slot_ctr = torch.as_tensor(np.asarray(slot_ctr), dtype=torch.float32)
        self.net = net

    def parameters(self) -> list[Tensor]:
        return [] if self.net is None else list(self.net.parameters())

    def __call__(self, bids: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        b, q, ctr = bids[..., 0], context[..., 0], context[..., 1]
        click = position_allocation(b, q, self.slot_ctr.to(b.dtype)) * ctr
        price = gsp_price(b, q) if self.net is None else self.net.prices(bids, q[..., None])
        return click[..., None], click * price


def psi(mechanism: AuditedAuction, values: np.ndarray, quality: np.ndarray, ctr: np.ndarray, cfg: AuditConfig,
        seed: int) -> dict[str, float]:
    """Regret figures of ``mechanism`` at truthful profiles ``values`` (N, n) with pCTR and true CTR (N, n)."""
    v = torch.as_tensor(values, dtype=torch.float32)[..., None]
    ctx = torch.stack([torch.as_tensor(quality, dtype=torch.float32), torch.as_tensor(ctr, dtype=torch.float32)], -1)
    scale = float(np.median(values[values > 0])) if (values > 0).any() else 1.0
    ascent = AscentConfig(restarts=cfg.restarts, steps=cfg.steps, lr=cfg.lr_scale * scale, low=0.0,
                          high=3.0 * float(values.max(initial=1e-3)), seed=seed)
    rep = regret_report(mechanism, v, ctx, ascent)
    return {"psi": max(rep["grid_psi"], rep["ascent_psi"]), "psi_grid": rep["grid_psi"],
            "psi_ascent": rep["ascent_psi"], "mean_regret": max(rep["grid_mean_regret"], rep["ascent_mean_regret"]),
            "mean_utility": rep["ascent_mean_utility"]}


def psi_in_model(mechanism: AuditedAuction, values: np.ndarray, quality: np.ndarray) -> float:
    """Ψ on EGA's grid when clicks follow the pipeline's own pCTR (the world the payments were trained in)."""
    v = torch.as_tensor(values, dtype=torch.float32)[..., None]
    q = torch.as_tensor(quality, dtype=torch.float32)
    return grid_regret(mechanism, v, torch.stack([q, q], -1)).psi


def generation_psi(world, pipeline, history: np.ndarray, users: np.ndarray, advertisers: np.ndarray,
                   gammas: tuple[float, ...] = (0.5, 0.8, 1.25, 1.6, 2.0)) -> dict[str, float]:
    """Ψ when a misreport may also change WHICH candidates are generated (or retrieved).

    Every advertiser in ``advertisers`` in turn scales the bids of all its ads by each ``gamma``
    (the others bid their true value, every ad live); the pipeline re-proposes its candidates for the
    requests of ``users`` (histories ``history``) and re-runs its auction. The advertiser's utility
    uses its true value and the page's true click probabilities
    (:meth:`~genads.market.world.World.page_click_prob`, ads only): regret = best misreport's utility
    minus the truthful one. Returns Ψ = total regret / total truthful utility and its parts. Unlike
    :func:`psi`, which replays a fixed candidate set, this audits generation and pre-selection too.
    """
    ad_pos = list(world.config.ad_positions)
    live = np.ones(world.config.n_ads, dtype=bool)
    kw = {"users": users} if getattr(pipeline, "needs_users", False) else {}

    def utility(adv: int, gamma: float) -> float:
        bids = world.value * np.where(world.owner == adv, gamma, 1.0)
        ads, quality = pipeline.propose(history, live, bids, **kw)
        cand_bids = np.where(ads >= 0, bids[np.maximum(ads, 0)], 0.0)
        alloc = pipeline.auction(cand_bids, quality)
        won = np.where(alloc.winners >= 0, np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1), -1)
        clicks = world.page_click_prob(users, won)[:, ad_pos]
        mine = (won >= 0) & (world.owner[np.maximum(won, 0)] == adv)
        return float((mine * clicks * (world.value[np.maximum(won, 0)] - alloc.prices)).sum())

    regret, truthful = 0.0, 0.0
    for adv in advertisers:
        u1 = utility(int(adv), 1.0)
        best = max([u1] + [utility(int(adv), g) for g in gammas])
        regret, truthful = regret + best - u1, truthful + u1
    return {"psi_generation": regret / max(truthful, 1e-12), "generation_regret": regret,
            "generation_truthful_utility": truthful, "generation_advertisers": len(advertisers)}
