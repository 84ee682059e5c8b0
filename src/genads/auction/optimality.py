"""Exact checks: learned mechanisms against known optimal revenues, and a mechanism comparison.

* :func:`run_setting` trains a RegretNet on one classic setting (one item with n U[0,1] bidders,
  whose optimum is Myerson's; or one bidder with two additive U[0,1] items, optimum 0.5492 by
  Manelli–Vincent) and audits it: revenue on held-out profiles, regret under EGA's grid (a) and
  under gradient ascent with random restarts (b) — a reduced protocol over many profiles and the
  full protocol (1000 restarts x 2000 steps) over a few of them.
* :func:`mechanism_table` compares the pure mechanisms by Monte Carlo revenue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from genads.auction.mechanisms import MECHANISMS, myerson_revenue_uniform
from genads.auction.regret import FULL_PROTOCOL, AscentConfig, grid_regret, misreport_regret
from genads.auction.regretnet import RegretNet, RegretNetConfig, TrainConfig, sample_values, train_regretnet

MANELLI_VINCENT_1X2 = 0.5492
"""Optimal revenue, one additive bidder, two U[0,1] items (Manelli & Vincent 2006): each item at 2/3
or the bundle at (4 - sqrt(2))/3. Issue 5 quotes 0.550; RegretNet reports 0.554 at regret < 0.001."""


@dataclass(frozen=True)
class Setting:
    name: str
    n_bidders: int
    n_items: int
    optimum: float


SETTINGS: dict[str, Setting] = {
    **{f"1x{n}": Setting(f"1 item, {n} bidders", n, 1, myerson_revenue_uniform(n)) for n in (2, 3, 4, 5)},
    "2items": Setting("1 bidder, 2 additive items", 1, 2, MANELLI_VINCENT_1X2),
}
"""Settings by key; all values U[0,1]."""


@dataclass(frozen=True)
class BenchConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(iterations=5000, rho_every=250, lr=2e-3,
                                                                   misreport_steps=5, decay_after=4000))
    hidden: int = 64
    layers: int = 2
    revenue_profiles: int = 20_000
    audit_profiles: int = 64
    """Profiles audited with the reduced ascent protocol."""
    audit: AscentConfig = field(default_factory=lambda: AscentConfig(restarts=50, steps=300))
    full_profiles: int = 2
    """Profiles (the first of the audit set) also audited with the full protocol; 0 to skip."""
    full: AscentConfig = FULL_PROTOCOL
    seed: int = 0

    def __post_init__(self) -> None:
        if self.audit_profiles < 1 or self.revenue_profiles < 1:
            raise ValueError("audit_profiles and revenue_profiles must be >= 1")
        if not 0 <= self.full_profiles <= self.audit_profiles:
            raise ValueError(f"need 0 <= full_profiles={self.full_profiles} <= audit_profiles={self.audit_profiles}")


QUICK = BenchConfig(train=TrainConfig(iterations=300, rho_every=100, train_size=4096), hidden=32,
                    revenue_profiles=4000, audit_profiles=16, audit=AscentConfig(restarts=20, steps=50),
                    full_profiles=0)
"""A run of a few seconds per setting: shows the machinery, not the optimum."""


def train_setting(setting: Setting, cfg: BenchConfig) -> tuple[RegretNet, float]:
    """A RegretNet trained on ``setting``; returns (net, training seconds)."""
    torch.manual_seed(cfg.seed)
    net = RegretNet(RegretNetConfig(n_bidders=setting.n_bidders, n_items=setting.n_items,
                                    hidden=cfg.hidden, layers=cfg.layers))
    start = time.perf_counter()
    train_regretnet(net, replace(cfg.train, seed=cfg.seed), log_every=cfg.train.iterations)
    return net, time.perf_counter() - start


def audit(net: RegretNet, setting: Setting, cfg: BenchConfig) -> dict[str, float]:
    """Revenue and regret of a trained net on held-out profiles (seeded apart from training)."""
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    values = sample_values(net.config, cfg.revenue_profiles, gen)
    with torch.no_grad():
        revenue = float(net(values)[1].sum(-1).mean())
    held = values[: cfg.audit_profiles]
    start = time.perf_counter()
    grid = grid_regret(net, held, high=net.config.high)
    reduced = misreport_regret(net, held, cfg=replace(cfg.audit, seed=cfg.seed))
    row = {"revenue": revenue, "optimum": setting.optimum, "ratio": revenue / setting.optimum,
           "grid_regret": grid.mean_regret,
           "ascent_regret": reduced.mean_regret, "ascent_max_regret": reduced.max_regret, "ascent_psi": reduced.psi}
    if cfg.full_profiles:
        few = held[: cfg.full_profiles]
        row["full_regret"] = misreport_regret(net, few, cfg=replace(cfg.full, seed=cfg.seed)).mean_regret
        row["same_profiles_reduced_regret"] = misreport_regret(net, few, cfg=replace(cfg.audit, seed=cfg.seed)).mean_regret
    row["audit_s"] = time.perf_counter() - start
    return row


def run_setting(key: str, cfg: BenchConfig) -> dict:
    """Train and audit one setting; one table row."""
    torch.set_num_threads(1)  # small matrices: threads cost more than they give, and settings run in parallel
    setting = SETTINGS[key]
    net, train_s = train_setting(setting, cfg)
    row = {"setting": setting.name, **audit(net, setting, cfg), "train_s": train_s}
    row["goal_met"] = bool(row["ratio"] >= 0.99 and row["ascent_regret"] <= 1e-3
                           and row.get("full_regret", 0.0) <= 1e-3)
    return row


def mechanism_table(profiles: int = 100_000, seed: int = 0) -> list[dict]:
    """Monte Carlo revenue of the pure mechanisms: one item, n U[0,1] bidders, plus 3-slot position
    auctions (slot CTRs 1, 0.6, 0.3; pCTRs U[0.02, 0.1]) where GSP earns at least VCG."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2, 3, 4, 5):
        values = rng.random((profiles, n))
        one = np.ones_like(values)
        row = {"setting": f"1 item, {n} bidders", "myerson_exact": myerson_revenue_uniform(n)}
        for name in ("second_price", "vcg", "gsp", "myerson_uniform"):
            row[name] = float(MECHANISMS[name](values, one, 1).revenue(one, np.ones(1)).mean())
        rows.append(row)
    ctr = np.array([1.0, 0.6, 0.3])
    for n in (4, 8):
        values, quality = rng.random((profiles, n)), rng.uniform(0.02, 0.1, (profiles, n))
        row = {"setting": f"3 slots, {n} bidders (per 1000 requests)"}
        for name in ("vcg", "gsp"):
            row[name] = 1000 * float(MECHANISMS[name](values, quality, 3, slot_ctr=ctr).revenue(quality, ctr).mean())
        rows.append(row)
    return rows
