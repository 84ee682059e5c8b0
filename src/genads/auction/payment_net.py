"""EGA's learned payment network: allocation is given, payment is learned by regret minimisation.

The allocation ranks ads by bid × pCTR into slots with position CTRs (hard ranking, or a soft
ranking that is smooth in the bids). For each ad the network sees its own features (bid, pCTR,
optional extra columns), its allocation probability × pCTR, and the bids of the others (sorted by
score, with their per-click score relative to its own pCTR), and charges per click

    price_i = sigmoid(MLP(features_i)) * bid_i        (so price <= bid: individually rational)

Bid features are divided by the auction's highest bid (``bid_norm="auction"``), so the mechanism is
scale-equivariant like GSP and VCG: multiplying every bid by c multiplies every price by c, and a
network trained at one bid level is not out of its distribution when budget pacing lowers all bids.

Training maximises expected revenue subject to zero ex-post regret with the augmented Lagrangian
``-revenue + lambda * rgt + rho / 2 * rgt^2``, ``lambda <- lambda + rho * rgt``, where rgt is the
empirical regret over EGA's misreport grid (bid × gamma, gamma in {0.2, ..., 2.0}).

As a :data:`~genads.auction.regret.DifferentiableMechanism` the module takes bids ``(N, n, 1)``
and context ``(N, n, 1 + n_features)`` whose first column is the pCTR; it returns click
probabilities ``(N, n, 1)`` and expected payments ``(N, n)``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from genads.auction.mechanisms import Allocation, _check, _rank, gsp
from genads.auction.regret import EGA_GAMMAS, _own_utility

BID_NORMS = ("auction", "fixed")


SAVED_DEFAULTS = {"bid_norm": "fixed"}
"""Fields a saved config may lack: a net written before ``bid_norm`` existed was trained with "fixed"."""


def config_from_json(data: dict) -> PaymentNetConfig:
    """A saved config (JSON), with :data:`SAVED_DEFAULTS` for fields older files lack."""
    return PaymentNetConfig(**{**SAVED_DEFAULTS, **data, "slot_ctr": tuple(data["slot_ctr"])})


@dataclass(frozen=True)
class PaymentNetConfig:
    n_bidders: int
    """Candidate ads per auction."""
    slot_ctr: tuple[float, ...] = (1.0,)
    """Position CTR of each slot (non-increasing); the allocation fills len(slot_ctr) slots."""
    hidden: int = 64
    layers: int = 2
    n_features: int = 0
    """Extra per-ad feature columns in the context after the pCTR."""
    temperature: float = 0.0
    """0: hard ranking by bid × pCTR; > 0: soft ranking over log scores with this temperature."""
    bid_scale: float = 1.0
    """With ``bid_norm="fixed"``: bids are divided by this before entering the network (a typical bid)."""
    bid_norm: str = "auction"
    """"auction": every bid feature is divided by the auction's highest bid, so prices scale with the bids
    (p(c * b) = c * p(b)) and regret / utility does not depend on the bid level. A net trained at truthful
    bids then still fits when pacing lowers every bid (the market simulator: value-level training profiles,
    candidates at ~0.4x in the episode, Ψ .18 -> 6.5 with "fixed"). "fixed": divided by ``bid_scale``
    (networks saved before this option)."""
    quality_scale: float = 1.0
    """Allocation × pCTR is divided by this before entering the network (a typical pCTR)."""

    def __post_init__(self) -> None:
        if self.n_bidders < 1:
            raise ValueError(f"n_bidders={self.n_bidders} must be >= 1")
        ctr = np.asarray(self.slot_ctr, dtype=float)
        if ctr.size < 1 or (ctr <= 0).any() or (np.diff(ctr) > 0).any():
            raise ValueError(f"slot_ctr={self.slot_ctr} must be positive and non-increasing")
        if self.hidden < 1 or self.layers < 1 or self.n_features < 0:
            raise ValueError(f"need hidden={self.hidden} >= 1, layers={self.layers} >= 1, n_features >= 0")
        if self.bid_norm not in BID_NORMS:
            raise ValueError(f"bid_norm={self.bid_norm!r} must be one of {BID_NORMS}")
        if self.temperature < 0 or self.bid_scale <= 0 or self.quality_scale <= 0:
            raise ValueError(f"need temperature={self.temperature} >= 0, bid_scale={self.bid_scale} > 0 "
                             f"and quality_scale={self.quality_scale} > 0")


def position_allocation(bids: Tensor, quality: Tensor, slot_ctr: Tensor, temperature: float = 0.0) -> Tensor:
    """(N, n) expected position CTR of each ad when ranked by bid × pCTR (0 when it gets no slot).

    Hard ranking breaks ties by index (as :func:`genads.auction.mechanisms.gsp`); soft ranking
    uses rank_i = sum_j sigmoid((s_j - s_i) / T) on log scores s, and interpolates the slot CTRs.
    Either way an ad's allocation never falls when its own bid rises.
    """
    n, k = bids.shape[-1], slot_ctr.shape[0]
    scores = torch.log((bids * quality).clamp_min(1e-12))  # (N, n)
    diff = scores[..., None, :] - scores[..., :, None]  # (N, i, j): s_j - s_i
    if temperature > 0:
        off = 1.0 - torch.eye(n, dtype=bids.dtype)
        rank = (torch.sigmoid(diff / temperature) * off).sum(-1)  # (N, n) in [0, n-1]
    else:
        earlier = torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)  # j < i
        rank = ((diff > 0) | ((diff == 0) & earlier)).sum(-1).to(bids.dtype)
    table = torch.cat([slot_ctr, torch.zeros(max(n - k, 0) + 1, dtype=bids.dtype)])
    low = rank.floor().long().clamp(max=table.shape[0] - 2)
    frac = rank - low
    ctr = table[low] * (1 - frac) + table[low + 1] * frac
    return torch.where(bids > 0, ctr, torch.zeros_like(ctr))


def others_sorted(bids: Tensor, quality: Tensor) -> tuple[Tensor, Tensor]:
    """For every ad i, the other ads' bids and scores / q_i, sorted by score: two (N, n, n-1)."""
    n = bids.shape[-1]
    scores = bids * quality
    others = ~torch.eye(n, dtype=torch.bool)
    s = scores[..., None, :].expand(*scores.shape, n)[..., others].reshape(*scores.shape, n - 1)
    b = bids[..., None, :].expand(*bids.shape, n)[..., others].reshape(*bids.shape, n - 1)
    s_sorted, order = s.sort(dim=-1, descending=True)
    return b.gather(-1, order), s_sorted / quality[..., None]


class PaymentNet(nn.Module):
    def __init__(self, config: PaymentNetConfig) -> None:
        super().__init__()
        self.config = config
        width = 3 + config.n_features + 2 * (config.n_bidders - 1)
        dims = [width] + [config.hidden] * config.layers
        self.body = nn.Sequential(*[layer for a, b in itertools.pairwise(dims) for layer in (nn.Linear(a, b), nn.ReLU())])
        self.head = nn.Linear(config.hidden, 1)
        self.register_buffer("slot_ctr", torch.tensor(config.slot_ctr, dtype=torch.float32))

    def price_fraction(self, bids: Tensor, quality: Tensor, click: Tensor, features: Tensor | None) -> Tensor:
        """(N, n) sigmoid(MLP(features)): the share of its bid each ad pays per click."""
        if self.config.bid_norm == "auction":
            scale = bids.amax(-1, keepdim=True).clamp_min(1e-12)[..., None]  # (N, 1, 1): the auction's highest bid
        else:
            scale = self.config.bid_scale
        other_bids, other_scores = others_sorted(bids, quality)
        parts = [bids[..., None] / scale, torch.log(quality)[..., None], click[..., None] / self.config.quality_scale,
                 other_bids / scale, other_scores / scale]
        if self.config.n_features:
            parts.insert(2, features)
        x = torch.cat(parts, dim=-1)  # (N, n, width)
        return torch.sigmoid(self.head(self.body(x))[..., 0])

    def forward(self, bids: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """bids (N, n, 1), context (N, n, 1 + n_features) -> (click probability (N, n, 1), payment (N, n))."""
        b, q = bids[..., 0], context[..., 0]
        x = position_allocation(b, q, self.slot_ctr.to(b.dtype), self.config.temperature)  # (N, n)
        click = x * q
        price = self.price_fraction(b, q, click, context[..., 1:] if self.config.n_features else None) * b
        return click[..., None], click * price

    def prices(self, bids: Tensor, context: Tensor) -> Tensor:
        """(N, n) price per click of every ad (what it pays if clicked)."""
        b, q = bids[..., 0], context[..., 0]
        click = position_allocation(b, q, self.slot_ctr.to(b.dtype), self.config.temperature) * q
        return self.price_fraction(b, q, click, context[..., 1:] if self.config.n_features else None) * b


@dataclass(frozen=True)
class LearnedPayments:
    """A trained :class:`PaymentNet` as a :class:`~genads.auction.mechanisms.Mechanism`:
    hard ranking by bid × pCTR, per-click prices from the network, capped at the critical bid.

    The critical bid of a winner is the lowest bid that keeps its slot (the next score down over
    its own pCTR, or the reserve: GSP's price). Each winner pays what the network charges it when
    it bids its critical bid (capped at that bid): the price depends on the others' bids and the
    slot, not on its own bid, so raising one's bid cannot raise one's price, however far out of
    the training distribution the bid is (a bid of 1e6 against bids near 1 pays what a bid just
    winning that slot would), and no winner pays more than GSP would charge it.
    """

    net: PaymentNet

    def __call__(self, bids: np.ndarray, quality: np.ndarray, num_slots: int, *,
                 slot_ctr: np.ndarray | None = None, reserve: float = 0.0) -> Allocation:
        bids, quality, _ = _check(bids, quality, num_slots, slot_ctr, reserve)
        if num_slots != len(self.net.config.slot_ctr) or bids.shape[1] != self.net.config.n_bidders:
            raise ValueError(f"the network was trained for n_bidders={self.net.config.n_bidders} and "
                             f"{len(self.net.config.slot_ctr)} slots, got {bids.shape[1]} and num_slots={num_slots}")
        winners, _ = _rank(bids * quality, (bids >= reserve) & (bids > 0), num_slots)
        critical = gsp(bids, quality, num_slots, reserve=reserve).prices  # (B, k); same ranking, same winners
        probe = np.repeat(bids[:, None, :], num_slots, axis=1)  # (B, k, n): row j = the bids with winner j at its
        b, j = np.nonzero(winners >= 0)                         # critical bid (a hair above: ties keep the slot)
        probe[b, j, winners[b, j]] = critical[b, j] * (1 + 1e-6)
        at_critical = self._winner_prices(probe.reshape(-1, bids.shape[1]), np.repeat(quality, num_slots, axis=0),
                                          winners.reshape(-1, 1)).reshape(winners.shape)  # (B*k, n) -> (B, k)
        prices = np.minimum(at_critical, critical)
        prices = np.where(winners >= 0, prices, 0.0)
        return Allocation(winners=winners, prices=np.maximum(prices, np.where(winners >= 0, reserve, 0.0)))

    def _winner_prices(self, bids: np.ndarray, quality: np.ndarray, winners: np.ndarray) -> np.ndarray:
        """(B, k) the network's per-click price of each winner (0 for empty slots), at most its bid."""
        with torch.no_grad():
            t = torch.tensor(bids, dtype=torch.float32)[..., None]
            per_ad = self.net.prices(t, torch.tensor(quality, dtype=torch.float32)[..., None]).double().numpy()
        per_ad = np.minimum(per_ad, bids)  # a saturated sigmoid times float32(bid) can round above the float64 bid
        return np.where(winners >= 0, np.take_along_axis(per_ad, np.maximum(winners, 0), axis=1), 0.0)


@dataclass(frozen=True)
class PaymentTrainConfig:
    iterations: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    rho: float = 1.0
    rho_growth: float = 2.0
    rho_every: int = 500
    rho_max: float = 1000.0
    lambda_every: int = 25
    lambda_init: float = 1.0
    gammas: tuple[float, ...] = EGA_GAMMAS
    """Misreport grid (bid × gamma) for the empirical regret."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "rho_every", "lambda_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not self.gammas or min(self.gammas) < 0:
            raise ValueError(f"gammas={self.gammas} must be non-empty and >= 0")


@dataclass
class PaymentTrainLog:
    iteration: list[int]
    revenue: list[float]
    regret: list[float]


def grid_regret_loss(net: PaymentNet, values: Tensor, context: Tensor, gammas: tuple[float, ...]) -> tuple[Tensor, Tensor]:
    """(mean revenue per auction, mean total regret per auction) on a batch; both differentiable.

    Regret is summed over the ads of an auction so that it is in the same units as revenue: a
    Lagrange multiplier above 1 then outweighs the revenue an overcharge brings."""
    click, pay = net(values, context)
    truthful = click[..., 0] * values[..., 0] - pay  # (B, n)
    g = torch.tensor(gammas, dtype=values.dtype)[:, None, None, None]
    deviated = _own_utility(net, values, g * values[None], context).amax(0)  # (B, n)
    return pay.sum(-1).mean(), (deviated - truthful).clamp_min(0.0).sum(-1).mean()


def train_payment_net(net: PaymentNet, values: Tensor, context: Tensor, cfg: PaymentTrainConfig,
                      log_every: int = 200) -> PaymentTrainLog:
    """Augmented-Lagrangian training on logged auctions: values (T, n, 1), context (T, n, 1 + f)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    lam, rho = cfg.lambda_init, cfg.rho
    log = PaymentTrainLog([], [], [])
    for it in range(cfg.iterations):
        idx = torch.randint(0, values.shape[0], (min(cfg.batch_size, values.shape[0]),), generator=gen)
        revenue, rgt = grid_regret_loss(net, values[idx], context[idx], cfg.gammas)
        loss = -revenue + lam * rgt + 0.5 * rho * rgt**2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % cfg.lambda_every == 0:
            lam += rho * float(rgt.detach())
        if (it + 1) % cfg.rho_every == 0:
            rho = min(rho * cfg.rho_growth, cfg.rho_max)
        if (it + 1) % log_every == 0 or it == cfg.iterations - 1:
            log.iteration.append(it + 1)
            log.revenue.append(float(revenue.detach()))
            log.regret.append(float(rgt.detach()))
    return log


CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
"""A trained payment network's folder (``genads auction train-payments --out DIR``)."""


def load_payment_net(folder: str | Path) -> PaymentNet:
    """The payment network saved in ``folder`` (config.json + model.safetensors, no pickles)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder / CONFIG_FILE} not found: a payment network folder comes from "
                                "`genads auction train-payments --out DIR`")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    net = PaymentNet(config_from_json(meta["payment_net"]))
    net.load_state_dict(load_file(folder / WEIGHTS_FILE))
    return net
