# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""Uni-AdGen's history claim on real users, with an LM and confidence intervals.

Uni-AdGen reports that titles conditioned on the user's clicked ads beat history-free titles, and that sampling
that history coarse-to-fine by product similarity beats other ways of choosing it. This benchmark tests both on
real Amazon 2018 users (Industrial & Scientific test windows: a real user's clicked titles -> the next item),
with the same products, selling points and split as ``creative_titles.py``:

* users whose next item is a held-out product and who clicked at least ``--min-history`` items before it
  (``--users`` of them, a seeded draw);
* four conditions per user: no history, and ``--history`` clicked titles chosen by ``recent`` (the last ones),
  ``random`` or ``coarse_to_fine`` (``genads.creative.history``; product similarity from the hashing encoder on
  the selling points, as in ``creative_history.py``);
* two generators: the LoRA-tuned LM of ``creative_titles.py`` (``--adapter``; decoding as there) and the n-gram
  baseline (fitted on the training products);
* per condition: BLEU-4 and ROUGE-L against the real title (sacrebleu, rouge-score), a click proxy (the cosine
  between MiniLM embeddings of the title and of the title of the item the user clicked next: semantic, where
  ROUGE is lexical), the independent judge's pass share, and paired-bootstrap 95 % CIs (users resampled) of each
  history condition minus no history, and of coarse-to-fine minus recent and minus random.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/creative_history_claim.py --adapter runs/creative_lm/adapter-v2 \\
        --cache-dir /tmp/creative_lm [--users 200 --history 3 --min-history 5]

Writes ``benchmarks/results/creative_history_claim.json`` (``--name``). Without the backbone or the adapter it
stops with a message (the n-gram rows alone do not test the claim for an LM).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

# benchmarks/tokenizers.py would shadow the tokenizers package that transformers imports
sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, save
from benchmarks.creative_titles import splits
from genads.creative import lm_titles as lt
from genads.creative.encoders import HashingEncoder, MiniLMEncoder
from genads.creative.history import HistoryConfig, sample_history
from genads.creative.judge import judge_title
from genads.creative.lm import available, load_backbone
from genads.creative.metrics import paired_bootstrap, rouge_l_f, sacre_bleu
from genads.creative.ngram import NgramTitleGenerator
from genads.creative.text import join_words, restore_case

CONDITIONS = ("none", "recent", "random", "coarse_to_fine")


def choose_users(s: dict, users: int, min_history: int, seed: int) -> list:
    """A seeded draw of test windows whose next item is a held-out product with at least ``min_history`` clicks
    before it."""
    en = s["en"]
    windows = [w for w in s["test_windows"] if w.item_id in s["en_test"] and w.item_id in en
               and len(w.history_titles) >= min_history]
    rng = np.random.default_rng(seed + 11)
    return [windows[i] for i in rng.permutation(len(windows))[:users]]


def histories(windows: list, products: list, n: int, seed: int) -> dict[str, list[list[str]]]:
    """{condition: one history (clicked titles, time order) per user}."""
    enc = HashingEncoder()
    out: dict[str, list[list[str]]] = {"none": [[] for _ in windows]}
    for strategy in CONDITIONS[1:]:
        cfg = HistoryConfig(n=n, strategy=strategy)
        rows = []
        for j, (w, p) in enumerate(zip(windows, products, strict=True)):
            vecs = enc([" ".join(p.selling_points), *w.history_titles])
            idx = sample_history(vecs[0], vecs[1:], list(w.history_titles), p.target, cfg,
                                 np.random.default_rng(seed + j))
            rows.append([w.history_titles[i] for i in idx])
        out[strategy] = rows
    return out


class ClickProxy:
    """Mean cosine of MiniLM embeddings between titles and the next clicked item's titles (embeddings cached)."""

    def __init__(self) -> None:
        self.enc, self.cache = MiniLMEncoder(), {}

    def vectors(self, texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in self.cache})
        if new:
            self.cache.update(zip(new, self.enc(new), strict=True))
        return np.stack([self.cache[t] for t in texts])

    def per_title(self, titles: list[str], refs: list[str]) -> np.ndarray:
        return (self.vectors(titles) * self.vectors(refs)).sum(1)

    def __call__(self, titles: list[str], refs: list[str]) -> float:
        return float(self.per_title(titles, refs).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--history", type=int, default=3, help="clicked titles shown to the generator")
    ap.add_argument("--min-history", type=int, default=5, help="users with at least this many clicks before")
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--cache-dir", default=None, help="where the dequantised backbone is cached")
    ap.add_argument("--adapter", default="runs/creative_lm/adapter-v2")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="creative_history_claim")
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    adapter = Path(args.adapter)
    if not available(args.backbone) or not (adapter / lt.ADAPTER_META).exists():
        raise SystemExit(f"backbone {args.backbone} or adapter {adapter} missing: run creative_titles.py first")
    s = splits(args.seed)
    en = s["en"]
    windows = choose_users(s, args.users, args.min_history, args.seed)
    if len(windows) < args.users:
        print(f"only {len(windows)} users have >= {args.min_history} clicks before a held-out product")
    products = [en[w.item_id] for w in windows]
    refs = [p.target for p in products]
    hists = histories(windows, products, args.history, args.seed)
    train = [en[i] for i in sorted(s["en_train"])]
    baseline = NgramTitleGenerator.fit([list(p.selling_points) for p in train], [p.target for p in train])
    decode = lt.DecodeConfig(candidates=args.candidates, temperature=args.temperature, seed=args.seed,
                             max_new_tokens=args.max_new_tokens)
    lm = lt.LMTitleGenerator.from_dirs(load_backbone(args.backbone, cache_dir=args.cache_dir).path, adapter, decode)
    titles: dict[str, dict[str, list[str]]] = {"n-gram baseline": {}, "LM + LoRA": {}}
    fallbacks: dict[str, int] = {}
    for cond in CONDITIONS:
        titles["n-gram baseline"][cond] = [
            join_words(restore_case(baseline(list(p.selling_points), "", h), list(p.selling_points)))
            for p, h in zip(products, hists[cond], strict=True)]
        results = [lm.generate(list(p.selling_points), h, brand=p.brand)
                   for p, h in tqdm(list(zip(products, hists[cond], strict=True)), desc=f"LM, history {cond}",
                                    unit="title")]
        titles["LM + LoRA"][cond] = [r.title for r in results]
        fallbacks[cond] = sum(r.fallback for r in results)
    proxy = ClickProxy()
    metrics = {"bleu4": lambda h, r: sacre_bleu(h, r, chinese=False), "rouge_l": rouge_l_f, "click_proxy": proxy}
    rows, cis = [], {}
    for gen, by_cond in titles.items():
        for cond, ts in by_cond.items():
            judged = [judge_title(t, list(p.selling_points), "en", p.brand).passed for t, p in zip(ts, products, strict=True)]
            row = {"generator": gen, "history": cond, "users": len(ts), **{m: f(ts, refs) for m, f in metrics.items()},
                   "judge_pass_all": float(np.mean(judged)), "words": float(np.mean([len(t.split()) for t in ts]))}
            if gen == "LM + LoRA":
                row["fallback"] = fallbacks[cond]
            rows.append(row)
        pairs = [(c, "none") for c in CONDITIONS[1:]] + [("coarse_to_fine", "recent"), ("coarse_to_fine", "random")]
        cis[gen] = {f"{a} - {b}": {m: paired_bootstrap(f, by_cond[a], by_cond[b], refs, n=args.bootstrap,
                                                       seed=args.seed) for m, f in metrics.items()}
                    for a, b in pairs}
    print_table(rows, f"Uni-AdGen's history claim: {len(windows)} real users, {args.history} clicked titles")
    ci_rows = [{"generator": g, "difference": k, **{m: f"{v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}]"
                                                    for m, v in d.items()}}
               for g, by in cis.items() for k, d in by.items()]
    print_table(ci_rows, "paired bootstrap, 95 % CI (users resampled)")
    lm_ci = cis["LM + LoRA"]
    verdict = {
        "history_helps": {c: {m: lm_ci[f"{c} - none"][m]["lo"] > 0 for m in metrics} for c in CONDITIONS[1:]},
        "history_hurts": {c: {m: lm_ci[f"{c} - none"][m]["hi"] < 0 for m in metrics} for c in CONDITIONS[1:]},
        "coarse_to_fine_beats": {o: {m: lm_ci[f"coarse_to_fine - {o}"][m]["lo"] > 0 for m in metrics}
                                 for o in ("recent", "random")}}
    examples = [{"selling_points": list(p.selling_points), "reference": p.target,
                 "history_coarse_to_fine": hists["coarse_to_fine"][i],
                 **{f"{g} / {c}": titles[g][c][i] for g in titles for c in CONDITIONS}}
                for i, p in enumerate(products[:12])]
    figures = {"rows": rows, "ci": cis, "verdict": verdict, "examples": examples, "titles": titles,
               "users": len(windows), "history_lengths": [len(w.history_titles) for w in windows],
               "settings": {**vars(args), "seconds": round(time.perf_counter() - start, 1)}}
    print(f"\nwrote {save(args.name, figures)}")


if __name__ == "__main__":
    main()
