"""``genads creative generate|train|fixtures``: personalised ad titles and banners."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genads.creative import lm_titles, transformer
from genads.creative.banner import text_card
from genads.creative.encoders import HashingEncoder, MiniLMEncoder
from genads.creative.fixtures import write_fixtures
from genads.creative.history import STRATEGIES, HistoryConfig
from genads.creative.inpaint import InpaintBackground, InpaintConfig, MissingDependencyError
from genads.creative.lm import BACKBONES, load_backbone
from genads.creative.ngram import NgramTitleGenerator
from genads.creative.pipeline import CreativePipeline, TitleGenerator
from genads.creative.product_types import type_lexicon
from genads.creative.records import CreativeRecord, load_advertisegen, load_records
from genads.creative.title_data import advertisegen_products, amazon_products
from genads.data.dataset import atomic_write_text


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not m or min(int(m[1]), int(m[2])) < 64:
            raise ValueError(f"--sizes entry {part!r} must be WxH with both sides >= 64, e.g. 1200x628")
        sizes.append((int(m[1]), int(m[2])))
    return tuple(sizes)


def _image(path: Path | None, what: str) -> Image.Image | None:
    if path is None:
        return None
    if not path.exists():
        raise FileNotFoundError(f"{what} image {path} does not exist")
    return Image.open(path)


def _masks(path: Path | None, base: Path) -> dict[Path, np.ndarray]:
    if path is None:
        return {}
    with np.load(path) as z:
        return {(base / k.replace("__", "/")).resolve(): z[k] for k in z.files}


def build_generator(args: argparse.Namespace) -> TitleGenerator:
    if args.generator == "lm":
        if args.adapter is None:
            raise ValueError("--generator lm needs --adapter DIR (from `genads creative train --backbone ...`)")
        backbone = load_backbone(lm_titles.adapter_backbone(args.adapter), cache_dir=args.lm_cache)
        decode = lm_titles.DecodeConfig(candidates=args.candidates, temperature=args.temperature, seed=args.seed,
                                        rank=args.rank_by)
        return lm_titles.LMTitleGenerator.from_dirs(backbone.path, args.adapter, decode)
    if args.generator == "transformer":
        if args.model is None:
            raise ValueError("--generator transformer needs --model DIR (from `genads creative train`)")
        return transformer.load(args.model)
    if args.corpus is not None:
        examples, _ = load_advertisegen(args.corpus, on_error="skip")
        return NgramTitleGenerator.fit([list(e.selling_points) for e in examples], [e.copy for e in examples])
    return NgramTitleGenerator()


def build_background(args: argparse.Namespace) -> InpaintBackground | None:
    """None (the style's gradient) or the inpainting back-end loaded from ``--inpaint-model``."""
    if args.background == "gradient":
        return None
    if args.inpaint_model is None:
        raise ValueError("--background inpaint needs --inpaint-model DIR (a local diffusers inpainting folder)")
    config = InpaintConfig(steps=args.inpaint_steps, resolution=args.inpaint_resolution, seed=args.seed)
    try:
        return InpaintBackground.from_dir(args.inpaint_model, config, device=args.device)
    except MissingDependencyError as e:
        raise ValueError(str(e)) from e


def write_creative(out: Path, rec: CreativeRecord, pipe: CreativePipeline, masks: dict, rng: np.random.Generator) -> dict:
    p = rec.product
    cutout = _image(p.image, "product")
    cutout = text_card(p.title) if cutout is None else cutout.convert("RGBA")
    hist = [_image(h.image, f"history '{h.title}'") for h in rec.history]
    target = _image(rec.target_image, "target")
    result = pipe(rec, cutout, hist, rng, target_image=target,
                  target_mask=masks.get(rec.target_image.resolve()) if rec.target_image else None,
                  history_masks=[masks.get(h.image.resolve()) if h.image else None for h in rec.history])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "title.txt", result.title + "\n")
    layouts = {}
    for i, (size, banner) in enumerate(result.banners.items()):
        stem = "ad" if i == 0 else f"ad_{size[0]}x{size[1]}"
        banner.png.save(out / f"{stem}.png")
        atomic_write_text(out / f"{stem}.svg", banner.svg)
        layouts[f"{size[0]}x{size[1]}"] = {"png": f"{stem}.png", "svg": f"{stem}.svg", **banner.layout}
    layout = {"product_id": p.id, "title": result.title, "history_used": result.history_used, "sizes": layouts}
    atomic_write_text(out / "layout.json", json.dumps(layout, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "metrics.json", json.dumps(result.metrics, indent=2) + "\n")
    return result.metrics


def cmd_generate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    report = load_records(args.records, on_error=args.on_error)
    if report.errors:
        print(report.summary(), file=sys.stderr)
    encoder = MiniLMEncoder() if args.encoder == "minilm" else HashingEncoder()
    pipe = CreativePipeline(build_generator(args), encoder=encoder,
                            history=HistoryConfig(n=args.history, strategy=args.strategy), sizes=parse_sizes(args.sizes),
                            background=build_background(args))
    masks = _masks(args.masks, args.masks.parent if args.masks else Path())
    rng = np.random.default_rng(args.seed)
    rows, failed = [], 0
    for i, rec in enumerate(tqdm(report.records, desc="creatives", unit="ad", disable=args.quiet)):
        folder = args.out / f"{i:05d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', rec.product.id)[:60]}"
        try:
            rows.append(write_creative(folder, rec, pipe, masks, rng))
        except (FileNotFoundError, OSError, ValueError) as e:
            if args.on_error == "stop":
                raise
            failed += 1
            print(f"record {i} ({rec.product.id}): {e}", file=sys.stderr)
    keys = sorted({k for r in rows for k in r})
    summary = {"records": len(rows), "failed": failed, "malformed": len(report.errors),
               "mean": {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["mean"], indent=2))
    print(f"{len(rows)} creatives in {args.out}; {failed} failed; {len(report.errors)} malformed rows skipped")
    return 0 if not failed or args.on_error == "skip" else 1


def lm_examples(args: argparse.Namespace) -> list[lm_titles.TitleExample]:
    """(selling points -> title) pairs for LoRA from --corpus (AdvertiseGen), --amazon (item JSON) or --records."""
    if args.corpus is not None:
        return [lm_titles.TitleExample(p.selling_points, p.target) for p in advertisegen_products(args.corpus)]
    if args.amazon is not None:
        lexicon = frozenset()
        if args.type_points:  # the training titles (and --type-titles files) say which nouns name a product
            catalogues = [amazon_products(f) for f in [args.amazon, *args.type_titles]]
            lexicon = type_lexicon([(p.target, p.brand) for c in catalogues for p in c.values()],
                                   min_count=args.type_min_count)
        products = amazon_products(args.amazon, type_lexicon=lexicon)
        return [lm_titles.TitleExample(p.selling_points, p.target) for p in products.values()]
    recs = [r for r in load_records(args.records, on_error="skip").records if r.target_title]
    return [lm_titles.TitleExample(r.product.selling_points, r.target_title,
                                   tuple(h.title for h in r.history[-args.history:])) for r in recs]


def cmd_train_lm(args: argparse.Namespace) -> int:
    data = lm_examples(args)
    if args.max_examples:
        rng = np.random.default_rng(args.seed)
        data = [data[i] for i in rng.permutation(len(data))[:args.max_examples]]
    if not data:
        raise ValueError("no training examples (records need target_title)")
    backbone = load_backbone(args.backbone, cache_dir=args.lm_cache)
    model, tok = lm_titles.load_model(backbone.path)
    cfg = lm_titles.LoraConfig(rank=args.rank, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    peft_model, info = lm_titles.train_lora(model, tok, data, cfg)
    lm_titles.save_adapter(peft_model, args.out, args.backbone, info)
    print(f"LoRA on {backbone.name}: {len(data)} examples, loss {info['loss_first']:.3f} -> {info['loss_last']:.3f} "
          f"in {info['seconds']} s; adapter (safetensors) in {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.backbone is not None:
        return cmd_train_lm(args)
    if args.amazon is not None:
        raise ValueError("--amazon trains the LM only: add --backbone gemma3-270m (or smollm2-135m, or a model folder)")
    if args.corpus is not None:
        examples, _ = load_advertisegen(args.corpus, on_error="skip")
        data = [transformer.TitleExample(e.selling_points, "", (), e.copy) for e in examples]
    else:
        recs = [r for r in load_records(args.records, on_error="skip").records if r.target_title]
        data = [transformer.TitleExample(r.product.selling_points, r.product.description,
                                         tuple(h.title for h in r.history[-args.history:]), r.target_title) for r in recs]
    if not data:
        raise ValueError("no training examples (records need target_title)")
    model, vocab, losses = transformer.fit(data, train=transformer.TrainConfig(epochs=args.epochs, seed=args.seed))
    transformer.save(args.out, model, vocab)
    print(f"trained on {len(data)} examples, loss {losses[0]:.3f} -> {losses[-1]:.3f}; saved to {args.out}")
    return 0


def cmd_fixtures(args: argparse.Namespace) -> int:
    path = write_fixtures(args.out, n_users=args.users, seed=args.seed)
    print(f"wrote {args.users} records to {path} (images in {args.out}/img, product masks in masks.npz)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cr = sub.add_parser("creative", help="personalised ad titles and banners (history sampling, constrained titles)")
    csub = cr.add_subparsers(dest="creative_command", metavar="ACTION", required=True)

    p = csub.add_parser("generate", help="write title.txt, ad.svg, ad.png, layout.json, metrics.json per record")
    p.add_argument("--records", required=True, type=Path, help="records (.jsonl, or .csv with | separated lists)")
    p.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per record)")
    p.add_argument("--generator", choices=["baseline", "transformer", "lm"], default="baseline",
                   help="title generator: n-gram baseline, the from-scratch transformer, or a LoRA-tuned pretrained LM")
    p.add_argument("--model", type=Path, help="transformer folder from `genads creative train`")
    p.add_argument("--adapter", type=Path, help="--generator lm: adapter folder from `genads creative train --backbone`")
    p.add_argument("--candidates", type=int, default=4, help="--generator lm: samples reranked per title")
    p.add_argument("--temperature", type=float, default=0.7, help="--generator lm: sampling temperature")
    p.add_argument("--rank-by", choices=lm_titles.RANKS, default="logprob",
                   help="--generator lm: order of the finished samples (coverage: most selling-point words first)")
    p.add_argument("--lm-cache", type=Path, default=Path("runs/creative_lm"), help="fp32 cache of the backbone")
    p.add_argument("--corpus", type=Path, help="baseline: AdvertiseGen-style JSON lines for the background style model")
    p.add_argument("--history", type=int, default=10, help="history items to condition on")
    p.add_argument("--strategy", choices=STRATEGIES, default="coarse_to_fine", help="history sampling strategy")
    p.add_argument("--encoder", choices=["hashing", "minilm"], default="hashing",
                   help="product similarity: hashed words + character bigrams (any language), or offline MiniLM (English)")
    p.add_argument("--sizes", default="1200x628,1080x1080,300x250", help="banner sizes; the first is ad.png/ad.svg")
    p.add_argument("--masks", type=Path, help="npz of product masks for PBS (as written by `creative fixtures`)")
    p.add_argument("--background", choices=["gradient", "inpaint"], default="gradient",
                   help="banner background: the style's gradient, or painted by a local diffusers inpainting model")
    p.add_argument("--inpaint-model", type=Path, help="--background inpaint: local diffusers inpainting folder (no download)")
    p.add_argument("--inpaint-steps", type=int, default=25, help="--background inpaint: denoising steps")
    p.add_argument("--inpaint-resolution", type=int, default=512, help="--background inpaint: longer side the model runs at")
    p.add_argument("--device", default="cpu", help="--background inpaint: torch device, e.g. cpu or cuda")
    p.add_argument("--on-error", choices=["stop", "skip"], default="stop", help="on a malformed record or missing image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the models are tiny: 1 is usually fastest)")
    p.set_defaults(func=cmd_generate)

    p = csub.add_parser("train", help="LoRA-tune a pretrained LM (--backbone) or train the small transformer from scratch")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", type=Path, help="AdvertiseGen-style JSON lines (content k#v*k#v -> summary)")
    src.add_argument("--records", type=Path, help="records with target_title")
    src.add_argument("--amazon", type=Path, help="--backbone only: Amazon 2018 NAME.item.json (description -> title)")
    p.add_argument("--out", required=True, type=Path,
                   help="model folder (transformer: model.safetensors + config.json; LM: adapter_model.safetensors)")
    p.add_argument("--backbone", help=f"LoRA on a pretrained LM: one of {BACKBONES} or a transformers folder")
    p.add_argument("--lm-cache", type=Path, default=Path("runs/creative_lm"), help="fp32 cache of the backbone")
    p.add_argument("--rank", type=int, default=8, help="--backbone: LoRA rank")
    p.add_argument("--lr", type=float, default=5e-4, help="--backbone: learning rate")
    p.add_argument("--batch-size", type=int, default=8, help="--backbone: batch size")
    p.add_argument("--max-examples", type=int, default=0, help="--backbone: subsample (0 = all), for a CPU budget")
    p.add_argument("--type-points", action="store_true",
                   help="--amazon: add the description's product noun phrase as a selling point (a lexicon of the "
                        "file's titles and --type-titles)")
    p.add_argument("--type-titles", type=Path, nargs="*", default=[],
                   help="--type-points: more Amazon 2018 item JSONs whose titles feed the lexicon")
    p.add_argument("--type-min-count", type=int, default=3, help="--type-points: titles a head noun needs")
    p.add_argument("--epochs", type=int, default=30, help="epochs (the LM: 1-2 are plenty)")
    p.add_argument("--history", type=int, default=10, help="records: last N history titles per example")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the models are tiny: 1 is usually fastest)")
    p.set_defaults(func=cmd_train)

    p = csub.add_parser("fixtures", help="write generated PAd1M-style records with PIL-drawn products")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_fixtures)
