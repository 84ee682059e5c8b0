"""Ex-post regret of a (learned) mechanism: how much a bidder gains by misreporting.

A *differentiable mechanism* maps bids ``(N, n, m)`` (N profiles, n bidders, m items; m = 1 for
per-click ad auctions) and an optional per-bidder context ``(N, n, c)`` to an allocation
``(N, n, m)`` and expected payments ``(N, n)``. Bidder i's utility at true values v is
``sum_m alloc[i, m] * v[i, m] - pay[i]``; its ex-post regret at a profile is the best utility gain
of any misreport of its own bids, the others reporting truthfully.

Two estimators, both lower bounds of the true regret (stronger search -> larger, truer values):

* :func:`grid_regret` — EGA's grid: misreports ``gamma * v_i``, gamma in {0.2, 0.3, ..., 2.0}.
* :func:`misreport_regret` — gradient ascent on misreports from many random starting points
  (projected onto the value domain), keeping the best utility seen (a mechanism whose output has
  no gradient, such as a wrapped pure mechanism, is searched by the random restarts alone); the full protocol is
  1000 restarts x 2000 steps (:data:`FULL_PROTOCOL`). All restarts, bidders and profiles run as one
  batch of tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

DifferentiableMechanism = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]
"""(bids (N, n, m), context (N, n, c) | None) -> (allocation (N, n, m), payment (N, n))."""

EGA_GAMMAS: tuple[float, ...] = tuple(round(0.2 + 0.1 * i, 1) for i in range(19))
"""EGA's misreport grid: bid x gamma, gamma in {0.2, 0.3, ..., 2.0}."""


@dataclass(frozen=True)
class AscentConfig:
    """Gradient ascent on misreports (estimator b)."""

    restarts: int = 1000
    """Random starting misreports per bidder and profile."""
    steps: int = 2000
    lr: float = 0.01
    """Adam step size (in value units)."""
    low: float = 0.0
    """Value domain: misreports are projected onto [low, high] (None = no upper bound)."""
    high: float | None = 1.0
    chunk: int = 65_536
    """Largest number of misreported profiles evaluated at once (memory bound)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.restarts < 1 or self.steps < 0:
            raise ValueError(f"need restarts={self.restarts} >= 1 and steps={self.steps} >= 0")
        if self.high is not None and not self.high > self.low:
            raise ValueError(f"need high={self.high} > low={self.low}")
        if self.chunk < 1:
            raise ValueError(f"chunk={self.chunk} must be >= 1")


FULL_PROTOCOL = AscentConfig(restarts=1000, steps=2000)


@dataclass(frozen=True)
class RegretStats:
    """Regret over a set of profiles; per-bidder figures are averaged over bidders and profiles."""

    mean_regret: float
    max_regret: float
    mean_utility: float
    """Mean truthful utility per bidder."""
    psi: float
    """EGA's regret ratio: total regret / total truthful utility."""
    revenue: float
    """Mean revenue per profile under truthful bids."""

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def utilities(mech: DifferentiableMechanism, bids: Tensor, values: Tensor, context: Tensor | None) -> Tensor:
    """(N, n) utility of every bidder at true ``values`` when the reports are ``bids`` (N, n, m)."""
    alloc, pay = mech(bids, context)
    return (alloc * values).sum(-1) - pay


def swap_in(values: Tensor, misreports: Tensor) -> Tensor:
    """Profiles where bidder i alone reports ``misreports[..., i, :]``.

    ``values`` (B, n, m), ``misreports`` (R, B, n, m) -> (R, n, B, n, m): entry [r, i] is the
    profile with bidder i's row replaced by its r-th misreport.
    """
    n = values.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=values.device)[:, None, :, None]  # (n_i, 1, n_j, 1)
    own = misreports.permute(0, 2, 1, 3)[:, :, :, None, :]  # (R, n_i, B, 1, m)
    return torch.where(eye, own, values[None, None])  # (R, n_i, B, n_j, m)


def _own_utility(mech: DifferentiableMechanism, values: Tensor, misreports: Tensor, context: Tensor | None) -> Tensor:
    """(R, B, n): bidder i's utility when it alone reports ``misreports[r, b, i]``."""
    r, b, n, m = misreports.shape
    profiles = swap_in(values, misreports).reshape(r * n * b, n, m)
    ctx = None if context is None else context[None, None].expand(r, n, *context.shape).reshape(r * n * b, n, -1)
    truth = values[None, None].expand(r, n, b, n, m).reshape(r * n * b, n, m)
    u = utilities(mech, profiles, truth, ctx).reshape(r, n, b, n)
    return torch.diagonal(u, dim1=1, dim2=3)  # (R, B, n)


def _stats(mech: DifferentiableMechanism, values: Tensor, context: Tensor | None, best: Tensor) -> RegretStats:
    with torch.no_grad():
        alloc, pay = mech(values, context)
        truthful = (alloc * values).sum(-1) - pay  # (B, n)
        regret = (best - truthful).clamp_min(0.0)
        return RegretStats(mean_regret=float(regret.mean()), max_regret=float(regret.max()),
                           mean_utility=float(truthful.mean()),
                           psi=float(regret.sum() / truthful.sum().clamp_min(1e-12)),
                           revenue=float(pay.sum(-1).mean()))


def grid_regret(mech: DifferentiableMechanism, values: Tensor, context: Tensor | None = None,
                gammas: tuple[float, ...] = EGA_GAMMAS, high: float | None = None) -> RegretStats:
    """Estimator (a): the best of the misreports ``gamma * v_i`` for every bidder i (clipped to
    ``high`` when the mechanism is only defined on a bounded value domain)."""
    with torch.no_grad():
        g = torch.tensor(gammas, dtype=values.dtype, device=values.device)[:, None, None, None]
        mis = (g * values[None]).clamp(max=high) if high is not None else g * values[None]
        best = _own_utility(mech, values, mis, context).amax(0)  # (B, n)
    return _stats(mech, values, context, best)


def _ascend_chunk(mech: DifferentiableMechanism, values: Tensor, context: Tensor | None, cfg: AscentConfig,
                  gen: torch.Generator) -> Tensor:
    """Best misreport utility (B, n) for one chunk of profiles."""
    b, n, m = values.shape
    high = 1.0 if cfg.high is None else cfg.high
    start = torch.rand((cfg.restarts, b, n, m), generator=gen, dtype=values.dtype)
    mis = (cfg.low + (high - cfg.low) * start).requires_grad_(True)
    opt = torch.optim.Adam([mis], lr=cfg.lr)
    best = torch.full((b, n), -torch.inf, dtype=values.dtype)
    for step in range(cfg.steps + 1):
        u = _own_utility(mech, values, mis, context)  # (R, B, n)
        best = torch.maximum(best, u.detach().amax(0))
        if step == cfg.steps or not u.requires_grad:  # no gradient (a pure mechanism): restarts only
            break
        opt.zero_grad(set_to_none=True)
        (-u.sum()).backward()
        opt.step()
        with torch.no_grad():
            mis.clamp_(min=cfg.low, max=cfg.high)
    return best


def misreport_regret(mech: DifferentiableMechanism, values: Tensor, context: Tensor | None = None,
                     cfg: AscentConfig = FULL_PROTOCOL) -> RegretStats:
    """Estimator (b): projected gradient ascent from ``cfg.restarts`` random misreports per bidder.

    Args:
        mech: the mechanism; its parameters are frozen for the search.
        values: (B, n, m) true values (the profiles to audit).
        context: optional (B, n, c) per-bidder context passed through to ``mech``.
        cfg: restarts, steps, step size, value domain, chunking and seed.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in getattr(mech, "parameters", list)() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        per_chunk = max(1, cfg.chunk // (cfg.restarts * values.shape[1]))
        best = torch.cat([
            _ascend_chunk(mech, values[s : s + per_chunk],
                          None if context is None else context[s : s + per_chunk], cfg, gen)
            for s in range(0, values.shape[0], per_chunk)
        ])
    finally:
        for p in params:
            p.requires_grad_(True)
    return _stats(mech, values, context, best)


def regret_report(mech: DifferentiableMechanism, values: Tensor, context: Tensor | None = None,
                  cfg: AscentConfig = FULL_PROTOCOL) -> dict[str, float]:
    """Both estimators side by side: ``grid_*`` (a) and ``ascent_*`` (b) keys."""
    grid = grid_regret(mech, values, context, high=cfg.high).as_dict()
    ascent = misreport_regret(mech, values, context, cfg).as_dict()
    return {**{f"grid_{k}": v for k, v in grid.items()}, **{f"ascent_{k}": v for k, v in ascent.items()}}
