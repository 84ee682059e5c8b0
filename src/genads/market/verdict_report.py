"""Tables and the report section of the market verdict (:mod:`genads.market.verdict`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genads.eval.report import Report
from genads.market.verdict import CASCADES, FIXES, MARKETS, ORACLES, PAYMENTS

SHOWN = (("rpm", "RPM"), ("gross_rpm", "gross RPM"), ("lost_rpm", "lost RPM"), ("ctr", "CTR"),
         ("winners_true_ctr", "winners' true CTR"), ("user_welfare", "user W"),
         ("advertiser_welfare_per_mille", "adv W/k"), ("psi", "Ψ"), ("ir_violations", "IR viol"),
         ("budget_overspend", "overspend"))


def pct(stat: dict) -> str:
    return f"{100 * stat['mean']:+.1f}% [{100 * stat['ci95'][0]:+.1f}, {100 * stat['ci95'][1]:+.1f}]"


def model_rows(per_seed: list[dict]) -> list[dict]:
    """Each learned model's validation figure on the shared splits (mean over seeds)."""
    mean = lambda key: float(np.mean([s["training"][key] for s in per_seed]))  # noqa: E731
    rows = [{"model": "SASRec (cascade retrieval)", "validation": "NDCG@10", "mean": mean("sasrec_valid_ndcg@10"),
             "epochs": mean("sasrec_epochs")},
            {"model": "parallel generator (e2e)", "validation": "NDCG@10", "mean": mean("generator_valid_ndcg@10"),
             "epochs": mean("generator_epochs")}]
    for prefix, name in (("joint_", "parallel generator, trained jointly with the value head"),
                         ("ids_", "parallel generator, codes + ID term (e2e_ids)"),
                         ("ids_joint_", "codes + ID generator, trained jointly with its value head")):
        if all(f"{prefix}generator_valid_ndcg@10" in s["training"] for s in per_seed):
            epochs = f"{prefix}generator_epochs" if prefix == "ids_" else f"{prefix}epochs"
            rows.append({"model": name, "validation": "NDCG@10", "mean": mean(f"{prefix}generator_valid_ndcg@10"),
                         "epochs": mean(epochs)})
    for key, name, epochs in (("din", "DIN (cascade pCTR)", "din_epochs"), ("value", "value head (e2e pCTR)",
                                                                            "value_epochs"),
                              ("value_eb", "value head, EB-shrunk", None),
                              ("joint", "value head trained jointly with the trunk", "joint_epochs"),
                              ("joint_eb", "joint value head, EB-shrunk", None),
                              ("ids", "value head of the codes + ID generator", "ids_epochs"),
                              ("ids_joint", "codes + ID value head, trained jointly", "ids_joint_epochs")):
        if not all(f"{key}_valid_auc" in s["training"] for s in per_seed):
            continue
        for what in ("auc", "logloss"):
            rows.append({"model": name, "validation": f"held-out within-request {what}" if what == "auc"
                         else "held-out log-loss", "mean": mean(f"{key}_valid_{what}"),
                         "epochs": mean(epochs) if epochs else ""})
    rows.append({"model": "constant pCTR", "validation": "held-out log-loss", "mean": mean("constant_valid_logloss"),
                 "epochs": ""})
    return rows


def variant_rows(summary: dict, market: str) -> list[dict]:
    cas = summary["cascade"]
    v = summary["markets"][market]["variants"]
    rows = []
    for name in (*CASCADES, *FIXES, *PAYMENTS, *ORACLES):
        if name not in v:
            continue
        r = {"variant": name + (" (the cascade)" if name == cas else "")}
        r.update({label: f"{v[name][key]['mean']:.4g}" for key, label in SHOWN})
        r["RPM / oracle"] = f"{summary['markets'][market]['rpm_share_of_oracle'][name]['mean']:.3f}"
        if "lift_vs_cascade" in v[name]["rpm"]:
            r["RPM vs cascade"] = pct(v[name]["rpm"]["lift_vs_cascade"])
            r["CTR vs cascade"] = pct(v[name]["ctr"]["lift_vs_cascade"])
        rows.append(r)
    return rows


def fix_rows(summary: dict) -> list[dict]:
    return [{"market": mk, "fix": k, "RPM over e2e [95% CI]": pct(x["rpm_lift_vs_e2e"])}
            for mk in MARKETS for k, x in summary["markets"][mk]["fix_effects"].items()]


def criteria_rows(summary: dict) -> list[dict]:
    return [{"market": t["market"], "claim": t["claim"], "mean": f"{100 * t['mean']:+.2f}%",
             "Holm-level CI": f"[{100 * t['ci_holm'][0]:+.2f}, {100 * t['ci_holm'][1]:+.2f}]",
             "CI level": f"{t['ci_level']:.4f}", "p": f"{t['p']:.4f}", "p (Holm)": f"{t['p_holm']:.4f}",
             "rejected": t["rejected"]} for t in summary["criteria"]]


def done_rows(summary: dict) -> list[dict]:
    return [{"market": mk, **{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in d.items()}}
            for mk, d in summary["done_when"].items()]


def headroom_rows(per_seed: list[dict]) -> list[dict]:
    out = []
    for world in ("market_world", "slate_world"):
        vals = [s["slate_headroom"][world]["headroom"] for s in per_seed if world in s.get("slate_headroom", {})]
        if vals:
            out.append({"world": world, "slate-aware headroom over the myopic oracle (mean over seeds)":
                        f"{100 * float(np.mean(vals)):+.2f}%"})
    return out


def add_section(report: Report, result: dict, title: str) -> None:
    """The verdict's tables: models, both markets, the fixes, the criteria, the done-when lines, headroom."""
    sec = report.section(title)
    summary, choice = result["summary"], result["choice"]
    sec.paragraphs.append(
        f"Headline: e2e before RL (equal feedback: both sides learn from the same logs only; no RL row, since no "
        f"cascade is retrained on its own policy's impressions). The cascade of the "
        f"verdict is {summary['cascade']} (the stronger on the tuning seed). Chosen on the tuning seed only: "
        + "; ".join(f"{k} {v}" for k, v in choice.items() if k not in ("grid", "cascade")) + ".")
    sec.tables.append(("Models on the shared splits", model_rows(result["per_seed"])))
    for mk in MARKETS:
        sec.tables.append((f"{mk} market: mean over {summary['n_seeds']} seeds, lifts paired by seed [95% CI]",
                           variant_rows(summary, mk)))
    sec.tables.append(("Each end-to-end fix's effect over the plain value head", fix_rows(summary)))
    sec.tables.append(("Criteria (Holm over both markets)", criteria_rows(summary)))
    sec.tables.append(("Done-when lines as measured", done_rows(summary)))
    sec.tables.append(("Slate-aware headroom per world", headroom_rows(result["per_seed"])))
    if result.get("schedule_check"):
        c = result["schedule_check"]
        sec.paragraphs.append(f"Schedule check (tuning seed, every maximum epoch count doubled): the largest RPM move is "
                              f"{100 * c['max_abs_change']:.1f}% ({'within' if c['passes'] else 'OUTSIDE'} the 2% bound).")


def full_size_sentence(path: Path) -> str | None:
    """One sentence with the committed full-size verdict (benchmarks/results/market.json), or None without it."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    s = record["figures"]["summary"]
    sha = record["figures"].get("per_seed_from", {}).get("git_sha", record["git_sha"])
    parts = [f"{t['market']} {'RPM' if t['alternative'] == 'greater' else 'CTR'} {100 * t['mean']:+.1f}% "
             f"[{100 * t['ci_holm'][0]:+.1f}, {100 * t['ci_holm'][1]:+.1f}]" for t in s["criteria"]]
    return (f"Full-size verdict ({path.name}, run at commit {sha[:10]}, {s['n_seeds']} paired seeds): e2e_best vs "
            f"{s['cascade']}, paired lifts with Holm-level intervals: " + "; ".join(parts) + ". The verdict's bar is met: "
            + ("yes." if s["all_hold"] else "no (see docs/market.md)."))


def markdown(rows: list[dict]) -> str:
    """A list of row dicts as a Markdown table (for docs/market.md)."""
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)
