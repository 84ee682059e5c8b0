"""Exact checks: learned mechanisms against known optimal revenues, and a mechanism comparison.

* :func:`run_setting` trains a RegretNet on one classic setting (one item with n U[0,1] bidders,
  whose optimum is Myerson's; or one bidder with two additive U[0,1] items, optimum
  (12 + 2 sqrt 2) / 27 = 0.54920 by Manelli–Vincent) and audits it: revenue on held-out profiles, regret under EGA's grid (a) and
  under gradient ascent with random restarts (b) — a reduced protocol over many profiles and the
  full protocol (1000 restarts x 2000 steps) over a few of them.
* :func:`mechanism_table` compares the pure mechanisms by Monte Carlo revenue.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from genads.auction.mechanisms import MECHANISMS, myerson_revenue_uniform
from genads.auction.regret import FULL_PROTOCOL, AscentConfig, grid_regret, misreport_regret
from genads.auction.regretnet import RegretNet, RegretNetConfig, TrainConfig, sample_values, train_regretnet

MANELLI_VINCENT_1X2 = (12 + 2 * math.sqrt(2)) / 27
"""Optimal revenue, one additive bidder, two U[0,1] items (Manelli & Vincent 2006): each item at
p = 2/3 or the bundle at P = (4 - sqrt 2)/3. With a = P - p, each single item sells on an area
(1 - p) a and the bundle on (1 - a)^2 - (P - 2a)^2 / 2, so the revenue is 2 p (1 - p) a +
P ((1 - a)^2 - 1/9) = (12 + 2 sqrt 2) / 27 = 0.549201. The 0.550 often quoted is RegretNet's rounded
figure (RegretNet itself reports 0.554 at regret 0.00055)."""


@dataclass(frozen=True)
class Setting:
    name: str
    n_bidders: int
    n_items: int
    optimum: float
    quoted: float | None = None
    """The optimum as the issue quotes it, when that differs from the exact value."""


SETTINGS: dict[str, Setting] = {
    **{f"1x{n}": Setting(f"1 item, {n} bidders", n, 1, myerson_revenue_uniform(n)) for n in (2, 3, 4, 5)},
    "2items": Setting("1 bidder, 2 additive items", 1, 2, MANELLI_VINCENT_1X2, quoted=0.550),
}
"""Settings by key; all values U[0,1]."""


BASE_TRAIN = TrainConfig(iterations=5000, rho_every=250, lr=2e-3, misreport_steps=5, decay_after=4000)
"""The benchmark's training schedule (about 40-150 s of one CPU core per setting)."""


@dataclass(frozen=True)
class BenchConfig:
    train: TrainConfig = BASE_TRAIN
    hidden: int = 64
    layers: int = 2
    revenue_profiles: int = 20_000
    audit_profiles: int = 128
    """Profiles audited with the reduced ascent protocol."""
    audit: AscentConfig = field(default_factory=lambda: AscentConfig(restarts=50, steps=300))
    full_profiles: int = 4
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

TUNED: dict[str, BenchConfig] = {
    **{key: BenchConfig() for key in SETTINGS},
    # the gradient-only training adversary underrates these regrets (audit (b) found 2.1e-3 and
    # 1.3e-3): random-restart candidates make the penalty see them
    "1x2": BenchConfig(train=replace(BASE_TRAIN, misreport_restarts=8)),
    # 64 units + restarts met the goal on seed 0 only (seed 1: 97.9%, full-protocol regret 1.1e-3); 128 units
    # + restarts: 100.3% / 100.6% at regret(b) 4e-4 on seeds 1 / 0 (auction_optimality_pilots.json)
    "2items": BenchConfig(hidden=128, train=replace(BASE_TRAIN, misreport_restarts=8)),
    # 64 units cannot pick the top of five bids sharply enough (97.4% of the optimum); with 128 the
    # regret stays low without the restarts, which here only cost revenue (as for 1x3 and 1x4)
    "1x5": BenchConfig(hidden=128),
}
"""Per-setting budgets of the benchmark (pilots in benchmarks/auction_optimality.py's docstring)."""


def bench_config(key: str, quick: bool = False, iterations: int | None = None) -> BenchConfig:
    """The benchmark's config for setting ``key`` (QUICK for all with ``quick``), optionally with
    another number of training iterations (the lr decay keeps its place at 80% of the run)."""
    if key not in SETTINGS:
        raise ValueError(f"unknown setting {key!r}; known: {sorted(SETTINGS)}")
    cfg = QUICK if quick else TUNED[key]
    if iterations:
        decay = None if cfg.train.decay_after is None else int(0.8 * iterations)
        cfg = replace(cfg, train=replace(cfg.train, iterations=iterations, decay_after=decay))
    return cfg


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
    start, cpu = time.perf_counter(), time.process_time()
    grid = grid_regret(net, held, high=net.config.high)
    reduced = misreport_regret(net, held, cfg=replace(cfg.audit, seed=cfg.seed))
    row = {"revenue": revenue, "optimum": setting.optimum, "ratio": revenue / setting.optimum,
           **({} if setting.quoted is None else {"ratio_vs_quoted": revenue / setting.quoted}),
           "grid_regret": grid.mean_regret,
           "ascent_regret": reduced.mean_regret, "ascent_max_regret": reduced.max_regret, "ascent_psi": reduced.psi}
    if cfg.full_profiles:
        few = held[: cfg.full_profiles]
        row["full_regret"] = misreport_regret(net, few, cfg=replace(cfg.full, seed=cfg.seed)).mean_regret
        row["same_profiles_reduced_regret"] = misreport_regret(net, few, cfg=replace(cfg.audit, seed=cfg.seed)).mean_regret
    # revenue net of what the bidders could gain by deviating (a mechanism that is not quite IC can
    # look better than the optimum; this is the figure to judge it by)
    row["net_ratio"] = (revenue - setting.n_bidders * reduced.mean_regret) / setting.optimum
    row["audit_s"], row["audit_cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
    return row


def run_setting(key: str, cfg: BenchConfig) -> dict:
    """Train and audit one setting; one table row."""
    torch.set_num_threads(1)  # small matrices: threads cost more than they give, and settings run in parallel
    setting = SETTINGS[key]
    cpu = time.process_time()
    net, train_s = train_setting(setting, cfg)
    train_cpu_s = time.process_time() - cpu
    row = {"setting": setting.name, **audit(net, setting, cfg), "train_s": train_s, "train_cpu_s": train_cpu_s}
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
