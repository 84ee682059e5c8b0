# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""History length x sampling strategy -> BLEU / ROUGE-L / PBS, after Uni-AdGen's appendix Tables 1-2.

Two settings, both seeded:

* **AdvertiseGen (real copy, text only).** ../shared/data/advertisegen/dev.json (1,070 lines), split
  80/20 by a seeded permutation. AdvertiseGen has no users, so each evaluation example gets a
  simulated user: 30 clicked ads drawn from the training split, 70 % from the target's interest
  cluster (same 类型 and first 风格/图案 value, falling back to the same 类型) and 30 % at random
  (sample-level noise). The reference is the real copy projected onto the selling-point words
  (the best any constrained title can do); ``rouge_l_copy`` scores against the full copy.
* **Generated PAd1M-style fixtures (images + titles).** ``genads.creative.fixtures``: users with a
  per-group palette/texture and a selling-point order, 24 clicked ads each, 30 % noisy clicks.
  PBS compares the 300x250 banner (product and text masked) with the clicked ad (product masked).

* **Amazon 2018 real histories (text).** Industrial & Scientific test windows (a real user's up to
  10 clicked titles -> the next item) whose next item is a held-out product of
  ``creative_titles.py``'s split. Selling points = brand + description phrases; reference = the
  real title. History length 0/3/5/10 x random / most-similar / coarse-to-fine, product similarity
  from the hashing encoder on the selling points. Generators: the n-gram baseline (fitted on the
  training products) and the LoRA-tuned Gemma 3 270M of ``creative_titles.py`` (its adapter,
  trained with real histories in about half of the English prompts; ``--lm-users`` windows, CPU
  budget). Besides BLEU-4/ROUGE-L (sacrebleu, rouge-score): style match to the history shown
  (length gap, capitalisation gap, word overlap) and the copy rate of 4-grams from the history.

Generators: the n-gram baseline (background model fitted on the training split) and the title
transformer (trained from scratch on 90 % of the training split with simulated histories of 0-10
items; the end-of-title logit bias is chosen on the other 10 %).

    .venv/bin/python benchmarks/creative_history.py [--epochs 20] [--fixture-users 60] [--skip-transformer]
    .venv/bin/python benchmarks/creative_history.py --only-real [--real-users 300 --lm-users 24]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

# benchmarks/tokenizers.py would shadow the `tokenizers` package that transformers imports
sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, print_table, save
from genads.creative import transformer as tt
from genads.creative.encoders import HashingEncoder
from genads.creative.fixtures import make_user
from genads.creative.history import STRATEGIES, HistoryConfig, sample_history
from genads.creative.metrics import corpus_bleu, factuality, is_copy, repetition_rate, rouge_l
from genads.creative.ngram import NgramTitleGenerator, project
from genads.creative.pipeline import CreativePipeline
from genads.creative.records import CopyExample, load_advertisegen
from genads.creative.text import selling_point_vocab, tokenize

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "advertisegen" / "dev.json"
LENGTHS = (0, 3, 5, 10)
POOL, ON_CLUSTER = 30, 0.7
EOS_BIASES = (0.0, -1.0, -2.0, -3.0)


def cluster(ex: CopyExample) -> tuple[str, str]:
    attrs = dict(ex.attributes[:1])
    style = next((v for k, v in ex.attributes if k in ("风格", "图案")), "")
    return attrs.get("类型", ""), style


def simulated_history(ex: CopyExample, train: list[CopyExample], rng: np.random.Generator, skip: int | None = None) -> list[int]:
    """Indices into ``train``: POOL clicked ads, ON_CLUSTER of them from the target's interest cluster."""
    c = cluster(ex)
    same = [i for i, t in enumerate(train) if cluster(t) == c and i != skip]
    if len(same) < 5:
        same = [i for i, t in enumerate(train) if cluster(t)[0] == c[0] and i != skip]
    n_on = min(len(same), round(POOL * ON_CLUSTER))
    on = rng.choice(same, size=n_on, replace=False).tolist()
    others = [i for i in range(len(train)) if i != skip and i not in set(on)]
    off = rng.choice(others, size=POOL - n_on, replace=False).tolist()
    return [int(i) for i in rng.permutation(on + off)]


def text_scores(hyps: list[list[str]], evals: list[CopyExample]) -> dict[str, float]:
    refs = [project(tokenize(e.copy), selling_point_vocab(list(e.selling_points))) for e in evals]
    sps = [list(e.selling_points) for e in evals]
    return {"bleu": corpus_bleu(hyps, [[r] for r in refs]),
            "rouge_l": float(np.mean([rouge_l(h, r) for h, r in zip(hyps, refs, strict=True)])),
            "rouge_l_copy": float(np.mean([rouge_l(h, tokenize(e.copy)) for h, e in zip(hyps, evals, strict=True)])),
            "factuality": float(np.mean([factuality(h, s) for h, s in zip(hyps, sps, strict=True)])),
            "repetition": float(np.mean([repetition_rate(h) for h in hyps])),
            "copy_rate": float(np.mean([is_copy(h, s) for h, s in zip(hyps, sps, strict=True)]))}


def train_transformer(train: list[CopyExample], epochs: int, seed: int) -> tuple[tt.TransformerTitleGenerator, dict]:
    """Fit on 90 % of the training split; choose the end-of-title bias on the other 10 % (by BLEU)."""
    rng = np.random.default_rng(seed + 1)
    data = []
    for i, ex in enumerate(train):
        pool = simulated_history(ex, train, rng, skip=i)
        k = int(rng.choice(LENGTHS))
        data.append(tt.TitleExample(ex.selling_points, "", tuple(train[j].copy for j in pool[:k]), ex.copy))
    cut = int(0.9 * len(data))
    start = time.perf_counter()
    model, vocab, losses = tt.fit(data[:cut], train=tt.TrainConfig(epochs=epochs, seed=seed))
    held = train[cut:]
    bleu = {}
    for bias in EOS_BIASES:
        gen = tt.TransformerTitleGenerator(model, vocab, eos_bias=bias)
        bleu[bias] = text_scores([gen(list(e.selling_points), "", list(d.history_titles))
                                  for e, d in zip(held, data[cut:], strict=True)], held)["bleu"]
    best = max(bleu, key=bleu.get)
    info = {"examples": cut, "held_out": len(held), "epochs": epochs, "seconds": round(time.perf_counter() - start),
            "loss_first": losses[0], "loss_last": losses[-1], "held_out_bleu_by_eos_bias": bleu, "eos_bias": best}
    print(f"transformer: {info}")
    return tt.TransformerTitleGenerator(model, vocab, eos_bias=best), info


def advertisegen(args: argparse.Namespace) -> tuple[list[dict], dict]:
    examples, errors = load_advertisegen(DATA, on_error="skip")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(examples))
    cut = int(0.8 * len(examples))
    train, evals = [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]
    print(f"AdvertiseGen: {len(train)} train / {len(evals)} eval ({len(errors)} malformed)")
    generators = {"ngram": NgramTitleGenerator.fit([list(e.selling_points) for e in train], [e.copy for e in train])}
    info: dict = {}
    if not args.skip_transformer:
        generators["transformer"], info = train_transformer(train, args.epochs, args.seed)
    enc = HashingEncoder()
    pools = [simulated_history(e, train, np.random.default_rng(args.seed + 100 + j)) for j, e in enumerate(evals)]
    train_vecs = enc([e.copy for e in train])
    prod_vecs = enc([" ".join(e.selling_points) for e in evals])
    rows = []
    for strategy in STRATEGIES:
        for n in LENGTHS:
            if n == 0 and strategy != STRATEGIES[0]:
                continue  # no history: the strategy does not matter
            cfg = HistoryConfig(n=n, strategy=strategy)
            hist = []
            for j, (e, pool) in enumerate(zip(evals, pools, strict=True)):
                idx = sample_history(prod_vecs[j], train_vecs[pool], [train[i].copy for i in pool], e.copy, cfg,
                                     np.random.default_rng(args.seed + j)) if n else []
                hist.append([train[pool[i]].copy for i in idx])
            for name, gen in generators.items():
                hyps = [gen(list(e.selling_points), "", h) for e, h in zip(evals, hist, strict=True)]
                rows.append({"data": "advertisegen", "generator": name, "strategy": strategy if n else "-",
                             "history": n, **text_scores(hyps, evals)})
                print_row(rows[-1])
    copy_hyps = [[w for sp in e.selling_points for w in tokenize(sp)] for e in evals]
    rows.append({"data": "advertisegen", "generator": "copy selling points", "strategy": "-", "history": 0,
                 **text_scores(copy_hyps, evals)})
    return rows, info


def print_row(row: dict) -> None:
    print("  " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def fixtures(args: argparse.Namespace) -> list[dict]:
    rng = np.random.default_rng(args.seed + 7)
    users = [make_user(rng, u, n_history=24, noise=0.3) for u in range(args.fixture_users)]
    rows = []
    for strategy in STRATEGIES:
        for n in LENGTHS:
            if n == 0 and strategy != STRATEGIES[0]:
                continue
            pipe = CreativePipeline(NgramTitleGenerator(), history=HistoryConfig(n=n, strategy=strategy), sizes=((300, 250),))
            scores, hyps, refs = defaultdict(list), [], []
            for u, (rec, images, masks) in enumerate(users):
                out = pipe(rec, images[str(rec.product.image)], [images[str(h.image)] for h in rec.history],
                           np.random.default_rng(args.seed + u), target_image=images[str(rec.target_image)],
                           target_mask=masks[str(rec.target_image)],
                           history_masks=[masks[str(h.image)] for h in rec.history])
                hyps.append(out.words)
                refs.append([tokenize(rec.target_title)])
                for k in ("pbs", "rouge_l", "factuality", "repetition"):
                    scores[k].append(out.metrics[k])
            rows.append({"data": "fixtures", "generator": "ngram", "strategy": strategy if n else "-", "history": n,
                         "pbs": float(np.mean(scores["pbs"])), "bleu": corpus_bleu(hyps, refs),
                         **{k: float(np.mean(v)) for k, v in scores.items() if k != "pbs"}})
            print_row(rows[-1])
    return rows


def real_histories(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """The Uni-AdGen table on real Amazon 2018 histories (see the module docstring)."""
    from benchmarks.creative_titles import splits
    from genads.creative import lm_titles as lt
    from genads.creative.constraint import content_support
    from genads.creative.lm import available, load_backbone
    from genads.creative.metrics import history_copy_rate, rouge_l_f, sacre_bleu, style_match
    from genads.creative.text import join_words, restore_case

    s = splits(args.seed)
    en = s["en"]
    windows = [w for w in s["test_windows"] if w.item_id in s["en_test"] and w.item_id in en and w.history_titles]
    rng = np.random.default_rng(args.seed + 11)
    windows = [windows[i] for i in rng.permutation(len(windows))[:args.real_users]]
    train = [en[i] for i in sorted(s["en_train"])]
    baseline = NgramTitleGenerator.fit([list(p.selling_points) for p in train], [p.target for p in train])
    lm = None
    adapter = Path(args.adapter)
    if args.lm_users > 0 and available(args.backbone) and (adapter / lt.ADAPTER_META).exists():
        lm = lt.LMTitleGenerator.from_dirs(load_backbone(args.backbone).path, adapter,
                                           lt.DecodeConfig(candidates=4, max_new_tokens=28, seed=args.seed))
    else:
        print(f"no LM rows: backbone {args.backbone} or adapter {adapter} missing (run creative_titles.py first)")
    enc = HashingEncoder()
    rows, examples, memo = [], [], {}
    for strategy in STRATEGIES:
        for n in LENGTHS:
            if n == 0 and strategy != STRATEGIES[0]:
                continue
            cfg = HistoryConfig(n=n, strategy=strategy)
            hists = []
            for j, w in enumerate(windows):
                p = en[w.item_id]
                if n == 0:
                    hists.append([])
                    continue
                vecs = enc([" ".join(p.selling_points), *w.history_titles])
                idx = sample_history(vecs[0], vecs[1:], list(w.history_titles), p.target, cfg,
                                     np.random.default_rng(args.seed + j))
                hists.append([w.history_titles[i] for i in idx])
            gens = {"n-gram baseline": lambda p, h: join_words(restore_case(baseline(list(p.selling_points), "", h),
                                                                            list(p.selling_points)))}
            if lm is not None:
                def lm_title(p, h):  # decoding is seeded by the prompt: equal histories give equal titles
                    key = (p.id, tuple(h))
                    if key not in memo:
                        memo[key] = lm.title(list(p.selling_points), "", h)
                    return memo[key]
                gens["Gemma 3 270M + LoRA"] = lm_title
            for name, gen in gens.items():
                m = len(windows) if name.startswith("n-gram") else min(args.lm_users, len(windows))
                prods = [en[w.item_id] for w in windows[:m]]
                titles = [gen(p, h) for p, h in zip(prods, hists[:m], strict=True)]
                refs = [p.target for p in prods]
                styles = [style_match(t, h) for t, h in zip(titles, hists[:m], strict=True) if h]
                support = [content_support(t, list(p.selling_points)) for t, p in zip(titles, prods, strict=True)]
                row = {"data": "amazon18", "generator": name, "strategy": strategy if n else "-", "history": n,
                       "users": m, "bleu4": sacre_bleu(titles, refs, chinese=False), "rouge_l": rouge_l_f(titles, refs),
                       "hallucinated_words": sum(b for b, _ in support) / max(sum(c for _, c in support), 1),
                       "history_copy4": float(np.mean([history_copy_rate(t, h) for t, h in zip(titles, hists[:m], strict=True)])),
                       **{k: float(np.mean([st[k] for st in styles])) if styles else float("nan")
                          for k in ("length_gap", "caps_gap", "word_overlap")}}
                rows.append(row)
                print_row(row)
                if n in (0, 10) and strategy in ("random", "coarse_to_fine"):
                    examples += [{"generator": name, "history": n, "strategy": row["strategy"], "title": t, "real": r}
                                 for t, r in list(zip(titles, refs, strict=True))[:3]]
    return rows, examples


def verdict(rows: list[dict]) -> dict:
    """Does history help (best h > 0 row vs h = 0, per generator), and does coarse-to-fine beat the others?"""
    out = {}
    for gen in sorted({r["generator"] for r in rows}):
        mine = [r for r in rows if r["generator"] == gen]
        h0 = next(r for r in mine if r["history"] == 0)
        best = max((r for r in mine if r["history"] > 0), key=lambda r: r["rouge_l"])
        c2f = max((r for r in mine if r["strategy"] == "coarse_to_fine"), key=lambda r: r["rouge_l"])
        others = max((r for r in mine if r["strategy"] in ("random", "similar")), key=lambda r: r["rouge_l"])
        out[gen] = {"rouge_l_h0": h0["rouge_l"], "bleu4_h0": h0["bleu4"], "best_with_history": best,
                    "history_helps_rouge_l": best["rouge_l"] > h0["rouge_l"],
                    "coarse_to_fine_best": c2f["rouge_l"] >= others["rouge_l"],
                    "coarse_to_fine_rouge_l": c2f["rouge_l"], "best_other_rouge_l": others["rouge_l"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--fixture-users", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model)")
    ap.add_argument("--skip-transformer", action="store_true")
    ap.add_argument("--only-real", action="store_true",
                    help="run only the Amazon 2018 real-history table; keep the other sections of the last JSON")
    ap.add_argument("--real-users", type=int, default=300, help="real-history windows for the n-gram rows")
    ap.add_argument("--lm-users", type=int, default=24, help="of those, windows the LM titles (CPU budget)")
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--adapter", default="runs/creative_lm/adapter-bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    real_rows, real_examples = real_histories(args)
    print_table([{k: v for k, v in r.items() if k != "data"} for r in real_rows], "Amazon 2018 real user histories")
    real = {"rows": real_rows, "examples": real_examples, "verdict": verdict(real_rows)}
    print(json.dumps(real["verdict"], indent=1, default=str))
    if args.only_real:
        previous = RESULTS / "creative_history.json"
        old = json.loads(previous.read_text()) if previous.exists() else {}
        figures = {**old.get("figures", {}), "amazon18_real_histories": real,
                   "previous_sections_from": {k: old.get(k) for k in ("command", "git_sha", "date")}}
        figures["settings_real"] = {**vars(args), "seconds": round(time.perf_counter() - start, 1)}
        print(f"\nwrote {save('creative_history', figures)}")
        return
    text_rows, t_info = advertisegen(args)
    image_rows = fixtures(args)
    print_table([{k: v for k, v in r.items() if k != "data"} for r in text_rows], "AdvertiseGen dev (real copy)")
    print_table([{k: v for k, v in r.items() if k != "data"} for r in image_rows], "Generated PAd1M-style fixtures")
    path = save("creative_history", {"advertisegen": text_rows, "fixtures": image_rows, "transformer": t_info,
                                     "amazon18_real_histories": real,
                                     "settings": {**vars(args), "pool": POOL, "on_cluster": ON_CLUSTER,
                                                  "seconds": round(time.perf_counter() - start, 1)}})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
