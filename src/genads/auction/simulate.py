"""Simulated ad auctions on a catalogue's (synthetic) bids, and a side-by-side mechanism comparison.

Each request draws ``n`` distinct candidate ads (by popularity); an ad's pCTR grows with the log of
its popularity; its bid is its value per click (the synthetic bids are values). Mechanisms are
compared on revenue, ex-post regret and individual-rationality violations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genads.auction.mechanisms import Mechanism
from genads.auction.regret import AscentConfig, DifferentiableMechanism, grid_regret, misreport_regret


@dataclass(frozen=True)
class AuctionSample:
    """A batch of simulated auctions."""

    ads: np.ndarray
    """(B, n) catalogue rows of the candidates."""
    bids: np.ndarray
    """(B, n) bid = value per click."""
    quality: np.ndarray
    """(B, n) pCTR."""


def popularity_pctr(counts: np.ndarray, low: float = 0.01, high: float = 0.1) -> np.ndarray:
    """pCTR in [low, high] growing with log(1 + count): a stand-in for a click model."""
    if not 0 < low <= high <= 1:
        raise ValueError(f"need 0 < low={low} <= high={high} <= 1")
    scaled = np.log1p(counts) / max(np.log1p(counts).max(), 1e-12)
    return low + (high - low) * scaled


def sample_auctions(bids: np.ndarray, pctr: np.ndarray, n_candidates: int, size: int,
                    rng: np.random.Generator, weights: np.ndarray | None = None) -> AuctionSample:
    """``size`` auctions of ``n_candidates`` distinct ads drawn with probability ∝ ``weights``."""
    if not 1 <= n_candidates <= len(bids):
        raise ValueError(f"n_candidates={n_candidates} must be in [1, {len(bids)}]")
    p = None if weights is None else weights / weights.sum()
    # Gumbel top-k: distinct draws without replacement, vectorised over requests
    logits = np.log(np.full(len(bids), 1.0 / len(bids)) if p is None else np.maximum(p, 1e-300))
    keys = logits[None, :] + rng.gumbel(size=(size, len(bids)))
    ads = np.argpartition(-keys, n_candidates - 1, axis=1)[:, :n_candidates]
    return AuctionSample(ads=ads, bids=np.asarray(bids, dtype=float)[ads], quality=np.asarray(pctr, dtype=float)[ads])


def differentiable(mech: Mechanism, slot_ctr: np.ndarray) -> DifferentiableMechanism:
    """A pure mechanism as a regret-estimator mechanism (no gradients: restarts-only search).

    bids (N, n, 1), context (N, n, 1) = pCTR -> (click probability (N, n, 1), payment (N, n))."""
    ctr = np.asarray(slot_ctr, dtype=float)

    def run(bids: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        b, q = bids[..., 0].detach().double().numpy(), context[..., 0].detach().double().numpy()
        alloc = mech(b, q, len(ctr), slot_ctr=ctr)
        click = alloc.click_rates(q, ctr)
        pay = click * alloc.bidder_prices(b.shape[1])
        return torch.from_numpy(click)[..., None].to(bids.dtype), torch.from_numpy(pay).to(bids.dtype)

    return run


def compare(mechanisms: dict[str, DifferentiableMechanism], sample: AuctionSample, audit: AscentConfig,
            audit_size: int) -> list[dict]:
    """Revenue per 1000 requests, IR violations and regret (grid (a), ascent (b) on the first
    ``audit_size`` auctions) of each mechanism on ``sample``."""
    values = torch.as_tensor(sample.bids, dtype=torch.float32)[..., None]
    context = torch.as_tensor(sample.quality, dtype=torch.float32)[..., None]
    rows = []
    for name, mech in mechanisms.items():
        with torch.no_grad():
            click, pay = mech(values, context)
        utility = click[..., 0] * values[..., 0] - pay
        grid = grid_regret(mech, values[:audit_size], context[:audit_size])
        ascent = misreport_regret(mech, values[:audit_size], context[:audit_size], audit)
        rows.append({"mechanism": name, "revenue_per_1000": 1000 * float(pay.sum(-1).mean()),
                     "clicks_per_1000": 1000 * float(click.sum((-1, -2)).mean()),
                     "ir_violations": int((utility < -1e-6).sum()),
                     "grid_regret": grid.mean_regret, "ascent_regret": ascent.mean_regret,
                     "ascent_max_regret": ascent.max_regret, "psi": ascent.psi})
    return rows
