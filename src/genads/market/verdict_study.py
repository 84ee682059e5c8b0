"""The market verdict as a study: every evaluation seed, the schedule check, the ceilings and the aggregate.

:func:`run_verdict` tunes on the tuning seed (:func:`genads.market.verdict.tune`), runs every evaluation seed
(:func:`genads.market.verdict.run_seed`) and aggregates after each one, so a run cut short keeps what it has;
:func:`aggregate` gives per market every variant's mean [95% CI], its paired lift over the cascade and the
criteria with Holm's correction (:func:`genads.eval.statistics.holm_table`).
"""

from __future__ import annotations

import time

import numpy as np

from genads.eval.statistics import holm_table, interval
from genads.market.ceilings import PacedOracle
from genads.market.value_study import Market, Oracle
from genads.market.verdict import (
    FIXES,
    MARKETS,
    METRICS,
    ORACLES,
    Trained,
    VerdictConfig,
    cascade_variant,
    e2e_from,
    run_markets,
    run_seed,
    train,
    tune,
)


def schedule_check(vc: VerdictConfig, choice: dict, base: Trained | None = None, seed: int | None = None,
                   log=print) -> dict:
    """On one seed (the tuning seed by default): retrain both sides with every maximum epoch count doubled and
    compare the verdict's two pipelines' RPM with the default schedules' (``base``: that seed's models trained
    with the defaults, retrained when None). Passes when neither side moves by more than 2% in either market."""
    seed = vc.tuning_seed if seed is None else seed
    base = train(vc, seed, log=log) if base is None else base
    t2 = train(vc, seed, factor=2, log=log)
    out: dict = {"seed": seed, "training_doubled": t2.info, "training_default": base.info, "rpm": {}}
    cas, eb = choice[choice["cascade"]], choice["e2e_best"]
    for side, make in (("cascade", lambda t: cascade_variant(t, cas["retrieve"], cas["alpha"])),
                       ("e2e_best", lambda t: e2e_from(t, eb))):
        a, b = run_markets(vc, base, make(base)), run_markets(vc, t2, make(t2))
        out["rpm"][side] = {mk: {"default": a[mk]["rpm"], "doubled": b[mk]["rpm"],
                                 "change": b[mk]["rpm"] / a[mk]["rpm"] - 1.0} for mk in MARKETS}
    out["max_abs_change"] = max(abs(v["change"]) for s in out["rpm"].values() for v in s.values())
    out["passes"] = bool(out["max_abs_change"] <= 0.02)
    log(f"schedule check, seed {seed}: max |RPM change| with doubled epochs {out['max_abs_change']:.4f} "
        f"({'passes' if out['passes'] else 'FAILS'} the 2% bound)")
    return out


def schedule_study(vc: VerdictConfig, choice: dict, seeds: tuple[int, ...], log=print, on_seed=None) -> dict:
    """:func:`schedule_check` on several seeds: per side and market the mean RPM change [95% CI] of doubling every
    maximum epoch count, so training noise on one seed is not read as an under-trained schedule."""
    checks = []
    for seed in seeds:
        checks.append(schedule_check(vc, choice, seed=seed, log=log))
        summary = {side: {mk: dict(zip(("mean", "low", "high"), interval(np.array(
            [c["rpm"][side][mk]["change"] for c in checks])), strict=True)) for mk in MARKETS}
            for side in ("cascade", "e2e_best")}
        result = {"seeds": [c["seed"] for c in checks], "checks": checks, "change": summary,
                  "max_abs_mean_change": max(abs(v["mean"]) for s in summary.values() for v in s.values())}
        if on_seed is not None:
            on_seed(result)
    return result


def ceilings(vc: VerdictConfig, seeds: tuple[int, ...], etas: tuple[float, ...], log=print, on_seed=None) -> dict:
    """The budget-aware ceiling with its dual step tuned (:class:`PacedOracle` pacing the budget *left* over the
    requests left): ``oracle_paced``'s ``eta`` chosen on the tuning seed by
    budget-bound RPM (no model is trained: the oracles read the truth), then the myopic and the paced oracle on
    ``seeds`` in both markets, and per seed the better of the two (the ceiling)."""

    def bare(seed: int) -> Trained:
        return Trained(Market(vc.sim, seed), None, None, None, {})  # type: ignore[arg-type]

    t = bare(vc.tuning_seed)
    grid = {}
    for eta in etas:
        figs = run_markets(vc, t, PacedOracle(t.market, vc.parallel.candidates, vc.sim.episode.batch_size, eta,
                                              vc.sim.episode.requests))
        grid[str(eta)] = figs["budget_bound"]["rpm"]
        log(f"ceilings: tuning eta {eta}: budget-bound RPM {grid[str(eta)]:.1f}")
    eta = float(max(grid, key=grid.get))
    out: dict = {"eta": eta, "eta_grid_rpm": grid, "per_seed": []}
    for seed in seeds:
        t = bare(seed)
        row = {"seed": seed}
        for name, pipe in (("oracle", Oracle(t.market, vc.parallel.candidates)),
                           ("oracle_paced", PacedOracle(t.market, vc.parallel.candidates, vc.sim.episode.batch_size,
                                                        eta, vc.sim.episode.requests))):
            row[name] = run_markets(vc, t, pipe)
        out["per_seed"].append(row)
        log(f"ceilings: seed {seed}: " + ", ".join(f"{n} {mk} RPM {row[n][mk]['rpm']:.1f}" for n in ORACLES
                                                   for mk in MARKETS))
        out["summary"] = {mk: {key: dict(zip(("mean", "low", "high"), interval(np.array(
            [f(r) for r in out["per_seed"]])), strict=True))
            for key, f in (("oracle_rpm", lambda r, mk=mk: r["oracle"][mk]["rpm"]),
                           ("oracle_paced_rpm", lambda r, mk=mk: r["oracle_paced"][mk]["rpm"]),
                           ("paced_over_myopic", lambda r, mk=mk: r["oracle_paced"][mk]["rpm"] / r["oracle"][mk]["rpm"]),
                           ("ceiling_rpm", lambda r, mk=mk: max(r["oracle"][mk]["rpm"], r["oracle_paced"][mk]["rpm"])),
                           ("oracle_gross_rpm", lambda r, mk=mk: r["oracle"][mk]["gross_rpm"]))}
            for mk in MARKETS}
        if on_seed is not None:
            on_seed(out)
    return out


def aggregate(per_seed: list[dict], choice: dict) -> dict:
    """Per market: every variant's mean [95% CI] and paired relative lift over the verdict's cascade; the criteria
    of the issue (Holm over both markets); each fix's paired effect over the plain e2e; the gap to the oracle."""
    cas = choice["cascade"]
    out: dict = {"markets": {}, "cascade": cas}
    tests = []
    for mk in MARKETS:
        runs = [s["markets"][mk] for s in per_seed]
        table: dict = {}
        for name in runs[0]:
            table[name] = {}
            for metric in METRICS:
                v = np.array([r[name][metric] for r in runs], float)
                mean, lo, hi = interval(v)
                row = {"mean": mean, "ci95": [lo, hi], "per_seed": v.tolist()}
                base = np.array([r[cas][metric] for r in runs], float)
                if name != cas and (base != 0).all():
                    mean, lo, hi = interval(v / base - 1.0)
                    row["lift_vs_cascade"] = {"mean": mean, "ci95": [lo, hi]}
                table[name][metric] = row
        fixes = {}
        for name in FIXES[1:]:
            if name not in runs[0]:
                continue
            d = np.array([r[name]["rpm"] / r["e2e"]["rpm"] - 1.0 for r in runs])
            mean, lo, hi = interval(d)
            fixes[name] = {"rpm_lift_vs_e2e": {"mean": mean, "ci95": [lo, hi]}}
        oracle = {name: interval(np.array([r[name]["rpm"] / r["oracle"]["rpm"] for r in runs])) for name in runs[0]}
        gross = {name: interval(np.array([r[name]["gross_rpm"] / r["oracle"]["gross_rpm"] for r in runs]))
                 for name in runs[0]}
        out["markets"][mk] = {"variants": table, "fix_effects": fixes,
                              "rpm_share_of_oracle": {k: {"mean": v[0], "ci95": [v[1], v[2]]} for k, v in oracle.items()},
                              "gross_rpm_share_of_oracle": {k: {"mean": v[0], "ci95": [v[1], v[2]]}
                                                            for k, v in gross.items()}}
        tests.append({"market": mk, "claim": "e2e_best RPM > cascade", "alternative": "greater",
                      "d": [r["e2e_best"]["rpm"] / r[cas]["rpm"] - 1.0 for r in runs]})
        tests.append({"market": mk, "claim": "e2e_best CTR lower than cascade (must NOT be shown)",
                      "alternative": "less", "d": [r["e2e_best"]["ctr"] / r[cas]["ctr"] - 1.0 for r in runs]})
    out["criteria"] = holm_table(tests)
    done = {}
    for mk in MARKETS:
        rpm = next(t for t in out["criteria"] if t["market"] == mk and t["alternative"] == "greater")
        ctr = next(t for t in out["criteria"] if t["market"] == mk and t["alternative"] == "less")
        v = out["markets"][mk]["variants"]
        share = out["markets"][mk]["rpm_share_of_oracle"]["e2e_best"]["mean"]
        done[mk] = {"rpm_ci_above_0": bool(rpm["rejected"] and rpm["ci_holm"][0] > 0),
                    "ctr_not_significantly_lower": not ctr["rejected"],
                    "winners_true_ctr_at_least_cascade": bool(v["e2e_best"]["winners_true_ctr"]["mean"]
                                                              >= v[cas]["winners_true_ctr"]["mean"]),
                    "rpm_share_of_oracle": share, "rpm_at_least_95pct_of_oracle": bool(share >= 0.95)}
    out["done_when"] = done
    out["n_seeds"] = len(per_seed)
    out["all_hold"] = bool(len(per_seed) >= 10 and all(all(v for k, v in d.items() if k != "rpm_share_of_oracle")
                                                       for d in done.values()))
    return out


def run_verdict(vc: VerdictConfig, log=print, on_seed=None, resume: dict | None = None) -> dict:
    """Tuning, then every evaluation seed (the schedule check right after the first, so a run cut short still has
    it), aggregated after each seed; ``on_seed(result)`` is called with the result so far after every seed.

    ``resume``: the figures of an earlier run of the same code and config (cut short): its choices, schedule check
    and finished seeds are kept, and only the seeds of ``vc.seeds`` it lacks are run (no tuning again)."""
    cpu0 = time.process_time()
    if resume is None:
        choice, tuned = tune(vc, log)
        result: dict = {"choice": choice, "schedule_check": None, "per_seed": [], "tuning_seed": vc.tuning_seed,
                        "seeds_planned": list(vc.seeds), "cpu_seconds_tuning": round(time.process_time() - cpu0, 1),
                        "cpu_seconds_schedule_check": 0.0}
    else:
        if resume["tuning_seed"] != vc.tuning_seed:
            raise ValueError(f"resume: tuning seed {resume['tuning_seed']} != {vc.tuning_seed}")
        choice, tuned = resume["choice"], None
        result = {k: resume[k] for k in ("choice", "schedule_check", "tuning_seed", "cpu_seconds_tuning",
                                         "cpu_seconds_schedule_check")}
        result["per_seed"] = [s for s in resume["per_seed"] if s["seed"] in vc.seeds]
        result["seeds_planned"] = list(vc.seeds)
        result["resumed_seeds"] = [s["seed"] for s in result["per_seed"]]
    done = {s["seed"] for s in result["per_seed"]}
    for seed in vc.seeds:
        if seed in done:
            continue
        result["per_seed"].append(run_seed(vc, choice, seed, log))
        if vc.schedule_check and result["schedule_check"] is None:
            c0 = time.process_time()
            result["schedule_check"] = schedule_check(vc, choice, tuned, log=log)
            result["cpu_seconds_schedule_check"] = round(time.process_time() - c0, 1)
            tuned = None
        result["summary"] = aggregate(result["per_seed"], choice)
        result["seeds_done"] = [s["seed"] for s in result["per_seed"]]
        result["cpu_seconds_per_seed"] = [s["cpu_seconds"] for s in result["per_seed"]]
        if on_seed is not None:
            on_seed(result)
    return result
