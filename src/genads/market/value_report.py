"""Tables, plots and the report section of the value-aware market study (:mod:`genads.market.value_study`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from genads.eval.report import Report, figure_png

EGA = {"rpm": 0.197, "ctr": 0.097}
"""EGA's published changes over its cascade (RPM +19.7%, CTR +9.7%; Ψ 3.6% -> 2.7%)."""
SHOWN = ("rpm", "ctr", "user_welfare", "advertiser_welfare_per_mille", "psi")


def variant_rows(summary: dict) -> list[dict]:
    """One row per variant: mean, and the paired lift over the cascade with its 95% interval."""
    out = []
    for name, metrics in summary["variants"].items():
        row = {"variant": name}
        for m in SHOWN:
            stat = metrics[m]
            lift = stat.get("lift_vs_cascade")
            row[m] = f"{stat['mean']:.4g}" + (f" ({lift['mean']:+.1%} [{lift['ci95'][0]:+.1%}, {lift['ci95'][1]:+.1%}])"
                                              if lift else "")
        out.append(row)
    out.append({"variant": "EGA (published, its e2e vs its cascade)", "rpm": f"({EGA['rpm']:+.1%})",
                "ctr": f"({EGA['ctr']:+.1%})", "psi": "3.6% -> 2.7% (x0.75)"})
    return out


def criteria_rows(summary: dict) -> list[dict]:
    return [{"metric": t["metric"], "criterion": t["criterion"], "e2e_rl vs cascade": f"{t['lift']:+.3f}",
             "p": f"{t['p']:.3f}", "p (Holm)": f"{t['p_holm']:.3f}"} for t in summary["criteria"]]


def rl_rows(per_seed: list[dict]) -> list[dict]:
    out = []
    for s in per_seed:
        rl = s["training"]["rl"]
        out.append({"seed": s["seed"], "expected reward before RL": rl["expected_before"]["reward"],
                    "after RL": rl["expected_after"]["reward"],
                    "revenue before": rl["expected_before"]["revenue"], "after": rl["expected_after"]["revenue"],
                    "clicks before": rl["expected_before"]["clicks"], "clicks after": rl["expected_after"]["clicks"],
                    "RL interactions (lists)": rl["interactions"]})
    return out


def curves_figure(per_seed: list[dict]) -> plt.Figure:
    """RL learning curves per seed: reward, revenue and clicks per list of the sampled policy, and the KL."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for s in per_seed:
        curve = s["training"]["rl"]["curve"]
        steps = [r["step"] for r in curve]
        for ax, key in zip(axes, ("reward", "revenue", "clicks", "kl"), strict=True):
            ax.plot(steps, [r[key] for r in curve], label=f"seed {s['seed']}", lw=1)
            ax.set_title(f"RL {key}" + (" per list (sampled policy)" if key != "kl" else " to the supervised policy"),
                         fontsize=9)
            ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def add_section(report: Report, result: dict, title: str) -> None:
    sec = report.section(title)
    choice = result["choice"]
    sec.paragraphs.append(
        f"Chosen on tuning seeds only: cascade retriever loss {choice['cascade']['loss']}, retrieve "
        f"{choice['cascade']['retrieve']}; RL reward revenue weight {choice['rl_revenue_weight']}. "
        "e2e_sl: value-aware generation (exact log eCPM over every live ad) before RL; e2e_rl: after list-wise RL; "
        "ablations: GSP prices on the RL allocation, no value head (Platt-calibrated generator score), no token bid.")
    for market, summary in result["summary"].items():
        sec.tables.append((f"{market} market: mean (paired lift over the cascade [95% CI])", variant_rows(summary)))
        sec.tables.append((f"{market} market: criteria (one-sided paired t-tests, Holm-adjusted)",
                           criteria_rows(summary)))
    sec.tables.append(("RL: the greedy pipeline's expected reward at truthful bids, before and after",
                       rl_rows(result["per_seed"])))
    sec.images.append(("RL learning curves", figure_png(curves_figure(result["per_seed"]))))
