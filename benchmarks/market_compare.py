"""The cascade against genads end to end on the ad-market simulator, in two worlds (issues 6 and 21).

Runs ``genads simulate``'s comparison on the original world (configs/market.yaml) and the slate-effect
world (configs/market_slate.yaml: cascade click model, cannibalisation, lower base CTR), each in the
budget-bound and the unconstrained market, over the configs' evaluation seeds (100-109; the knobs
were set on seeds 0-2). Seeds run interleaved across worlds and the JSON is rewritten after every
seed, so an interrupted run keeps what finished and ``--resume`` continues it. Prints, per world and
market, every pipeline with 95% intervals, the budget figures (net/gross RPM, lost revenue), the
attribution ladder, the pCTR models' held-out scores, Ψ on identical allocations, and the
pre-declared criteria with Holm's correction over all of them; writes benchmarks/results/NAME.json
(every per-seed figure) and runs/NAME/report.html. One thread:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/market_compare.py [--configs configs/market.yaml configs/market_slate.yaml]
        [--seeds 100,101] [--name market_compare] [--resume]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch

from _common import RESULTS, print_table, save
from genads.commands.simulate import load_config
from genads.data.dataset import atomic_write_text
from genads.eval.report import Report
from genads.market.compare import aggregate, run_seed
from genads.market.config import to_dict
from genads.market.criteria import judge, ladder
from genads.market.report import (
    add_section,
    budget_rows,
    comparison_rows,
    criteria_rows,
    ladder_rows,
    pctr_rows,
    psi_identical_rows,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (ROOT / "configs" / "market.yaml", ROOT / "configs" / "market_slate.yaml")


def world_name(path: Path) -> str:
    return {"market.yaml": "original", "market_slate.yaml": "slate_effects"}.get(path.name, path.stem)


def summarise(cfgs: dict, per_seed: dict) -> dict:
    """Per world: per-market summaries and ladders; and the criteria, Holm-corrected over both worlds."""
    worlds = {}
    for w, seeds in per_seed.items():
        if not seeds:
            continue
        markets = cfgs[w].markets
        worlds[w] = {"seeds": [s["seed"] for s in seeds], "markets": {m: aggregate(seeds, m) for m in markets},
                     "ladder": {m: ladder(seeds, m) for m in markets}}
    ready = {w: s for w, s in per_seed.items() if len(s) >= 2}
    return {"worlds": worlds, "criteria": judge(ready) if ready else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=Path, nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--name", default="market_compare", help="result name (JSON and runs/NAME)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds overriding the configs'")
    parser.add_argument("--resume", action="store_true", help="keep the seeds already in benchmarks/results/NAME.json")
    parser.add_argument("--report-only", action="store_true",
                        help="run no seed: print the tables and write the report from benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfgs = {world_name(p): load_config(p, args.seeds) for p in args.configs}
    files = {world_name(p): str(p.relative_to(ROOT) if p.is_absolute() else p) for p in args.configs}
    per_seed: dict[str, list] = {w: [] for w in cfgs}
    previous = RESULTS / f"{args.name}.json"
    if (args.resume or args.report_only) and previous.is_file():
        old = json.loads(previous.read_text())["figures"]
        per_seed.update({w: s for w, s in old.get("per_seed", {}).items() if w in cfgs})
    start, cpu0 = time.perf_counter(), time.process_time()
    order = [(w, s) for s in max((c.seeds for c in cfgs.values()), key=len) for w in cfgs if s in cfgs[w].seeds]
    for w, seed in order:
        if args.report_only or any(r["seed"] == seed for r in per_seed[w]):
            continue
        print(f"== world {w}, seed {seed}", flush=True)
        per_seed[w].append(run_seed(cfgs[w], seed, log=lambda m: print(m, flush=True)))
        figures = {**summarise(cfgs, per_seed), "per_seed": per_seed, "config_files": files,
                   "configs": {w: to_dict(c) for w, c in cfgs.items()},
                   "wall_seconds": round(time.perf_counter() - start, 1),
                   "cpu_seconds_this_process": round(time.process_time() - cpu0, 1),
                   "cpu_seconds_per_seed": {w: [r["cpu_seconds"] for r in s] for w, s in per_seed.items()},
                   "torch_threads": 1, "complete": all(len(per_seed[w]) == len(cfgs[w].seeds) for w in cfgs),
                   "note": "machine shared by several sessions (2 cores): wall time is inflated, CPU time is the cost"}
        save(args.name, figures)
    figures = {**summarise(cfgs, per_seed)}
    for w, res in figures["worlds"].items():
        for m, summary in res["markets"].items():
            print_table(comparison_rows(summary), f"[{w} / {m}] pipelines (mean [95% CI] over seeds {res['seeds']})")
            print_table(budget_rows(summary), f"[{w} / {m}] budgets")
            print_table(ladder_rows(res["ladder"][m]), f"[{w} / {m}] attribution ladder (paired change per step)")
        print_table(pctr_rows(per_seed[w]), f"[{w}] pCTR models on held-out logged requests")
        print_table(psi_identical_rows(per_seed[w]), f"[{w}] Ψ on identical allocations, learned vs GSP")
    print_table(criteria_rows(figures["criteria"]), "Pre-declared criteria, Holm-corrected over all of them")
    report = Report("genads market simulator: two worlds")
    for w, res in figures["worlds"].items():
        cfg = cfgs[w]
        result = {"per_seed": per_seed[w], "summary": res["markets"][cfg.markets[0]], "markets": res["markets"],
                  "ladder": res["ladder"], "criteria": [c for c in figures["criteria"] if c["world"] == w]}
        add_section(report, result, title=f"Market simulator, {w} world: cascade vs end-to-end")
    path = report.write(ROOT / "runs" / args.name / "report.html")
    atomic_write_text(ROOT / "runs" / args.name / "configs.json", json.dumps({w: to_dict(c) for w, c in cfgs.items()}))
    wrote = "" if args.report_only else f"{RESULTS / (args.name + '.json')} and "
    print(f"wall {time.perf_counter() - start:.0f}s; wrote {wrote}{path}")


if __name__ == "__main__":
    main()
