"""Issue 28: each side's creative choice alone, on the same ads, against the creative ceiling.

The verdict in the second world (benchmarks/market.py --config configs/market_world2_verdict.yaml) mixes every
difference between the two sides; this isolates the creative. Per seed, the verdict's world and log; in both markets
the ads are the perfect-pCTR oracle's (true CTR x bid, GSP), and only the creative of each shown ad changes:

* ``random``: a uniform rotation (what the log's previous system did);
* ``bandit``: the cascade's Thompson bandit per (ad, creative), prior from the log's counts, online on its own clicks
  (:class:`genads.market.creative_choice.CascadeCreatives`);
* ``joint_head``: the end-to-end side's creative head, (ad, creative) scored together before the auction
  (:class:`~genads.market.creative_choice.JointCreatives`, fitted on the log);
* ``best_for_everyone``: each ad's creative of highest mean effect over users (known to no model: what a bandit
  converges to with unlimited traffic; the first version of the page world showed it);
* ``oracle_creative``: the truly best creative for each user (:class:`~genads.market.creative_choice.OracleCreatives`).

Figures: RPM, CTR, and the mean true logit lift of the shown creatives over ``best_for_everyone``'s; paired by seed,
mean and 95% t-interval; each row's RPM over ``random``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/market_creatives.py [--seeds 1,...,10] [--name market_creatives]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np

from _common import print_table, save
from genads.commands.simulate import load_config
from genads.market.compare import interval
from genads.market.creative_choice import CascadeCreatives, JointCreatives, OracleCreatives, creative_models
from genads.market.engine import run_episode
from genads.market.value_study import Market, Oracle

ROOT = Path(__file__).resolve().parents[1]
MARKETS = {"budget_bound": 1.0, "unconstrained": 100.0}
ROWS = ("random", "bandit", "joint_head", "best_for_everyone", "oracle_creative")


class RandomCreatives(OracleCreatives):
    """A uniform rotation of each ad's creatives (seeded)."""

    def __init__(self, pipe, world, seed: int) -> None:
        super().__init__(pipe, world)
        self.rng = np.random.default_rng(seed)

    def propose(self, history, live, bids, users):
        return self._propose(history, live, bids, users)

    def creatives(self, history, won, users):
        return self.rng.integers(self.world.n_creatives, size=won.shape)


class Lift:
    """Records the true logit lift (over the default creative) of every shown creative of the wrapped pipeline."""

    needs_users = True

    def __init__(self, pipe, world) -> None:
        self.pipe, self.world, self.name = pipe, world, pipe.name
        self.total, self.count = 0.0, 0

    def propose(self, history, live, bids, users):
        return self.pipe.propose(history, live, bids, users=users)

    def auction(self, bids, quality):
        return self.pipe.auction(bids, quality)

    def creatives(self, history, won, users):
        pick = getattr(self.pipe, "creatives", None)
        c = self.world.default_creative[np.maximum(won, 0)] if pick is None else pick(history, won, users)
        lift = np.take_along_axis(self.world.creative_lift(users, won), c[..., None], 2)[..., 0]
        self.total, self.count = self.total + float(lift[won >= 0].sum()), self.count + int((won >= 0).sum())
        return c

    def observe(self, shown, creatives, clicked):
        if hasattr(self.pipe, "observe"):
            self.pipe.observe(shown, creatives, clicked)


def run_seed(cfg, seed: int, holdout: float) -> dict:
    t0 = time.process_time()
    m = Market(cfg, seed)
    models = creative_models(m, holdout)
    out: dict = {"seed": seed, "head": models["info"], "markets": {}}
    for market, scale in MARKETS.items():
        m.world = replace(m.drawn, budget_rate=m.drawn.budget_rate * scale)
        base = Oracle(m, cfg.cascade.candidates)
        pipes = {"random": RandomCreatives(base, m.world, seed + 17),
                 "bandit": CascadeCreatives(base, models["clicks"], models["shows"], seed + 13),
                 "joint_head": JointCreatives(base, models["head"]),
                 "best_for_everyone": base,
                 "oracle_creative": OracleCreatives(base, m.world)}
        out["markets"][market] = {}
        for name, pipe in pipes.items():
            rec = Lift(pipe, m.world)
            res = run_episode(m.world, rec, m.hist, m.traffic, cfg.bidders, cfg.episode, m.seed)
            out["markets"][market][name] = {"rpm": res["rpm"], "ctr": res["ctr"],
                                            "true_lift": rec.total / max(rec.count, 1)}
    m.world = m.drawn
    out["cpu_seconds"] = time.process_time() - t0
    return out


def summary(per_seed: list[dict]) -> list[dict]:
    rows = []
    for market in MARKETS:
        for name in ROWS:
            get = lambda key, s, n=name, mk=market: s["markets"][mk][n][key]  # noqa: E731
            row = {"market": market, "creatives": name}
            for key in ("rpm", "ctr", "true_lift"):
                row[key], row[f"{key}_low"], row[f"{key}_high"] = interval(np.array([get(key, s) for s in per_seed]))
            row["rpm_over_random"], row["over_random_low"], row["over_random_high"] = interval(np.array(
                [get("rpm", s) / s["markets"][market]["random"]["rpm"] - 1.0 for s in per_seed]))
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "market_world2_verdict.yaml")
    parser.add_argument("--seeds", default="1,2,3,4,5,6,7,8,9,10")
    parser.add_argument("--holdout", type=float, default=0.2, help="the verdict's holdout (the head's L2 choice)")
    parser.add_argument("--name", default="market_creatives")
    args = parser.parse_args()
    cfg = load_config(args.config)
    per_seed = []
    for s in (int(x) for x in args.seeds.split(",")):
        per_seed.append(run_seed(cfg, s, args.holdout))
        print(f"seed {s}: {per_seed[-1]['cpu_seconds']:.1f} CPU s, " + ", ".join(
            f"{n} {per_seed[-1]['markets']['budget_bound'][n]['rpm']:.1f}" for n in ROWS), flush=True)
        table = summary(per_seed) if len(per_seed) > 1 else []
        save(args.name, {"config_file": str(args.config), "per_seed": per_seed, "table": table,
                         "complete": False})
    table = summary(per_seed)
    print_table([{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in table],
                f"Creative choice on the oracle's ads ({len(per_seed)} seeds, mean and 95% t-CI)")
    print("saved", save(args.name, {"config_file": str(args.config), "per_seed": per_seed, "table": table,
                                    "complete": True}))


if __name__ == "__main__":
    main()
