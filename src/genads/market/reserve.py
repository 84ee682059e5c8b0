"""Reserve prices per ad slot: the slot's reserve is a floor on who may take it and on what it costs.

``reserves[j]`` is the least bid per click that ad slot ``j`` (0 = topmost ad slot) accepts. Slots are filled
top-down: slot ``j`` goes to the highest bid x quality among the candidates not yet placed whose bid is at
least ``reserves[j]``, and costs ``max(reserves[j], next / quality)`` per click, ``next`` the best score among
the other candidates eligible for that slot (generalized second price with a per-slot reserve, as in
Ostrovsky & Schwarz 2011, "Reserve prices in internet advertising auctions: a field experiment", EC, who set
reserves per keyword). A price is therefore never under the slot's reserve and never over the winner's bid.
"""

from __future__ import annotations

import numpy as np


def slot_reserves(levels: tuple[float, ...], value_median: float) -> np.ndarray:
    """(k,) reserves per click: ``levels`` (shares of the median value per click) times that median."""
    r = np.asarray(levels, dtype=float) * value_median
    if (r < 0).any():
        raise ValueError(f"reserve levels {levels} must be >= 0")
    return r


def gsp_slot_reserves(bids: np.ndarray, quality: np.ndarray, reserves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Winners (B, k) (candidate index, -1 = slot left empty) and per-click prices (B, k).

    Args:
        bids: (B, n) bid per click of each candidate (0 = no candidate).
        quality: (B, n) its click-rate estimate.
        reserves: (k,) least bid per click of each ad slot, top slot first.
    """
    bids, quality = np.asarray(bids, dtype=float), np.asarray(quality, dtype=float)
    if bids.shape != quality.shape or bids.ndim != 2:
        raise ValueError(f"bids {bids.shape} and quality {quality.shape} must be equal (B, n) shapes")
    B, k = len(bids), len(reserves)
    scores = bids * quality
    placed = np.zeros(bids.shape, dtype=bool)
    winners, prices = np.full((B, k), -1), np.zeros((B, k))
    rows = np.arange(B)
    for j, r in enumerate(reserves):
        ok = ~placed & (bids >= r) & (scores > 0)
        s = np.where(ok, scores, -np.inf)
        win = s.argmax(1)
        has = np.isfinite(s[rows, win])
        s[rows, win] = -np.inf
        nxt = np.where(np.isfinite(s.max(1)), s.max(1), 0.0)
        q = np.maximum(quality[rows, win], 1e-300)
        winners[:, j] = np.where(has, win, -1)
        prices[:, j] = np.where(has, np.minimum(np.maximum(r, nxt / q), bids[rows, win]), 0.0)
        placed[rows[has], win[has]] = True
    return winners, prices
