# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""The LM title decoder's length budget and candidate ranking, chosen on validation products (never on test).

The adapter's titles were short (English 5 words against 11-word references, Chinese half the
reference length), so corpus BLEU-4's brevity penalty (.26 en / .32 zh) ate twice the n-gram
precision of "selling points joined". The budget is a decoding knob; this script picks it per
language on the LoRA sample's held-out validation products (``--valid`` of ``creative_titles.py``:
never trained on, disjoint from the test split), and with ``--ranks logprob,coverage`` also the
candidate ranking (``DecodeConfig.rank``), and writes the grid and the choice to
``benchmarks/results/creative_length[_TAG].json``; ``creative_titles.py`` then runs once with the chosen
flags. Rule, fixed before the run: the highest BLEU-4 + ROUGE-L on validation (titles generated
without history, as on test); a tie goes to the shorter budget.

    .venv/bin/python benchmarks/creative_length.py --adapter /work/lora_runs/adapter-v3 --cache-dir /tmp/creative_lm
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save
from benchmarks.creative_titles import sampled_examples, score, splits
from genads.creative import lm_titles as lt
from genads.creative.judge import judge_title
from genads.creative.lm import load_backbone
from genads.creative.lm_titles import RANKS
from genads.creative.title_rules import LengthBudget

GRID = {"en": [(3, 14), (6, 14), (8, 16), (10, 18)],   # (min, max) words; the first is LengthBudget's default
        "zh": [(6, 30), (12, 30), (18, 34), (24, 38)]}  # (min, max) CJK characters


def budget_for(lang: str, lo: int, hi: int) -> LengthBudget:
    return LengthBudget(min_words=lo, max_words=hi) if lang == "en" else LengthBudget(min_chars=lo, max_chars=hi)


def choose(rows: list[dict], slack: float = 0.02) -> dict:
    """Highest BLEU-4 + ROUGE-L among rows whose written pass-all is within ``slack`` of the first (default) row's;
    ties to the shorter budget, then the earlier rank."""
    floor = rows[0]["judge_pass_all_written"] - slack
    ok = [r for r in rows if r["judge_pass_all_written"] >= floor]
    return max(ok, key=lambda r: (round(r["bleu4"] + r["rouge_l"], 6), -r["min"], -RANKS.index(r["rank"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--cache-dir", default="runs/creative_lm")
    ap.add_argument("--adapter", required=True, help="the adapter creative_titles.py trained")
    ap.add_argument("--train-zh", type=int, default=865, help="the adapter's --train-zh (rebuilds its sample)")
    ap.add_argument("--train-en", type=int, default=2446)
    ap.add_argument("--valid", type=int, default=150, help="the adapter's --valid: its held-out head")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--ranks", default="logprob", help="comma-separated candidate rankings to try (the first is the "
                    "default the others must keep level with): " + ", ".join(RANKS))
    ap.add_argument("--budgets", type=int, default=len(GRID["en"]), help="try only the first N budgets of each grid")
    ap.add_argument("--tag", default="", help="results name suffix")
    ap.add_argument("--type-points", action="store_true", help="the adapter was trained with creative_titles.py "
                    "--type-points")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ranks = [r.strip() for r in args.ranks.split(",") if r.strip()]
    if not ranks or any(r not in RANKS for r in ranks):
        raise SystemExit(f"--ranks {args.ranks!r}: each must be one of {RANKS}")
    torch.set_num_threads(1)
    start = time.perf_counter()
    s = splits(args.seed, args.type_points)
    held = [p for _, p in sampled_examples(s, args.train_zh, args.train_en, args.seed)[:args.valid]]
    test_ids = {p.id for p in s["zh_test"]} | set(s["en_test"])
    if any(p.id in test_ids for p in held):
        raise RuntimeError("a validation product is in the test split")
    backbone = load_backbone(args.backbone, cache_dir=args.cache_dir)
    base = lt.DecodeConfig(candidates=args.candidates, temperature=args.temperature, seed=args.seed,
                           max_new_tokens=args.max_new_tokens)
    gen = lt.LMTitleGenerator.from_dirs(backbone.path, args.adapter, base)
    rows, chosen = [], {}
    for lang in ("zh", "en"):
        products = [p for p in held if p.lang == lang]
        if not products:
            raise SystemExit(f"no {lang} product among the first --valid {args.valid} examples: give a larger --valid")
        refs, sources, brands = [p.target for p in products], [list(p.selling_points) for p in products], \
            [p.brand for p in products]
        lang_rows = []
        for rank, (lo, hi) in ((r, b) for r in ranks for b in GRID[lang][:args.budgets]):
            gen.decode = replace(base, budget=budget_for(lang, lo, hi), rank=rank)
            t0 = time.perf_counter()
            results = [gen.generate(list(p.selling_points), brand=p.brand)
                       for p in tqdm(products, desc=f"{lang} {rank} {lo}-{hi}", unit="title")]
            titles = [r.title for r in results]
            row = {"rank": rank, "min": lo, "max": hi, "products": len(products),
                   **score("LoRA", lang, titles, refs, sources, time.perf_counter() - t0, brands),
                   "fallback": sum(r.fallback for r in results)}
            row["judge_pass_all_written"] = float(np.mean(
                [judge_title(t, src, lang, b).passed and not r.fallback
                 for t, src, b, r in zip(titles, sources, brands, results, strict=True)]))
            lang_rows.append(row)
        chosen[lang] = {k: choose(lang_rows)[k] for k in ("rank", "min", "max")}
        rows += lang_rows
    keep = ("lang", "rank", "min", "max", "products", "bleu4", "rouge_l", "words", "judge_pass_all", "judge_pass_all_written",
            "fallback", "judge_unsupported", "s_per_title")
    print_table([{k: r[k] for k in keep} for r in rows], "Length budget on validation products (no test product)")
    if chosen["zh"]["rank"] != chosen["en"]["rank"]:
        print(f"the languages chose different rankings ({chosen}): creative_titles.py takes one --rank; "
              "run it once per language's choice")
    flags = (f"--rank {chosen['en']['rank']} --min-words {chosen['en']['min']} --max-words {chosen['en']['max']} "
             f"--min-chars {chosen['zh']['min']} --max-chars {chosen['zh']['max']}")
    print(f"chosen: {chosen} -> creative_titles.py {flags}")
    path = save("creative_length" + (f"_{args.tag}" if args.tag else ""), {"rows": rows, "chosen": chosen, "flags": flags, "grid": GRID,
                                    "settings": {**vars(args), "seconds": round(time.perf_counter() - start, 1)}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
