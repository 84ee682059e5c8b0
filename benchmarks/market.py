"""Issue 25: the project's market verdict — the strongest cascade against the best log-trained end-to-end variant.

One script, one JSON (benchmarks/results/NAME.json), the study of :mod:`genads.market.verdict`: tuning seed
(every choice), then per evaluation seed both sides trained on the same splits with the default schedules,
every variant served in the budget-bound and the unconstrained market, the issue's criteria Holm-adjusted over
both markets, each end-to-end fix's measured effect, the ceilings, and the payment rules side by side. The
schedule check (every maximum epoch count doubled, on the tuning seed) is recorded too. The JSON is rewritten
after every seed, so an interrupted run keeps the seeds it finished.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/market.py [--seeds 1,...,10] [--name market]
    .venv/bin/python benchmarks/market.py --config configs/market_tiny.yaml --tiny --seeds 1 --name market_smoke

Superseded: benchmarks/market_compare.py and benchmarks/market_value.py (their JSONs stay as history, see
docs/market.md).
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
import torch

from _common import print_table, save
from genads.commands.simulate import load_config
from genads.market.config import to_dict
from genads.market.verdict import (
    CASCADES,
    FIXES,
    MARKETS,
    ORACLES,
    PAYMENTS,
    aggregate,
    default_verdict,
    run_seed,
    schedule_check,
    tune,
)

ROOT = Path(__file__).resolve().parents[1]


def tiny(vc):
    """Small models for a smoke run on configs/market_tiny.yaml (seconds per seed, not a verdict)."""
    from genads.market.value_demo_step import tiny_study

    par = tiny_study(vc.sim, 0, 1).parallel
    return replace(vc, parallel=replace(par, payments="gsp"), cascade_retrieve=(vc.sim.cascade.retrieve,),
                   cascade_alpha=(1.0,), lcb_z=(0.0, 1.0), relevance_weight=(0.0, 0.5), reserves=(0.5,),
                   slate_requests=20, slate_pool=8)


def fmt(stat: dict, pct: bool = False) -> str:
    if pct:
        return f"{100 * stat['mean']:+.1f}% [{100 * stat['ci95'][0]:+.1f}, {100 * stat['ci95'][1]:+.1f}]"
    return f"{stat['mean']:.4g}"


def tables(summary: dict, choice: dict, per_seed: list[dict]) -> None:
    cas = summary["cascade"]
    train = per_seed[0]["training"]
    rows = [{"model": "SASRec (cascade retrieval)", "validation": "NDCG@10",
             "mean over seeds": float(np.mean([s["training"]["sasrec_valid_ndcg@10"] for s in per_seed]))},
            {"model": "parallel generator (e2e)", "validation": "NDCG@10",
             "mean over seeds": float(np.mean([s["training"]["generator_valid_ndcg@10"] for s in per_seed]))}]
    for key, name in (("din", "DIN (cascade pCTR)"), ("value", "value head (e2e pCTR)"),
                      ("value_eb", "value head, EB-shrunk")):
        for what in ("auc", "logloss"):
            rows.append({"model": name, "validation": f"held-out {what}",
                         "mean over seeds": float(np.mean([s["training"][f"{key}_valid_{what}"] for s in per_seed]))})
    rows.append({"model": "constant pCTR", "validation": "held-out logloss", "mean over seeds":
                 float(np.mean([s["training"]["constant_valid_logloss"] for s in per_seed]))})
    print_table(rows, f"Models on the shared splits ({train['held_out_requests']} held-out requests per seed)")
    for mk in MARKETS:
        v = summary["markets"][mk]["variants"]
        rows = []
        for name in (*CASCADES, *FIXES, *PAYMENTS, *ORACLES):
            r = {"variant": name + (" (the cascade)" if name == cas else ""), "RPM": fmt(v[name]["rpm"]),
                 "gross RPM": fmt(v[name]["gross_rpm"]), "lost RPM": fmt(v[name]["lost_rpm"]),
                 "CTR": fmt(v[name]["ctr"]), "winners' true CTR": fmt(v[name]["winners_true_ctr"]),
                 "user W": fmt(v[name]["user_welfare"]), "adv W/k": fmt(v[name]["advertiser_welfare_per_mille"]),
                 "Ψ": fmt(v[name]["psi"]), "IR viol": fmt(v[name]["ir_violations"]),
                 "overspend": fmt(v[name]["budget_overspend"]),
                 "RPM/oracle": fmt(summary["markets"][mk]["rpm_share_of_oracle"][name])}
            if "lift_vs_cascade" in v[name]["rpm"]:
                r["RPM lift vs cascade"] = fmt(v[name]["rpm"]["lift_vs_cascade"], pct=True)
                r["CTR lift"] = fmt(v[name]["ctr"]["lift_vs_cascade"], pct=True)
            rows.append(r)
        print_table(rows, f"{mk} market: mean over {summary['n_seeds']} seeds; e2e before RL (equal feedback: both "
                          "sides learn from the same logs only); lifts paired by seed [95% CI]")
        print_table([{"fix": k, "RPM lift over e2e": fmt(x["rpm_lift_vs_e2e"], pct=True)}
                     for k, x in summary["markets"][mk]["fix_effects"].items()], f"{mk}: each fix's effect")
    print_table([{"market": t["market"], "claim": t["claim"], "mean": f"{100 * t['mean']:+.2f}%",
                  "Holm CI": f"[{100 * t['ci_holm'][0]:+.2f}, {100 * t['ci_holm'][1]:+.2f}]",
                  "level": round(t["ci_level"], 4), "p": t["p"], "p_holm": t["p_holm"], "rejected": t["rejected"]}
                 for t in summary["criteria"]], "Criteria (Holm over both markets)")
    print_table([{"market": mk, **d} for mk, d in summary["done_when"].items()], "Done-when lines as measured")
    print("choices (tuning seed):", {k: v for k, v in choice.items() if k != "grid"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "market_verdict.yaml")
    parser.add_argument("--slate-config", type=Path, default=ROOT / "configs" / "market_slate.yaml",
                        help="the world whose slate-aware headroom is measured beside the market's ('' = none)")
    parser.add_argument("--name", default="market")
    parser.add_argument("--seeds", default="1,2,3,4,5,6,7,8,9,10")
    parser.add_argument("--tuning-seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="small models and grids (smoke runs, the demo)")
    parser.add_argument("--no-schedule-check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim = load_config(args.config)
    slate = load_config(args.slate_config).world if str(args.slate_config) not in ("", ".") else None
    seeds = tuple(int(s) for s in args.seeds.split(","))
    vc = default_verdict(sim, seeds, args.tuning_seed, slate)
    if args.tiny:
        vc = tiny(vc)
    vc = replace(vc, schedule_check=not args.no_schedule_check)
    start, cpu0 = time.perf_counter(), time.process_time()
    choice, tuned = tune(vc)
    tuning_cpu = time.process_time() - cpu0
    check, check_cpu = None, 0.0
    per_seed: list[dict] = []
    for seed in seeds:
        per_seed.append(run_seed(vc, choice, seed))
        if vc.schedule_check and check is None:  # after the first seed: a cut-short run still has a seed and the check
            c0 = time.process_time()
            check = schedule_check(vc, choice, tuned)
            check_cpu = time.process_time() - c0
            del tuned
        summary = aggregate(per_seed, choice)
        figures = {"summary": summary, "choice": choice, "schedule_check": check, "per_seed": per_seed,
                   "seeds_done": [s["seed"] for s in per_seed], "seeds_planned": list(seeds),
                   "tuning_seed": vc.tuning_seed, "headline": "e2e before RL (equal feedback: both sides learn from "
                   "the same click histories and exploration log; no RL, no simulated interaction on either side)",
                   "payments_note": "e2e_best: GSP; e2e_best_reserve: GSP with the tuned reserve (the audit's Ψ "
                   "prices GSP without the reserve); e2e_best_learned: the payment network on the same ranking",
                   "cpu_seconds_tuning": round(tuning_cpu, 1), "cpu_seconds_schedule_check": round(check_cpu, 1),
                   "cpu_seconds_per_seed": [s["cpu_seconds"] for s in per_seed],
                   "wall_seconds": round(time.perf_counter() - start, 1), "torch_threads": 1,
                   "config_file": str(args.config), "tiny": args.tiny,
                   "config": {"sim": to_dict(vc.sim), "parallel": to_dict(vc.parallel),
                              "grids": {k: list(getattr(vc, k)) for k in ("cascade_retrieve", "cascade_alpha",
                                                                          "shrink", "lcb_z", "relevance_weight",
                                                                          "reserves")},
                              "holdout": vc.holdout, "pacing_eta": vc.pacing_eta,
                              "slate_world": to_dict(vc.slate_world) if vc.slate_world else None}}
        path = save(args.name, figures)
        print(f"seed {seed} done ({per_seed[-1]['cpu_seconds']:.0f} CPU s); wrote {path}", flush=True)
    tables(summary, choice, per_seed)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
