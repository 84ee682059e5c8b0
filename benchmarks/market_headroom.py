"""Issue 28: each effect's oracle headroom in the second world, before any model is tuned to it.

Per seed: one world (configs/market_world2.yaml: creatives encoded by MiniLM, MNL page choice, ad load 0-3,
fatigue, reserves, learning bidders), one episode of traffic, and six oracles (the full one and one blind to
each effect) served in the budget-bound and the unconstrained market (:mod:`genads.market.headroom`). The
table: the full oracle's page value (ad eCPM + organic value) and RPM over each blind oracle's, paired by
seed, mean and 95% t-interval, and whether the headroom is under 2%.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/market_headroom.py [--seeds 1,...,10] [--name market_headroom]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/market_headroom.py --seeds 1,2,3 --name market_headroom_sweep \
        --sweep organic_value=0,0.3,1 --sweep fatigue_same_ad=0.6,0.8,1 --sweep ad_blindness=0,0.02,0.05 \
        --sweep position_eta=0.5,1,1.5 --sweep no_click_logit=-1,0,1 --sweep match_std=0,0.25,0.5 \
        --sweep quality_std=0,0.25,0.5 --plot docs/market_headroom_sweep.png   # the 3 most influential plotted
    .venv/bin/python benchmarks/market_headroom.py --encoder hashing --seeds 1 --sessions 20 --name market_headroom_smoke
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
from genads.market.calibration import calibration_table
from genads.market.config import to_dict
from genads.market.creatives import encoder_for
from genads.market.headroom import headroom_table, interval, load_study, make_traffic2, seed_headroom
from genads.market.world2 import make_world2

ROOT = Path(__file__).resolve().parents[1]
SWEEPABLE = ("organic_value", "fatigue_same_ad", "ad_blindness", "position_eta", "no_click_logit", "match_std",
             "quality_std")


class CachedEncoder:
    """The text encoder with a memory of the texts it has embedded (worlds share most creative texts)."""

    def __init__(self, name: str) -> None:
        here, path = os.path.dirname(os.path.abspath(__file__)), list(sys.path)
        sys.path[:] = [p for p in path if os.path.abspath(p or ".") != here]  # benchmarks/tokenizers.py would
        try:                                                                  # shadow Hugging Face's tokenizers
            self.encoder = encoder_for(name)
        finally:
            sys.path[:] = path
        self.memory: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in texts if t not in self.memory]
        if todo:
            self.memory.update(zip(todo, np.asarray(self.encoder(todo)), strict=True))
        return np.stack([self.memory[t] for t in texts])


def run_seed(world_cfg, extra, study, seed: int, encoder) -> dict:
    t0 = time.process_time()
    w2 = make_world2(world_cfg, extra, np.random.default_rng(seed), encoder)
    traffic = make_traffic2(w2, study, np.random.default_rng(10_000 + seed))
    markets = seed_headroom(w2, traffic, study, seed)
    return {"seed": seed, "markets": markets, "cpu_seconds": time.process_time() - t0,
            "requests": int(traffic.users.size * extra.session_len)}


def with_value(extra, name: str, value: float):
    if name in ("match_std", "quality_std"):
        return replace(extra, creatives=replace(extra.creatives, **{name: value}))
    return replace(extra, **{name: value})


def sweep(world_cfg, extra, study, seeds, specs: list[str], encoder, on_point=None) -> dict:
    """Headroom tables over each ``NAME=v1,v2,...`` of ``specs``; ``on_point(result so far)`` after every value."""
    out: dict = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in SWEEPABLE:
            raise SystemExit(f"--sweep {spec}: {name!r} is not one of {list(SWEEPABLE)}")
        out[name] = []
        for v in (float(x) for x in values.split(",")):
            per_seed = [run_seed(world_cfg, with_value(extra, name, v), study, s, encoder) for s in seeds]
            out[name].append({"value": v, "table": headroom_table(per_seed),
                              "cpu_seconds": sum(p["cpu_seconds"] for p in per_seed)})
            print(f"{name}={v}: " + ", ".join(f"{r['market'][:6]}/{r['effect']} {100 * r['headroom']:+.1f}%"
                                              for r in out[name][-1]["table"]), flush=True)
            if on_point:
                on_point(out)
    return out


def influence(result: dict) -> dict[str, float]:
    """Per swept parameter: the widest range (max - min over its values) of any effect's headroom in any market."""
    out = {}
    for name, points in result.items():
        spans = []
        for r0 in points[0]["table"]:
            ys = [next(r["headroom"] for r in p["table"] if (r["market"], r["effect"]) == (r0["market"], r0["effect"]))
                  for p in points]
            spans.append(max(ys) - min(ys))
        out[name] = float(max(spans))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def plot_sweep(result: dict, path: Path, top: int = 3) -> None:
    """The ``top`` most influential parameters' sweeps, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(influence(result))[:top]
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        points = result[name]
        xs = np.array([p["value"] for p in points])
        for row, market in enumerate(("budget_bound", "unconstrained")):
            ax = axes[row][col]
            for i, effect in enumerate(("creative", "slate", "ad_load", "fatigue", "budget")):
                rows = [next(r for r in p["table"] if r["market"] == market and r["effect"] == effect) for p in points]
                ys = np.array([100 * r["headroom"] for r in rows])
                err = np.array([[100 * (r["headroom"] - r["ci_low"]), 100 * (r["ci_high"] - r["headroom"])]
                                for r in rows]).T
                ax.errorbar(xs + 0.01 * (i - 2) * np.ptp(xs), ys, yerr=err, color=f"C{i}", marker="o", capsize=2,
                            lw=1.2, elinewidth=0.6, label=effect)
            ax.axhline(2.0, color="grey", lw=0.8, ls=":")
            ax.set_xlabel(name)
            ax.set_ylabel("oracle headroom, % of page value")
            ax.set_title(f"{market}: headroom vs {name}", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "market_world2.yaml")
    parser.add_argument("--seeds", default=None, help="comma-separated (default: the config's headroom.seeds)")
    parser.add_argument("--name", default="market_headroom")
    parser.add_argument("--encoder", choices=("minilm", "hashing"), default=None, help="override the config's")
    parser.add_argument("--sessions", type=int, default=None, help="override sessions per wave (smoke runs)")
    parser.add_argument("--sweep", action="append", default=[], help="NAME=v1,v2,... (repeatable)")
    parser.add_argument("--plot", type=Path, default=None, help="where the sweep's figure goes")
    args = parser.parse_args()
    world_cfg, extra, study = load_study(args.config)
    if args.encoder:
        extra = replace(extra, creatives=replace(extra.creatives, encoder=args.encoder))
    if args.sessions:
        study = replace(study, sessions=args.sessions)
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else study.seeds
    encoder = CachedEncoder(extra.creatives.encoder)
    config = {"world": to_dict(world_cfg), "world2": to_dict(extra), "headroom": to_dict(study) | {"seeds": seeds}}
    calibration = calibration_table(world_cfg, extra, replace(study, seeds=seeds))  # every parameter's source
    if args.sweep:
        result = sweep(world_cfg, extra, study, seeds, args.sweep, encoder,  # saved after every point
                       on_point=lambda r: save(args.name, {"config": config, "calibration": calibration,
                                                           "sweep": r, "complete": False}))
        if args.plot:
            plot_sweep(result, args.plot)
        print("influence (widest headroom range):", influence(result))
        print("saved", save(args.name, {"config": config, "calibration": calibration, "sweep": result, "influence": influence(result),
                                        "plot": str(args.plot or ""), "complete": True}))
        return
    per_seed = []
    for s in seeds:
        per_seed.append(run_seed(world_cfg, extra, study, s, encoder))
        print(f"seed {s}: {per_seed[-1]['cpu_seconds']:.1f} CPU s", flush=True)
    table = headroom_table(per_seed)
    levels = [{"market": m, "variant": v, **{k: interval([p["markets"][m][v][k] for p in per_seed])[0]
                                             for k in ("objective_per_mille", "rpm", "ad_ctr", "mean_ad_load")}}
              for m in per_seed[0]["markets"] for v in per_seed[0]["markets"][m]]
    print_table(levels, "Oracle levels (mean over seeds)")
    print_table([{k: r[k] for k in ("market", "effect", "headroom", "ci_low", "ci_high", "rpm_headroom",
                                    "under_2pct", "ci_under_2pct")} for r in table],
                f"Oracle headroom (full over blind, paired, {len(per_seed)} seeds, 95% t-CI)")
    cpu = [p["cpu_seconds"] for p in per_seed]
    print(f"per-seed CPU seconds: mean {np.mean(cpu):.1f}, max {np.max(cpu):.1f}")
    print("saved", save(args.name, {"config": config, "calibration": calibration, "table": table, "levels": levels, "per_seed": per_seed,
                                    "per_seed_cpu_seconds": {"mean": float(np.mean(cpu)), "max": float(np.max(cpu))}}))


if __name__ == "__main__":
    main()
