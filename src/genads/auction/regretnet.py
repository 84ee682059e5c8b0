"""RegretNet (Dütting et al., 2019): allocation and payment learned jointly by regret minimisation.

For n additive bidders and m items with values in [low, high]: an MLP over all bids outputs, per
item, a softmax over the n bidders plus a dummy "keep the item" option (so items may go unsold),
and per bidder a fraction ``sigmoid(.)`` of the value of its bundle at its *reported* bids as its
payment, which makes every payment individually rational. Training maximises revenue under the
constraint "ex-post regret = 0" with the augmented Lagrangian

    L = -revenue + sum_i lambda_i * rgt_i + rho / 2 * sum_i rgt_i^2,
    lambda_i <- lambda_i + rho * rgt_i  (every ``lambda_every`` steps),

where rgt_i is bidder i's mean regret over the batch, found by a few gradient steps on misreports
that persist per training profile between visits (as in the paper).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genads.auction.regret import _own_utility


@dataclass(frozen=True)
class RegretNetConfig:
    n_bidders: int
    n_items: int = 1
    hidden: int = 100
    """Units per hidden layer."""
    layers: int = 2
    activation: str = "relu"
    """"relu" or "tanh" (the paper's; about 100x slower on CPU in torch 2.13)."""
    low: float = 0.0
    """Values are U[low, high] for every bidder and item."""
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.n_bidders < 1 or self.n_items < 1:
            raise ValueError(f"need n_bidders={self.n_bidders} >= 1 and n_items={self.n_items} >= 1")
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"need hidden={self.hidden} >= 1 and layers={self.layers} >= 1")
        if not self.high > self.low:
            raise ValueError(f"need high={self.high} > low={self.low}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} must be one of {sorted(ACTIVATIONS)}")


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 3000
    batch_size: int = 256
    train_size: int = 32_768
    """Training profiles; each keeps its own misreports between visits."""
    lr: float = 1e-3
    misreport_steps: int = 10
    """Inner gradient steps on the misreports of each batch."""
    misreport_lr: float = 0.1
    misreport_restarts: int = 0
    """Fresh random misreports per bidder tried (forward only) at each visit before the gradient
    steps; the best replaces the persisted one when it does better (a stronger inner adversary:
    gradient steps alone stay stuck on a local optimum across the mechanism's steep steps)."""
    rho: float = 1.0
    """Initial quadratic penalty weight."""
    rho_growth: float = 2.0
    rho_every: int = 1000
    """Multiply rho by rho_growth every this many iterations."""
    rho_max: float = 1000.0
    lambda_every: int = 25
    """Dual update lambda <- lambda + rho * rgt every this many iterations."""
    lambda_init: float = 1.0
    decay_after: int | None = None
    """From this iteration on, train with lr / 10 (settles the revenue/regret trade-off)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.misreport_restarts < 0 or self.misreport_steps < 0:
            raise ValueError(f"need misreport_restarts={self.misreport_restarts} >= 0 and "
                             f"misreport_steps={self.misreport_steps} >= 0")
        for name in ("iterations", "batch_size", "train_size", "rho_every", "lambda_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch_size={self.batch_size} must be <= train_size={self.train_size}")
        if self.rho <= 0 or self.lr <= 0:
            raise ValueError(f"need rho={self.rho} > 0 and lr={self.lr} > 0")


class RegretNet(nn.Module):
    def __init__(self, config: RegretNetConfig) -> None:
        super().__init__()
        self.config = config
        n, m, h = config.n_bidders, config.n_items, config.hidden
        dims = [n * m] + [h] * config.layers
        self.body = nn.Sequential(*[layer for a, b in itertools.pairwise(dims)
                                    for layer in (nn.Linear(a, b), ACTIVATIONS[config.activation]())])
        self.alloc_head = nn.Linear(h, (n + 1) * m)
        self.pay_head = nn.Linear(h, n)

    def forward(self, bids: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """bids (N, n, m) -> (allocation (N, n, m) with sum over bidders <= 1, payment (N, n))."""
        n, m = self.config.n_bidders, self.config.n_items
        scaled = (bids - self.config.low) / (self.config.high - self.config.low)
        h = self.body(scaled.reshape(bids.shape[0], n * m))  # (N, H)
        logits = self.alloc_head(h).reshape(-1, n + 1, m)  # (N, n+1, m): the extra row is "unsold"
        alloc = torch.softmax(logits, dim=1)[:, :n]  # (N, n, m)
        frac = torch.sigmoid(self.pay_head(h))  # (N, n)
        return alloc, frac * (alloc * bids).sum(-1)


@dataclass
class TrainLog:
    iteration: list[int]
    revenue: list[float]
    regret: list[float]
    rho: list[float]


def sample_values(config: RegretNetConfig, size: int, gen: torch.Generator) -> Tensor:
    """(size, n, m) i.i.d. U[low, high] values."""
    u = torch.rand((size, config.n_bidders, config.n_items), generator=gen)
    return config.low + (config.high - config.low) * u


def _improve_misreports(net: RegretNet, values: Tensor, mis: Tensor, cfg: TrainConfig,
                        gen: torch.Generator) -> Tensor:
    """Random restarts, then a few projected gradient-ascent steps on each bidder's misreport;
    (B, n, m) -> (B, n, m)."""
    if cfg.misreport_restarts:
        with torch.no_grad():
            fresh = sample_values(net.config, cfg.misreport_restarts * values.shape[0], gen)
            cand = torch.cat([mis[None], fresh.reshape(-1, *values.shape)])  # (1 + K, B, n, m)
            best = _own_utility(net, values, cand, None).argmax(0)  # (B, n)
            mis = torch.gather(cand, 0, best[None, :, :, None].expand(1, *mis.shape))[0]
    mis = mis.clone().requires_grad_(True)
    for _ in range(cfg.misreport_steps):
        u = _own_utility(net, values, mis[None], None)  # (1, B, n)
        (grad,) = torch.autograd.grad(u.sum(), mis)
        with torch.no_grad():
            mis += cfg.misreport_lr * grad
            mis.clamp_(net.config.low, net.config.high)
    return mis.detach()


def train_regretnet(net: RegretNet, cfg: TrainConfig, log_every: int = 500) -> TrainLog:
    """Augmented-Lagrangian training on ``cfg.train_size`` seeded U[low, high] profiles."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    values = sample_values(net.config, cfg.train_size, gen)
    misreports = sample_values(net.config, cfg.train_size, gen)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    lam = torch.full((net.config.n_bidders,), cfg.lambda_init)
    rho = cfg.rho
    log = TrainLog([], [], [], [])
    for it in range(cfg.iterations):
        if cfg.decay_after is not None and it == cfg.decay_after:
            for group in opt.param_groups:
                group["lr"] = cfg.lr / 10
        idx = torch.randint(0, cfg.train_size, (cfg.batch_size,), generator=gen)
        v = values[idx]
        for p in net.parameters():
            p.requires_grad_(False)
        misreports[idx] = _improve_misreports(net, v, misreports[idx], cfg, gen)
        for p in net.parameters():
            p.requires_grad_(True)
        alloc, pay = net(v)
        truthful = (alloc * v).sum(-1) - pay  # (B, n)
        deviated = _own_utility(net, v, misreports[idx][None], None)[0]  # (B, n)
        rgt = (deviated - truthful).clamp_min(0.0).mean(0)  # (n,)
        revenue = pay.sum(-1).mean()
        loss = -revenue + (lam * rgt).sum() + 0.5 * rho * (rgt**2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % cfg.lambda_every == 0:
            lam = lam + rho * rgt.detach()
        if (it + 1) % cfg.rho_every == 0:
            rho = min(rho * cfg.rho_growth, cfg.rho_max)
        if (it + 1) % log_every == 0 or it == cfg.iterations - 1:
            log.iteration.append(it + 1)
            log.revenue.append(float(revenue.detach()))
            log.regret.append(float(rgt.detach().mean()))
            log.rho.append(rho)
    return log
