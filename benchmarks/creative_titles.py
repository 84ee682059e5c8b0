# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""Ad titles from selling points: LoRA-tuned Gemma 3 270M vs the n-gram baseline, Chinese and English.

* Chinese: AdvertiseGen dev (../shared/data/advertisegen/dev.json), split 80/20 by product (the
  attribute string); the reference is the copy's lead sentence (``title_data.lead_sentence``).
* English: Amazon 2018 Industrial & Scientific, split 80/20 by item; selling points = brand +
  phrases derived from the description (never the title); the reference is the real title.
  Training prompts for about half the English examples carry the user's real clicked titles
  (valid windows; history items that are test products are dropped), so the same adapter serves
  ``creative_history.py``.

Both generators see the same selling points. The n-gram baseline is fitted on the *whole*
training split; the LM adapter on a subsample (``--train-zh``/``--train-en``, CPU budget). No knob
is tuned: decoding (temperature, candidates) is fixed a priori, so nothing is chosen on test.
Metrics: sacrebleu corpus BLEU-4 (``tokenize="zh"`` for Chinese), rouge-score ROUGE-L F1 on
jieba/regex words, hallucination = unsupported content words / content words
(``constraint.content_support``), repetition of content words, distinct-1/2, words per title; and
the independent judge (``creative.judge``): the share of titles that pass every check, failures
per check, and its own unsupported share. The LM rows add paired-bootstrap 95 % CIs of the LM's
BLEU-4 / ROUGE-L gain over each baseline, the fallback count (and the pass-all share that counts a
fallback as a failure: the verdict's figure), ``--few-shot K`` a row for the
un-tuned backbone with K training examples in its prompt, and (``--perplexity``) the un-tuned
backbone's perplexity of every generator's titles. The judge also runs on the references (real
titles and lead sentences), as a calibration of its structural checks; its unsupported share there
says how much of the real title the selling points cannot express.

    .venv/bin/python benchmarks/creative_titles.py [--train-zh 300 --train-en 300 --test 80 --epochs 2]
    .venv/bin/python benchmarks/creative_titles.py --no-lm --test 200   # baselines + judge only (seconds)
    .venv/bin/python benchmarks/creative_titles.py --train-zh 865 --train-en 2446 --valid 150 --epochs 6 \
        --patience 1 --test 200 --adapter runs/creative_lm/adapter-v2   # the one-off big run (hours on one CPU core)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

# benchmarks/tokenizers.py would shadow the `tokenizers` package that transformers imports
sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save
from genads.creative import lm_titles as lt
from genads.creative.constraint import content_support, is_function_word
from genads.creative.judge import judge_title, judge_titles, perplexity
from genads.creative.lm import load_backbone
from genads.creative.metrics import distinct_n, paired_bootstrap, repetition_rate, rouge_l_f, sacre_bleu
from genads.creative.ngram import NgramTitleGenerator
from genads.creative.product_types import type_lexicon
from genads.creative.text import join_words, restore_case, tokenize
from genads.creative.title_data import (
    advertisegen_products,
    amazon_products,
    amazon_windows,
    group_key,
    split_products,
)
from genads.creative.title_rules import LengthBudget

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CATEGORY = "Industrial_and_Scientific"
LEXICON_CATEGORY = "Office_Products"
HISTORY_LENGTHS = (3, 5, 10)


def splits(seed: int, type_points: bool = False) -> dict:
    """Products and windows, split by product; shared with creative_history.py.

    ``type_points``: English products get a type point (``product_types``) from a lexicon of the training
    split's titles and every Office Products title, never a test title; the split is the same either way."""
    zh = advertisegen_products(DATA / "advertisegen" / "dev.json")
    zh_train, zh_test = split_products([group_key(p) for p in zh], 0.2, seed)
    en = amazon_products(DATA / "amazon18" / f"{CATEGORY}.item.json")
    en_train, en_test = split_products(list(en), 0.2, seed)
    if type_points:
        other = amazon_products(DATA / "amazon18" / f"{LEXICON_CATEGORY}.item.json")
        lexicon = type_lexicon([(en[i].target, en[i].brand) for i in sorted(en_train)] +
                               [(p.target, p.brand) for p in other.values()])
        en = amazon_products(DATA / "amazon18" / f"{CATEGORY}.item.json", type_lexicon=lexicon)
    return {"zh_train": [p for p in zh if group_key(p) in zh_train], "zh_test": [p for p in zh if group_key(p) in zh_test],
            "en": en, "en_train": en_train, "en_test": en_test,
            "valid_windows": amazon_windows(DATA / "amazon18" / f"{CATEGORY}.valid.csv"),
            "test_windows": amazon_windows(DATA / "amazon18" / f"{CATEGORY}.test.csv")}


def sampled_examples(s: dict, n_zh: int, n_en: int, seed: int) -> list[tuple[lt.TitleExample, object]]:
    """The seeded LoRA sample as (example, product) pairs, shuffled; its first ``--valid`` pairs are held out of
    training (the adapter's validation loss, and ``creative_length.py``'s validation products)."""
    rng = np.random.default_rng(seed)
    zh = [s["zh_train"][i] for i in rng.permutation(len(s["zh_train"]))[:n_zh]]
    out = [(lt.TitleExample(p.selling_points, p.target), p) for p in zh]
    by_item: dict[str, list] = {}
    for w in s["valid_windows"]:
        if w.item_id in s["en_train"] and w.item_id in s["en"]:
            by_item.setdefault(w.item_id, []).append(w)
    items = sorted(s["en_train"] & set(s["en"]))
    for iid in [items[i] for i in rng.permutation(len(items))[:n_en]]:
        p, history = s["en"][iid], ()
        if iid in by_item and rng.random() < 0.5:
            w = by_item[iid][int(rng.integers(len(by_item[iid])))]
            titles = [t for t, h in zip(w.history_titles, w.history_ids, strict=True) if h not in s["en_test"]]
            history = tuple(titles[-int(rng.choice(HISTORY_LENGTHS)):])
        out.append((lt.TitleExample(p.selling_points, p.target, history), p))
    return [out[i] for i in rng.permutation(len(out))]


def training_examples(s: dict, n_zh: int, n_en: int, seed: int) -> list[lt.TitleExample]:
    return [e for e, _ in sampled_examples(s, n_zh, n_en, seed)]


def train_or_load(args: argparse.Namespace, s: dict) -> tuple[lt.LMTitleGenerator, dict]:
    backbone = load_backbone(args.backbone, cache_dir=args.cache_dir)
    adapter = Path(args.adapter)
    if args.reuse_adapter and (adapter / lt.ADAPTER_META).exists():
        import json

        info = json.loads((adapter / lt.ADAPTER_META).read_text())
        print(f"reusing adapter {adapter} ({info.get('examples')} examples)")
    else:
        data = training_examples(s, args.train_zh, args.train_en, args.seed)
        valid, data = data[:args.valid], data[args.valid:]  # held out of the (shuffled) training sample
        model, tok = lt.load_model(backbone.path)
        cfg = lt.LoraConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, lr=args.lr,
                            max_prompt_tokens=args.max_prompt_tokens, patience=args.patience, bf16=args.bf16)
        peft_model, info = lt.train_lora(model, tok, data, cfg, valid=valid)
        info.update({"train_zh": args.train_zh, "train_en": args.train_en,
                     "with_history": sum(bool(e.history) for e in data)})
        lt.save_adapter(peft_model, adapter, args.backbone, info)
        print(f"LoRA: {info['examples']} examples x {info['epochs']} epochs in {info['seconds']} s, "
              f"loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}; adapter in {adapter}")
    decode = lt.DecodeConfig(candidates=args.candidates, temperature=args.temperature, seed=args.seed,
                             max_new_tokens=args.max_new_tokens, budget=length_budget(args), rank=args.rank)
    return lt.LMTitleGenerator.from_dirs(backbone.path, adapter, decode), info


def length_budget(args: argparse.Namespace) -> LengthBudget:
    return LengthBudget(min_words=args.min_words, max_words=args.max_words, min_chars=args.min_chars,
                        max_chars=args.max_chars)


def score(name: str, lang: str, titles: list[str], refs: list[str], sources: list[list[str]], seconds: float,
          brands: list[str]) -> dict:
    bad = n = 0
    any_bad = 0
    for t, src in zip(titles, sources, strict=True):
        b, c = content_support(t, src)
        bad, n, any_bad = bad + b, n + c, any_bad + (b > 0)
    rep = [repetition_rate([w for w in tokenize(t) if not is_function_word(w)]) for t in titles]
    judged = judge_titles(titles, sources, lang, brands)
    return {"lang": lang, "generator": name, "bleu4": sacre_bleu(titles, refs, chinese=lang == "zh"),
            "rouge_l": rouge_l_f(titles, refs), "hallucinated_words": bad / max(n, 1),
            "titles_with_hallucination": any_bad / len(titles), "repetition": float(np.mean(rep)),
            "distinct_1": distinct_n(titles, 1), "distinct_2": distinct_n(titles, 2),
            "words": float(np.mean([len(tokenize(t)) for t in titles])), "empty": sum(not t for t in titles),
            "judge_pass_all": judged["pass_all"], "judge_unsupported": judged["unsupported_share"],
            **{f"judge_fail_{k}": v for k, v in judged["failures"].items()}, "s_per_title": seconds / len(titles)}


def evaluate(lang: str, products: list, baseline: NgramTitleGenerator, lms: dict[str, lt.LMTitleGenerator],
             bootstrap: int, seed: int) -> tuple[list, list, dict]:
    """Baselines and every LM generator on ``products``; paired-bootstrap CIs of each LM over each baseline."""
    refs = [p.target for p in products]
    sources = [list(p.selling_points) for p in products]
    brands = [p.brand for p in products]
    rows, examples, titles = [], [], {}
    t0 = time.perf_counter()
    titles["n-gram baseline"] = [join_words(restore_case(baseline(list(p.selling_points)), list(p.selling_points)))
                                 for p in products]
    rows.append(score("n-gram baseline", lang, titles["n-gram baseline"], refs, sources, time.perf_counter() - t0,
                      brands))
    titles["selling points joined"] = [("，" if lang == "zh" else ", ").join(p.selling_points) for p in products]
    rows.append(score("selling points joined", lang, titles["selling points joined"], refs, sources, 0.0, brands))
    cis: dict = {}
    for name, gen in lms.items():
        t0 = time.perf_counter()
        results = [gen.generate(list(p.selling_points), brand=p.brand)
                   for p in tqdm(products, desc=f"{name} ({lang})", unit="title")]
        titles[name] = [r.title for r in results]
        rows.append(score(name, lang, titles[name], refs, sources, time.perf_counter() - t0, brands))
        rows[-1]["fallback"] = sum(r.fallback for r in results)
        judged = [j.passed and not r.fallback for j, r in zip(
            (judge_title(t, src, lang, b) for t, src, b in zip(titles[name], sources, brands, strict=True)), results,
            strict=True)]
        rows[-1]["judge_pass_all_written"] = float(np.mean(judged))  # a fallback (points joined) counts as a failure
        cis[name] = {other: {m: paired_bootstrap(f, titles[name], titles[other], refs, n=bootstrap, seed=seed)
                             for m, f in (("bleu4", lambda h, r: sacre_bleu(h, r, chinese=lang == "zh")),
                                          ("rouge_l", rouge_l_f))}
                     for other in ("n-gram baseline", "selling points joined")}
    for i, p in enumerate(products[:12]):
        examples.append({"lang": lang, "selling_points": list(p.selling_points), "reference": p.target, "brand": p.brand,
                         **{name: ts[i] for name, ts in titles.items()}})
    return rows, examples, {"titles": titles, "ci_lm_minus": cis}


def add_perplexity(rows: list, titles: dict, backbone_path: Path) -> None:
    """The un-tuned backbone's mean perplexity of each generator's titles (fluency proxy)."""
    model, tok = lt.load_model(backbone_path)
    for row in rows:
        ppl = perplexity(model, tok, titles[row["lang"]][row["generator"]])
        finite = [x for x in ppl if np.isfinite(x)]
        row["perplexity_median"] = float(np.median(finite)) if finite else float("inf")


def verdict_of(rows: list, cis: dict, lang: str) -> dict:
    """The issue's "Done when" lines for each LM row of ``lang``."""
    out = {}
    for r in rows:
        if r["lang"] != lang or r["generator"] not in cis[lang]:
            continue
        v = {"judge_pass_all_ge_95pct": r["judge_pass_all_written"] >= 0.95, "no_empty": r["empty"] == 0,
             "no_wrong_script": r["judge_fail_script"] == 0, "judge_hallucination_le_2pct": r["judge_unsupported"] <= 0.02}
        for other, ci in cis[lang][r["generator"]].items():
            for m in ("bleu4", "rouge_l"):
                v[f"beats_{other.split()[0]}_{m}_ci_above_0"] = ci[m]["lo"] > 0
        out[r["generator"]] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--cache-dir", default="runs/creative_lm", help="where the dequantised backbone is cached")
    ap.add_argument("--train-zh", type=int, default=300)
    ap.add_argument("--train-en", type=int, default=300)
    ap.add_argument("--test", type=int, default=80, help="held-out products per language")
    ap.add_argument("--epochs", type=int, default=1, help="at most this many epochs (fewer when --valid stops it)")
    ap.add_argument("--valid", type=int, default=0,
                    help="examples taken out of the training sample for validation loss and early stopping")
    ap.add_argument("--patience", type=int, default=2, help="epochs without a lower validation loss before stopping")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-prompt-tokens", type=int, default=128)
    ap.add_argument("--bf16", action="store_true", help="LoRA training with bfloat16 matrix products (CPU autocast)")
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rank", choices=lt.RANKS, default="logprob",
                    help="candidate order after the rules (creative_length.py chooses it on validation)")
    ap.add_argument("--min-words", type=int, default=LengthBudget.min_words, help="English title length budget")
    ap.add_argument("--max-words", type=int, default=LengthBudget.max_words)
    ap.add_argument("--min-chars", type=int, default=LengthBudget.min_chars, help="Chinese: CJK characters")
    ap.add_argument("--max-chars", type=int, default=LengthBudget.max_chars)
    ap.add_argument("--adapter", default="runs/creative_lm/adapter-bench")
    ap.add_argument("--reuse-adapter", action="store_true", help="skip training when the adapter exists")
    ap.add_argument("--no-lm", action="store_true",
                    help="no LoRA row (baselines, judge, --few-shot rows); saves creative_titles_baselines / _fewshot")
    ap.add_argument("--few-shot", type=int, default=0,
                    help="also the un-tuned backbone with this many training examples in its prompt (no-training baseline)")
    ap.add_argument("--perplexity", action="store_true", help="median perplexity of every row under the un-tuned backbone")
    ap.add_argument("--bootstrap", type=int, default=1000, help="paired-bootstrap resamples for the LM's CIs")
    ap.add_argument("--type-points", action="store_true",
                    help="English products get the description's product noun phrase as a type point (product_types)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    s = splits(args.seed, args.type_points)
    print(f"zh: {len(s['zh_train'])} train / {len(s['zh_test'])} test lines; en: {len(s['en_train'])} train / "
          f"{len(s['en_test'])} test items")
    gen, info = (None, {}) if args.no_lm else train_or_load(args, s)
    shots_rng = np.random.default_rng(args.seed + 2)
    rng = np.random.default_rng(args.seed + 1)
    zh_test = [s["zh_test"][i] for i in rng.permutation(len(s["zh_test"]))[:args.test]]
    en_items = sorted(s["en_test"])
    en_test = [s["en"][en_items[i]] for i in rng.permutation(len(en_items))[:args.test]]
    rows, examples, titles, cis, refs_judged = [], [], {}, {}, {}
    for lang, train, test in (("zh", s["zh_train"], zh_test),
                              ("en", [s["en"][i] for i in sorted(s["en_train"])], en_test)):
        baseline = NgramTitleGenerator.fit([list(p.selling_points) for p in train], [p.target for p in train])
        lms = {} if gen is None else {f"{Path(args.backbone).name} + LoRA": gen}
        if args.few_shot:
            shots = [lt.TitleExample(p.selling_points, p.target) for p in
                     (train[i] for i in shots_rng.permutation(len(train))[:args.few_shot])]
            base, tok = lt.load_model(load_backbone(args.backbone, cache_dir=args.cache_dir).path)
            lms[f"{Path(args.backbone).name}, {args.few_shot}-shot"] = lt.LMTitleGenerator(base, tok, gen.decode if gen else lt.DecodeConfig(
                candidates=args.candidates, temperature=args.temperature, seed=args.seed,
                budget=length_budget(args), rank=args.rank), shots=shots)
        r, e, extra = evaluate(lang, test, baseline, lms, args.bootstrap, args.seed)
        rows, examples, titles[lang], cis[lang] = rows + r, examples + e, extra["titles"], extra["ci_lm_minus"]
        refs_judged[lang] = judge_titles([p.target for p in test], [list(p.selling_points) for p in test], lang,
                                         [p.brand for p in test])
        refs_judged[lang]["points_per_product"] = float(np.mean([len(p.selling_points) for p in test]))
        refs_judged[lang]["words_per_point"] = float(np.mean([len(tokenize(x)) for p in test for x in p.selling_points]))
    if args.perplexity:
        add_perplexity(rows, titles, load_backbone(args.backbone, cache_dir=args.cache_dir).path)
    print_table(rows, "Titles on held-out products (sacrebleu BLEU-4, rouge-score ROUGE-L, independent judge)")
    verdict = {lang: verdict_of(rows, cis, lang) for lang in ("zh", "en")}
    print({"references_judged": refs_judged, "ci_lm_minus": cis, "verdict": verdict})
    name = "creative_titles" if not args.no_lm else "creative_titles_fewshot" if args.few_shot else "creative_titles_baselines"
    path = save(name,
                {"rows": rows, "verdict": verdict, "ci_lm_minus": cis, "references_judged": refs_judged,
                 "examples": examples, "lora": info, "titles": titles,
                 "settings": {**vars(args), "test_zh": len(zh_test), "test_en": len(en_test),
                              "seconds": round(time.perf_counter() - start, 1)}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
