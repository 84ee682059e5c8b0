"""Issue 25: the project's market verdict — the strongest cascade against the best log-trained end-to-end variant.

One script, one JSON (benchmarks/results/NAME.json), the study of :mod:`genads.market.verdict`: tuning seed
(every choice), then per evaluation seed both sides trained on the same splits with the default schedules,
every variant served in the budget-bound and the unconstrained market, the issue's criteria Holm-adjusted over
both markets, each end-to-end fix's measured effect, the ceilings, and the payment rules side by side. The
schedule check (every maximum epoch count doubled, on the tuning seed) is recorded too. The JSON is rewritten
after every seed, so an interrupted run keeps the seeds it finished.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python benchmarks/market.py [--seeds 1,...,10] [--name market]
    .venv/bin/python benchmarks/market.py --config configs/market_tiny.yaml --tiny --seeds 1 --name market_smoke
    .venv/bin/python benchmarks/market.py --schedule-seeds 1,2,3,4 --name market_schedule   # the check on more seeds
    .venv/bin/python benchmarks/market.py --summarise-from benchmarks/results/market.json --name market  # re-aggregate
    .venv/bin/python benchmarks/market.py --seeds 1,...,10 --name market --resume-from benchmarks/results/market.json
    .venv/bin/python benchmarks/market.py --ceilings-only 0.02,0.05,0.1,0.2,0.5 --name market_ceilings  # tuned pacing

Superseded: benchmarks/market_compare.py and benchmarks/market_value.py (their JSONs stay as history, see
docs/market.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch

from _common import RESULTS, git_sha, print_table, save
from genads.commands.simulate import load_config
from genads.market.config import to_dict
from genads.market.verdict import MARKETS, default_verdict, tiny_verdict
from genads.market.verdict_report import (
    criteria_rows,
    done_rows,
    fix_rows,
    headroom_rows,
    model_rows,
    variant_rows,
)
from genads.market.verdict_study import aggregate, ceilings, run_verdict, schedule_study

ROOT = Path(__file__).resolve().parents[1]


def tables(result: dict) -> None:
    summary = result["summary"]
    print_table(model_rows(result["per_seed"]), "Models on the shared splits (validation figures, mean over seeds)")
    for mk in MARKETS:
        print_table(variant_rows(summary, mk), f"{mk} market: mean over {summary['n_seeds']} seeds; e2e before RL "
                    "(equal feedback: both sides learn from the same logs only); lifts paired by seed [95% CI]")
    print_table(fix_rows(summary), "Each end-to-end fix's effect over the plain value head")
    print_table(criteria_rows(summary), "Criteria (Holm over both markets)")
    print_table(done_rows(summary), "Done-when lines as measured")
    print_table(headroom_rows(result["per_seed"]), "Slate-aware headroom")
    if result["schedule_check"]:
        print("schedule check:", {k: v for k, v in result["schedule_check"].items() if not k.startswith("training")})
    print("choices (tuning seed):", {k: v for k, v in result["choice"].items() if k != "grid"})
    print("equal feedback: the headline is the e2e before RL; no RL row (no cascade retrained on the same number of "
          "impressions from its own policy)")


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
    parser.add_argument("--schedule-seeds", default="", help="only the schedule check, on these seeds, with the "
                        "choices of --choice-from (a verdict JSON): writes NAME.json with each seed's RPM change")
    parser.add_argument("--choice-from", type=Path, default=RESULTS / "market.json")
    parser.add_argument("--summarise-from", type=Path, default=None,
                        help="recompute the summary of a verdict JSON's per-seed figures with this code (no run)")
    parser.add_argument("--resume-from", type=Path, default=None,
                        help="continue a verdict JSON of this same commit that was cut short: keep its choices, "
                        "schedule check and finished seeds, run the --seeds it lacks")
    parser.add_argument("--ceilings-only", default="", help="only the ceilings (no training): the paced oracle's "
                        "step tuned on the tuning seed over these comma-separated values, then both oracles on --seeds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim = load_config(args.config)
    slate = load_config(args.slate_config).world if str(args.slate_config) not in ("", ".") else None
    vc = default_verdict(sim, tuple(int(s) for s in args.seeds.split(",")), args.tuning_seed, slate)
    if args.tiny:
        vc = tiny_verdict(vc)
    vc = replace(vc, schedule_check=not args.no_schedule_check)
    start = time.perf_counter()
    if args.summarise_from:
        record = json.loads(args.summarise_from.read_text())
        figures = record["figures"]
        figures["summary"] = aggregate(figures["per_seed"], figures["choice"])
        figures["per_seed_from"] = {"path": str(args.summarise_from), "git_sha": record["git_sha"],
                                    "started": record["started"], "command": record["command"],
                                    "cpu_seconds": record["cpu_seconds"]}
        print(f"wrote {save(args.name, figures)}")
        tables(figures)
        return
    if args.ceilings_only:
        meta = {"config_file": str(args.config), "tiny": args.tiny, "tuning_seed": vc.tuning_seed}
        out = ceilings(vc, vc.seeds, tuple(float(e) for e in args.ceilings_only.split(",")),
                       on_seed=lambda r: print(f"wrote {save(args.name, {**r, **meta})}", flush=True))
        print("ceilings:", out["eta"], out["summary"])
        return
    if args.schedule_seeds:
        record = json.loads(args.choice_from.read_text())
        choice = record["figures"]["choice"]
        source = {"choice_from": str(args.choice_from), "choice_from_git_sha": record["git_sha"],
                  "config_file": str(args.config), "tiny": args.tiny}

        def saved(result: dict) -> None:
            print(f"wrote {save(args.name, {**result, **source, 'choice': choice})}", flush=True)

        out = schedule_study(vc, choice, tuple(int(s) for s in args.schedule_seeds.split(",")), on_seed=saved)
        print("schedule study (mean RPM change of doubling every maximum epoch count [95% CI]):", out["change"])
        return
    extra = {"headline": "e2e before RL (equal feedback: both sides learn from the same click histories and "
                         "exploration log; no RL, no simulated interaction on either side)",
             "rl_note": "no RL row: the budget-aware RL reward exists (genads.market.rl, RLConfig.budget_aware, tested) "
                        "but a cascade retrained on the same number of impressions from its own policy does not, so "
                        "the verdict compares the e2e before RL only",
             "payments_note": "e2e_best: GSP; e2e_best_reserve: GSP with the reserve tuned on the tuning seed (the "
                              "Ψ audit prices GSP without the reserve); e2e_best_learned: the payment network on the "
                              "same ranking",
             "torch_threads": 1, "config_file": str(args.config), "tiny": args.tiny,
             "config": {"sim": to_dict(vc.sim), "parallel": to_dict(vc.parallel),
                        "grids": {k: list(getattr(vc, k)) for k in ("cascade_retrieve", "cascade_alpha", "shrink",
                                                                    "joint", "ids", "lcb_z", "relevance_weight",
                                                                    "reserves")},
                        "holdout": vc.holdout, "pacing_eta": vc.pacing_eta, "id_logit_weight": vc.id_logit_weight,
                        "gates": vc.gates,
                        "slate_world": to_dict(vc.slate_world) if vc.slate_world else None}}

    def on_seed(result: dict) -> None:
        path = save(args.name, {**result, **extra, "wall_seconds": round(time.perf_counter() - start, 1)})
        print(f"seed {result['seeds_done'][-1]} done ({result['cpu_seconds_per_seed'][-1]:.0f} CPU s); wrote {path}",
              flush=True)

    resume = None
    if args.resume_from:
        record = json.loads(args.resume_from.read_text())
        if record["git_sha"] != git_sha() or record["git_sha"].endswith("-dirty"):
            raise SystemExit(f"--resume-from {args.resume_from}: run at {record['git_sha']}, this tree is {git_sha()}: "
                             "a resumed run must be the same clean commit")
        resume = record["figures"]
        extra["resumed_from"] = {"path": str(args.resume_from), "started": record["started"],
                                 "cpu_seconds": record["cpu_seconds"], "seeds": resume["seeds_done"],
                                 "wall_seconds": resume.get("wall_seconds")}
    tables(run_verdict(vc, on_seed=on_seed, resume=resume))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
