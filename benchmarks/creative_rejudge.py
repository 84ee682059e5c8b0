# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""Judge the titles of a committed ``creative_titles.py`` run again with the current judge.

When the independent judge changes (a misreading fixed), the titles a run wrote need not be generated again: this
script rebuilds the run's held-out products (same seed, same ``--test``, checked against the run's "selling points
joined" titles, which are the products' points), judges every generator's stored titles with the current
``creative.judge`` and prints the run's figures beside the new ones. BLEU / ROUGE do not depend on the judge and are
not recomputed. A fallback (the LM wrote nothing that finished; the title is the points joined) is recognised as
the title :meth:`TitleRules.fallback` gives, and counts as a failure in "pass-all (fallback = fail)" as in the run.

    .venv/bin/python benchmarks/creative_rejudge.py [--result benchmarks/results/creative_titles.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import sacrebleu

sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save
from benchmarks.creative_titles import splits
from genads.creative.judge import judge_title, judge_titles
from genads.creative.title_rules import TitleRules


def held_out(settings: dict) -> dict[str, list]:
    """The run's held-out products per language, drawn as ``creative_titles.py`` draws them."""
    s = splits(settings["seed"], settings.get("type_points", False))
    rng = np.random.default_rng(settings["seed"] + 1)
    zh = [s["zh_test"][i] for i in rng.permutation(len(s["zh_test"]))[:settings["test"]]]
    en_items = sorted(s["en_test"])
    en = [s["en"][en_items[i]] for i in rng.permutation(len(en_items))[:settings["test"]]]
    return {"zh": zh, "en": en}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--result", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "creative_titles.json")
    ap.add_argument("--tag", default="", help="suffix of the result file (creative_titles_rejudged[_TAG].json)")
    args = ap.parse_args()
    run = json.loads(args.result.read_text(encoding="utf-8"))
    fig = run["figures"]
    products = held_out(fig["settings"])
    old = {(r["lang"], r["generator"]): r for r in fig["rows"]}
    rows = []
    for lang, by_gen in fig["titles"].items():
        ps = products[lang]
        sources = [list(p.selling_points) for p in ps]
        brands = [p.brand for p in ps]
        joiner = "，" if lang == "zh" else ", "
        if by_gen["selling points joined"] != [joiner.join(src) for src in sources]:
            raise SystemExit(f"{args.result}: the rebuilt {lang} products are not the run's (its 'selling points "
                             f"joined' titles differ): was the data or the split changed since {run['git_sha']}?")
        for gen, titles in by_gen.items():
            judged = judge_titles(titles, sources, lang, brands)
            fallback = [t == TitleRules(src, brand=b).fallback(src) and gen.endswith("LoRA")
                        for t, src, b in zip(titles, sources, brands, strict=True)]
            passed = [judge_title(t, src, lang, b).passed and not f
                      for t, src, b, f in zip(titles, sources, brands, fallback, strict=True)]
            before = old.get((lang, gen), {})
            bleu = sacrebleu.corpus_bleu(titles, [[p.target for p in ps]], tokenize="zh" if lang == "zh" else "13a")
            rows.append({"lang": lang, "generator": gen,
                         "pass_all (run)": before.get("judge_pass_all"), "pass_all (now)": judged["pass_all"],
                         "pass_all fallback=fail (run)": before.get("judge_pass_all_written"),
                         "pass_all fallback=fail (now)": float(np.mean(passed)) if gen.endswith("LoRA") else None,
                         "unsupported (run)": before.get("judge_unsupported"),
                         "unsupported (now)": judged["unsupported_share"],
                         **{f"fail_{k} (now)": v for k, v in judged["failures"].items()},
                         # BLEU-4's parts (sacrebleu): why a short title loses to a long list of points
                         "bleu4": bleu.score / 100, "brevity_penalty": bleu.bp,
                         "precisions_1_4": [round(x / 100, 4) for x in bleu.precisions],
                         "length_ratio": bleu.sys_len / max(bleu.ref_len, 1)})
    print_table(rows, f"Titles of {args.result.name} (commit {run['git_sha'][:7]}) judged again")
    name = "creative_titles_rejudged" + (f"_{args.tag}" if args.tag else "")
    out = save(name, {"source": str(args.result.name), "source_git_sha": run["git_sha"], "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
