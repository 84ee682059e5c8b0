"""The comparison's report section: tables, figures with 95% intervals, EGA's figures beside ours.

Builds :class:`genads.eval.report.Section` content in memory from :func:`genads.market.compare.run_comparison`'s
result; writing the HTML file is the caller's job (``genads simulate``, the benchmark, the demo step).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from genads.eval.report import Report, figure_png

EGA_PUBLISHED = {"rpm": (192.45, 230.41), "ctr": (0.0558, 0.0612), "psi": (0.036, 0.027)}
"""EGA's offline figures, cascade -> EGA (RPM in the platform's currency, CTR, regret ratio Ψ)."""

PANELS = (("rpm", "RPM (revenue per 1000 requests)"), ("ctr", "CTR (ad clicks / ad impressions)"),
          ("advertiser_welfare_per_mille", "advertiser welfare per 1000 requests"),
          ("user_welfare", "user welfare (expected clicks per page)"), ("psi", "Ψ = regret / utility (strong)"),
          ("ir_violations", "IR violations (price > bid)"), ("budget_overspend", "budget overspend"))
LABELS = {"cascade": "cascade", "e2e": "end-to-end", "e2e_mean_bid": "e2e, mean token bid",
          "e2e_gsp": "e2e, GSP prices", "e2e_no_bid": "e2e, no token bidding",
          "e2e_din_pctr": "e2e candidates, DIN pCTR, GSP", "gen_retrieval": "generated retrieval (no bids), DIN, GSP",
          "cascade_oracle": "cascade retrieval, TRUE CTR, GSP", "e2e_oracle": "e2e candidates, TRUE CTR, GSP"}
COLORS = {"cascade": "#7f7f7f", "e2e": "#1f77b4", "e2e_mean_bid": "#aec7e8", "e2e_gsp": "#ff7f0e",
          "e2e_no_bid": "#98df8a", "e2e_din_pctr": "#9467bd", "gen_retrieval": "#c5b0d5", "cascade_oracle": "#bcbd22",
          "e2e_oracle": "#17becf"}


def _cell(stat: dict, digits: int = 4) -> str:
    m, (lo, hi) = stat["mean"], stat["ci95"]
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if hi > lo else f"{m:.{digits}f}"


def metric_figure(summary: dict) -> plt.Figure:
    """One panel per figure of the issue; bars = mean over seeds, whiskers = 95% interval."""
    names = list(summary)
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.4))
    for ax, (key, title) in zip(axes.flat, PANELS, strict=False):
        means = [summary[n][key]["mean"] for n in names]
        lo = [summary[n][key]["mean"] - summary[n][key]["ci95"][0] for n in names]
        hi = [summary[n][key]["ci95"][1] - summary[n][key]["mean"] for n in names]
        ax.bar(range(len(names)), means, yerr=[lo, hi], capsize=3, color=[COLORS[n] for n in names])
        ax.set_xticks(range(len(names)), [LABELS[n] for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    ax = axes.flat[-1]
    ax.axis("off")
    fig.tight_layout()
    return fig


def lift_figure(summary: dict) -> plt.Figure:
    """End-to-end vs cascade, relative change: ours (95% interval over seeds) beside EGA's published change."""
    keys = ("rpm", "ctr", "psi")
    ours = [summary["e2e"][k].get("lift_vs_cascade", {"mean": np.nan, "ci95": [np.nan, np.nan]}) for k in keys]
    ega = [EGA_PUBLISHED[k][1] / EGA_PUBLISHED[k][0] - 1 for k in keys]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    err = [[o["mean"] - o["ci95"][0] for o in ours], [o["ci95"][1] - o["mean"] for o in ours]]
    ax.bar(x - 0.2, [100 * o["mean"] for o in ours], 0.4, yerr=100 * np.asarray(err), capsize=3, label="genads simulator")
    ax.bar(x + 0.2, [100 * e for e in ega], 0.4, label="EGA (published, offline)", color="#d62728")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, ["RPM", "CTR", "Ψ"])
    ax.set_ylabel("end-to-end vs cascade (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_figure(summary: dict) -> plt.Figure:
    """EGA's ablations: max vs mean token bid, learned payments vs GSP on the same allocation."""
    pairs = [("e2e", "e2e_mean_bid", "token bid: max vs mean"), ("e2e", "e2e_gsp", "payments: learned vs GSP")]
    pairs = [p for p in pairs if p[1] in summary]
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(5 * max(len(pairs), 1), 3.2), squeeze=False)
    for ax, (a, b, title) in zip(axes[0], pairs, strict=False):
        keys = ("rpm", "ctr", "psi")
        for i, name in enumerate((a, b)):
            vals = [summary[name][k]["mean"] / max(summary["cascade"][k]["mean"], 1e-12) for k in keys]
            ax.bar(np.arange(3) + (i - 0.5) * 0.4, vals, 0.4, label=LABELS[name], color=COLORS[name])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(3), ["RPM", "CTR", "Ψ"])
        ax.set_ylabel("relative to the cascade")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comparison_rows(summary: dict) -> list[dict]:
    rows = []
    for name, s in summary.items():
        rows.append({"pipeline": LABELS[name], "RPM": _cell(s["rpm"], 2), "CTR": _cell(s["ctr"]),
                     "adv. welfare /1000": _cell(s["advertiser_welfare_per_mille"], 2),
                     "user welfare": _cell(s["user_welfare"]), "Ψ (strong)": _cell(s["psi"]),
                     "Ψ grid": _cell(s["psi_grid"]), "Ψ grid, pCTR world": _cell(s["psi_in_model_grid"]), "IR viol.": _cell(s["ir_violations"], 0),
                     "overspend": _cell(s["budget_overspend"], 2), "fill": _cell(s["fill_rate"], 3),
                     "strategic γ": _cell(s["strategic_gamma_mean"], 2)})
    return rows


def budget_rows(summary: dict) -> list[dict]:
    """Net and gross RPM, revenue lost to exhausted budgets, budget spent."""
    return [{"pipeline": LABELS[name], "RPM": _cell(s["rpm"], 2), "gross RPM": _cell(s["gross_rpm"], 2),
             "lost RPM": _cell(s["lost_rpm"], 2), "lost share": _cell(s["lost_share"], 3),
             "budget spent": _cell(s["budget_spent_share"], 3), "free clicks (absorbed /1000)": _cell(s["absorbed_per_mille"], 2)}
            for name, s in summary.items() if "gross_rpm" in s]


def _diff(d: dict, digits: int = 3) -> str:
    return f"{d['diff']:+.{digits}f} [{d['ci95'][0]:+.{digits}f}, {d['ci95'][1]:+.{digits}f}]"


def ladder_rows(ladder: list[dict]) -> list[dict]:
    return [{"step": r["step"], **{f"Δ {m}": _diff(v, 2 if "rpm" in m else 4) for m, v in r.items() if m != "step"}}
            for r in ladder]


def criteria_rows(criteria: list[dict]) -> list[dict]:
    return [{"world": c["world"], "market": c["market"], "claim": c["claim"], "diff [95% CI]": _diff(c),
             "p": f"{c['p']:.3g}", "p (Holm)": f"{c['p_holm']:.3g}", "verdict": c["verdict"]} for c in criteria]


def pctr_rows(per_seed: list[dict]) -> list[dict]:
    """Both pCTR models on the held-out logged requests (mean over seeds)."""
    rows = []
    for model in ("din", "reward_model", "true_ctr"):
        vals = [r["training"]["pctr_heldout"][model] for r in per_seed if "pctr_heldout" in r["training"]]
        if vals:
            rows.append({"model": model, **{k: round(float(np.nanmean([v[k] for v in vals])), 4)
                                             for k in ("within_request_auc", "log_loss", "pctr_mean_over_click_rate")}})
    return rows


def psi_identical_rows(per_seed: list[dict]) -> list[dict]:
    rows = []
    for r in per_seed:
        pi = r["training"]["e2e"]["payment_training"].get("psi_identical_allocations")
        if pi:
            rows.append({"seed": r["seed"], **{f"{mech} {k.removeprefix('psi_')}": round(v, 4)
                                               for mech in ("learned", "gsp") for k, v in pi[mech].items()}})
    return rows


def diagnosis_rows(summary: dict) -> list[dict]:
    """Ground-truth diagnostics: how close each pipeline gets to the best slots, and how good its pCTR is."""
    rows = []
    for name, s in summary.items():
        rows.append({"pipeline": LABELS[name], "value efficiency": _cell(s["value_efficiency"], 3),
                     "pCTR–true CTR Spearman": _cell(s["pctr_true_ctr_spearman"], 3),
                     "mean pCTR / true CTR": _cell(s["pctr_over_true_ctr"], 2),
                     "candidates' true CTR": _cell(s["candidate_true_ctr"])})
    return rows


def ega_rows(summary: dict) -> list[dict]:
    rows = []
    for key, label in (("rpm", "RPM"), ("ctr", "CTR"), ("psi", "Ψ")):
        c, e = EGA_PUBLISHED[key]
        lift = summary["e2e"][key].get("lift_vs_cascade")
        rows.append({"figure": label, "EGA cascade": c, "EGA end-to-end": e, "EGA change": f"{100 * (e / c - 1):+.1f}%",
                     "ours cascade": _cell(summary["cascade"][key]), "ours end-to-end": _cell(summary["e2e"][key]),
                     "ours change [95% CI]": "n/a" if lift is None else
                     f"{100 * lift['mean']:+.1f}% [{100 * lift['ci95'][0]:+.1f}, {100 * lift['ci95'][1]:+.1f}]"})
    return rows


def verdict(summary: dict) -> str:
    """A sentence per headline figure, read off the paired intervals (no judgement beyond the numbers)."""
    parts = []
    for key, label in (("rpm", "RPM"), ("ctr", "CTR"), ("advertiser_welfare_per_mille", "advertiser welfare"),
                       ("user_welfare", "user welfare"), ("psi", "Ψ")):
        lift = summary["e2e"][key].get("lift_vs_cascade")
        if lift is None:
            continue
        lo, hi = lift["ci95"]
        sign = "higher" if lift["mean"] > 0 else "lower"
        sure = "(95% interval excludes 0)" if lo > 0 or hi < 0 else "(95% interval includes 0: not significant)"
        parts.append(f"{label} {abs(100 * lift['mean']):.1f}% {sign} {sure}")
    return "End-to-end vs cascade, paired by seed: " + "; ".join(parts) + "."


def add_section(report: Report, result: dict, title: str = "Market simulator: cascade vs end-to-end") -> None:
    summary = result["summary"]
    s = report.section(title)
    seeds = [r["seed"] for r in result["per_seed"]]
    s.paragraphs.append(
        "A seeded market with ground truth: users and ads share a latent space, the true CTR is "
        "sigmoid(bias + affinity·&lt;u, a&gt;), clicks follow a position-based model, advertisers have private values "
        "per click, budgets and ROI targets, and bid through truthful, budget-paced (dual gradient) and "
        "best-responding agents. Both pipelines are trained only on the simulator's logs (click histories and a "
        "randomised impression log) and serve the same requests with the same click draws. "
        f"Seeds {seeds}; intervals are Student-t 95% over seeds. Ψ audits each pipeline's auction at truthful "
        "profiles with true values and true CTRs (EGA's misreport grid and gradient ascent from random restarts; "
        "the larger is shown).")
    s.paragraphs.append(verdict(summary))
    s.tables.append(("All pipelines (mean [95% CI] over seeds)", comparison_rows(summary)))
    s.tables.append(("Beside EGA's published offline figures (currency units differ: compare the changes)",
                     ega_rows(summary)))
    s.tables.append(("Why: ground-truth diagnostics (value efficiency = expected value of the shown ads / that of "
                     "the best live ads by value × true CTR; pCTR rank correlation with the true CTR on audited "
                     "candidates)", diagnosis_rows(summary)))
    s.images.append(("Every figure, per pipeline (95% intervals over seeds)", figure_png(metric_figure(summary))))
    s.images.append(("End-to-end vs cascade: our change beside EGA's", figure_png(lift_figure(summary))))
    s.images.append(("EGA's ablations on the simulator", figure_png(ablation_figure(summary))))
    for market, msum in result.get("markets", {}).items():
        s.tables.append((f"Budgets, {market} market: net and gross RPM, revenue lost to exhausted budgets",
                         budget_rows(msum)))
        if market != next(iter(result["markets"])):
            s.tables.append((f"All pipelines, {market} market", comparison_rows(msum)))
    for market, rows in result.get("ladder", {}).items():
        s.tables.append((f"Attribution ladder, {market} market: each step's paired change (mean [95% CI] over seeds)",
                         ladder_rows(rows)))
    if result.get("criteria"):
        s.tables.append(("Pre-declared criteria, paired t-test, Holm-corrected over all of them", criteria_rows(result["criteria"])))
    s.tables.append(("pCTR models on held-out logged requests (within-request AUC, position-based log-loss)",
                     pctr_rows(result["per_seed"])))
    s.tables.append(("Ψ on identical allocations: learned prices vs GSP on the same auctions — held out (users "
                     "disjoint from the payment network's training users, true CTR) and training (pCTR world)",
                     psi_identical_rows(result["per_seed"])))
    gen = [{"seed": r["seed"], **{name: round(g["psi_generation"], 4) for name, g in r["generation_audit"].items()}}
           for r in result["per_seed"] if "generation_audit" in r]
    if gen:
        s.tables.append(("Ψ when a misreport may change which candidates are generated/retrieved (re-proposed per "
                         "misreport, truthful others, held-out users)", gen))
    timing = [{"seed": r["seed"], "wall s": r["seconds"], "CPU s": r["cpu_seconds"]} for r in result["per_seed"]]
    s.tables.append(("Time per seed", timing))
