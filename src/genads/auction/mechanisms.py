"""Auction mechanisms as small pure functions, vectorised over a batch of auctions.

Every mechanism takes ``bids`` and ``quality`` of shape (B, n) — B independent auctions with n
bidders each; ``quality`` is the pCTR of each ad — and a number of slots, and returns an
:class:`Allocation`. Clicks follow the separable position model: the ad in slot ``j`` is clicked
with probability ``quality[i] * slot_ctr[j]``, and a bidder pays its per-click price per click, so
its expected utility is ``quality * slot_ctr[slot] * (value - price)``.

Threshold prices use one formula (Myerson's payment identity for position auctions): a bidder in
slot ``j`` whose l-th highest competitor needs ``t_l`` per click to be overtaken pays, per click,
``sum_{l>=j} (ctr_l - ctr_{l+1}) * max(reserve, t_l) / ctr_j``. VCG, second price and Myerson
are that formula with different scores; GSP charges just ``max(reserve, t_j)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """The outcome of a batch of auctions with ``k`` slots."""

    winners: np.ndarray
    """(B, k) int: the bidder in each slot, -1 where the slot stays empty."""
    prices: np.ndarray
    """(B, k) float: the price per click the winner of each slot pays (0 for empty slots)."""

    def slots(self, n: int) -> np.ndarray:
        """(B, n) int: each bidder's slot, -1 if it won none."""
        out = np.full((self.winners.shape[0], n), -1, dtype=np.int64)
        b, j = np.nonzero(self.winners >= 0)
        out[b, self.winners[b, j]] = j
        return out

    def bidder_prices(self, n: int) -> np.ndarray:
        """(B, n) float: each bidder's price per click (0 if it won no slot)."""
        out = np.zeros((self.winners.shape[0], n))
        b, j = np.nonzero(self.winners >= 0)
        out[b, self.winners[b, j]] = self.prices[b, j]
        return out

    def click_rates(self, quality: np.ndarray, slot_ctr: np.ndarray) -> np.ndarray:
        """(B, n) float: each bidder's click probability ``quality * slot_ctr[slot]`` (0 if no slot)."""
        slots = self.slots(quality.shape[1])
        ctr = np.append(np.asarray(slot_ctr, dtype=float), 0.0)[slots]  # slot -1 -> the appended 0
        return quality * ctr

    def revenue(self, quality: np.ndarray, slot_ctr: np.ndarray) -> np.ndarray:
        """(B,) float: the expected payment per auction."""
        return (self.click_rates(quality, slot_ctr) * self.bidder_prices(quality.shape[1])).sum(axis=1)

    def utilities(self, values: np.ndarray, quality: np.ndarray, slot_ctr: np.ndarray) -> np.ndarray:
        """(B, n) float: each bidder's expected utility given its true value per click."""
        return self.click_rates(quality, slot_ctr) * (values - self.bidder_prices(values.shape[1]))


class Mechanism(Protocol):
    def __call__(self, bids: np.ndarray, quality: np.ndarray, num_slots: int, *,
                 slot_ctr: np.ndarray | None = None, reserve: float = 0.0) -> Allocation: ...


def _check(bids: np.ndarray, quality: np.ndarray, num_slots: int, slot_ctr: np.ndarray | None,
           reserve: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bids = np.atleast_2d(np.asarray(bids, dtype=float))
    quality = np.broadcast_to(np.asarray(quality, dtype=float), bids.shape)
    if num_slots < 1:
        raise ValueError(f"num_slots={num_slots} must be >= 1")
    if (bids < 0).any() or not np.isfinite(bids).all():
        raise ValueError("bids must be finite and >= 0")
    if (quality <= 0).any():
        raise ValueError("quality (pCTR) must be > 0")
    if reserve < 0:
        raise ValueError(f"reserve={reserve} must be >= 0")
    ctr = np.ones(num_slots) if slot_ctr is None else np.asarray(slot_ctr, dtype=float)
    if ctr.shape != (num_slots,) or (ctr <= 0).any() or (np.diff(ctr) > 0).any():
        raise ValueError(f"slot_ctr must have num_slots={num_slots} positive, non-increasing entries")
    return bids, quality, ctr


def _rank(scores: np.ndarray, eligible: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Winners (B, k) by descending score among eligible bidders (ties: lower index first), and
    the sorted scores (B, n+1) with ineligible scores set to 0 and a trailing 0."""
    masked = np.where(eligible, scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(masked, order, axis=1)
    k_eff = min(k, scores.shape[1])
    winners = np.where(np.isfinite(sorted_scores[:, :k_eff]), order[:, :k_eff], -1)
    winners = np.pad(winners, ((0, 0), (0, k - k_eff)), constant_values=-1)
    sorted_scores = np.where(np.isfinite(sorted_scores), sorted_scores, 0.0)
    return winners, np.pad(sorted_scores, ((0, 0), (0, 1)))


def _thresholds(sorted_scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) score the winner of slot j must beat to keep slot l >= j: the (l+1)-th score."""
    padded = np.pad(sorted_scores, ((0, 0), (0, k + 1)))
    return padded[:, 1 : k + 1]


def _winner_values(winners: np.ndarray, per_bidder: np.ndarray) -> np.ndarray:
    return np.where(winners >= 0, np.take_along_axis(per_bidder, np.maximum(winners, 0), axis=1), 0.0)


def _threshold_prices(winners: np.ndarray, next_scores: np.ndarray, to_bid: Callable[[np.ndarray], np.ndarray],
                      reserve: np.ndarray, ctr: np.ndarray) -> np.ndarray:
    """Myerson's payment identity: per-click price of the winner of each slot.

    ``next_scores`` (B, k): the (l+1)-th score; ``to_bid`` maps a (B, k, k) array of competing
    scores to the bid the winner of row j would need to match it; ``reserve`` (B, k) per winner.
    """
    k = ctr.shape[0]
    delta = ctr - np.append(ctr[1:], 0.0)  # (k,)  ctr_l - ctr_{l+1}
    need = np.maximum(to_bid(np.broadcast_to(next_scores[:, None, :], (*winners.shape, k))), reserve[..., None])
    upper = np.triu(np.ones((k, k)))  # row j sums l >= j
    prices = (need * delta * upper).sum(axis=2) / ctr  # (B, k)
    return np.where(winners >= 0, prices, 0.0)


def gsp(bids: np.ndarray, quality: np.ndarray, num_slots: int, *, slot_ctr: np.ndarray | None = None,
        reserve: float = 0.0) -> Allocation:
    """Generalized second price: rank by bid × quality; pay max(reserve, next score / own quality)."""
    bids, quality, _ = _check(bids, quality, num_slots, slot_ctr, reserve)
    scores = bids * quality
    winners, sorted_scores = _rank(scores, (bids >= reserve) & (scores > 0), num_slots)
    q_win = np.where(winners >= 0, _winner_values(winners, quality), 1.0)
    prices = np.maximum(_thresholds(sorted_scores, num_slots) / q_win, reserve)
    return Allocation(winners=winners, prices=np.where(winners >= 0, prices, 0.0))


def vcg(bids: np.ndarray, quality: np.ndarray, num_slots: int, *, slot_ctr: np.ndarray | None = None,
        reserve: float = 0.0) -> Allocation:
    """VCG for position auctions: rank by bid × quality; each winner pays the externality it imposes.

    With a reserve, bidders under it are dropped and each threshold is at least the reserve
    (this is still truthful: it is the threshold price of a monotone allocation).
    """
    bids, quality, ctr = _check(bids, quality, num_slots, slot_ctr, reserve)
    scores = bids * quality
    winners, sorted_scores = _rank(scores, (bids >= reserve) & (scores > 0), num_slots)
    q_win = np.where(winners >= 0, _winner_values(winners, quality), 1.0)
    prices = _threshold_prices(winners, _thresholds(sorted_scores, num_slots),
                               lambda s: s / q_win[..., None], np.full(winners.shape, reserve), ctr)
    return Allocation(winners=winners, prices=prices)


def second_price(bids: np.ndarray, quality: np.ndarray, num_slots: int, *, slot_ctr: np.ndarray | None = None,
                 reserve: float = 0.0) -> Allocation:
    """(k+1)-th price auction: the top ``num_slots`` scores win, each pays the (k+1)-th score over
    its own quality (or the reserve). Truthful when the slots are alike (``slot_ctr`` is ignored);
    with one slot it is Vickrey's second-price auction."""
    return vcg(bids, quality, num_slots, slot_ctr=None, reserve=reserve)


def first_price(bids: np.ndarray, quality: np.ndarray, num_slots: int, *, slot_ctr: np.ndarray | None = None,
                reserve: float = 0.0) -> Allocation:
    """First price: rank by bid × quality; each winner pays its own bid."""
    bids, quality, _ = _check(bids, quality, num_slots, slot_ctr, reserve)
    scores = bids * quality
    winners, _ = _rank(scores, (bids >= reserve) & (scores > 0), num_slots)
    return Allocation(winners=winners, prices=_winner_values(winners, bids))


@dataclass(frozen=True)
class ValueDistribution:
    """A bidder's value distribution on [low, high], by its cdf and pdf (vectorised callables).

    Myerson's construction needs it *regular* (non-decreasing virtual value); that is the caller's
    promise, checked on a grid by :meth:`check_regular`.
    """

    cdf: Callable[[np.ndarray], np.ndarray]
    pdf: Callable[[np.ndarray], np.ndarray]
    low: float = 0.0
    high: float = 1.0
    inverse_virtual: Callable[[np.ndarray], np.ndarray] | None = None
    """Closed-form inverse of the virtual value, if known; else bisection is used."""

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"need high={self.high} > low={self.low}")

    def virtual_value(self, v: np.ndarray) -> np.ndarray:
        """phi(v) = v - (1 - F(v)) / f(v)."""
        v = np.clip(np.asarray(v, dtype=float), self.low, self.high)
        return v - (1.0 - self.cdf(v)) / np.maximum(self.pdf(v), 1e-300)

    def inverse(self, phi: np.ndarray, iters: int = 60) -> np.ndarray:
        """The value whose virtual value is ``phi`` (clipped to [low, high])."""
        if self.inverse_virtual is not None:
            return np.clip(self.inverse_virtual(np.asarray(phi, dtype=float)), self.low, self.high)
        lo = np.full(np.shape(phi), self.low)
        hi = np.full(np.shape(phi), self.high)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            below = self.virtual_value(mid) < phi
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def check_regular(self, points: int = 1001) -> bool:
        grid = np.linspace(self.low, self.high, points)
        return bool((np.diff(self.virtual_value(grid)) >= -1e-9).all())


def uniform(low: float = 0.0, high: float = 1.0) -> ValueDistribution:
    """U[low, high]: phi(v) = 2v - high."""
    width = high - low
    return ValueDistribution(cdf=lambda v: (v - low) / width, pdf=lambda v: np.full(np.shape(v), 1.0 / width),
                             low=low, high=high, inverse_virtual=lambda p: (p + high) / 2.0)


@dataclass(frozen=True)
class Myerson:
    """Myerson's optimal auction for bidders with i.i.d. regular values from ``dist``.

    Rank by quality × virtual value; only non-negative virtual values win (the monopoly reserve
    ``phi^{-1}(0)``); winners pay the threshold price. With one slot this maximises expected
    revenue among all truthful mechanisms (5/12 for two U[0,1] bidders).
    """

    dist: ValueDistribution

    def __call__(self, bids: np.ndarray, quality: np.ndarray, num_slots: int, *,
                 slot_ctr: np.ndarray | None = None, reserve: float = 0.0) -> Allocation:
        bids, quality, ctr = _check(bids, quality, num_slots, slot_ctr, reserve)
        phi = self.dist.virtual_value(bids)
        scores = quality * phi
        winners, sorted_scores = _rank(scores, (bids >= reserve) & (phi >= 0) & (bids > 0), num_slots)
        q_win = np.where(winners >= 0, _winner_values(winners, quality), 1.0)
        monopoly = float(self.dist.inverse(np.array(0.0)))
        prices = _threshold_prices(winners, _thresholds(sorted_scores, num_slots),
                                   lambda s: self.dist.inverse(s / q_win[..., None]),
                                   np.full(winners.shape, max(reserve, monopoly)), ctr)
        return Allocation(winners=winners, prices=prices)


def myerson_revenue_uniform(n: int) -> float:
    """Optimal expected revenue, one item, n i.i.d. U[0,1] bidders: (n-1)/(n+1) + 1/((n+1) 2^n)."""
    return (n - 1) / (n + 1) + 1.0 / ((n + 1) * 2**n)


MECHANISMS: dict[str, Mechanism] = {
    "first_price": first_price,
    "second_price": second_price,
    "gsp": gsp,
    "vcg": vcg,
    "myerson_uniform": Myerson(uniform()),
}
"""Built-in mechanisms by name (Myerson here assumes U[0,1] values)."""
