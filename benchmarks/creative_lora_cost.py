# ruff: noqa: E402  (imports follow the sys.path set-up for running as a script)
"""What the big LoRA run of issue 30 will cost, measured on a handful of steps, and what prompts keep.

* Per-step cost: LoRA (the benchmark's settings) on ``--steps`` batches of real training examples
  (the same mix as ``creative_titles.py``: AdvertiseGen + Amazon 2018, about half the English ones
  with a real history), after one warm-up batch; seconds per batch and per example.
* Prompt truncation: over every English training example that carries a history, the share whose
  selling points the old cut (keep the last ``max_prompt_tokens`` tokens) loses, against
  ``lm_titles.fit_prompt`` (oldest history first).
* Decoding sanity: a few held-out titles from the un-tuned backbone under the new decoding rules,
  with the independent judge's verdict (not a result: the backbone has not learnt the task).

    .venv/bin/python benchmarks/creative_lora_cost.py --steps 3 --titles 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.remove(sys.path[0]) if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent else None
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import save
from benchmarks.creative_titles import splits, training_examples
from genads.creative import lm_titles as lt
from genads.creative.judge import judge_title
from genads.creative.lm import load_backbone


def truncation(tok, data: list[lt.TitleExample], max_tokens: int) -> dict:
    with_history = [e for e in data if e.history]
    lost_old = lost_new = 0
    for e in with_history:
        ids = tok(lt.prompt(e.selling_points, e.history), add_special_tokens=True)["input_ids"]
        lost_old += "Selling points" not in tok.decode(ids[-max_tokens:])
        _, kept = lt.fit_prompt(tok, e.selling_points, e.history, max_tokens)
        lost_new += "Selling points" not in tok.decode(kept)
    n = max(len(with_history), 1)
    return {"examples_with_history": len(with_history), "lost_selling_points_old_cut": lost_old / n,
            "lost_selling_points_fit_prompt": lost_new / n}


def step_cost(backbone: Path, data: list[lt.TitleExample], steps: int, batch: int, seed: int) -> dict:
    model, tok = lt.load_model(backbone)
    warm = lt.LoraConfig(epochs=1, batch_size=batch, seed=seed)
    lt.train_lora(model, tok, data[:batch], warm, progress=False)  # warm-up batch (allocations, kernels)
    model, tok = lt.load_model(backbone)
    _, info = lt.train_lora(model, tok, data[:steps * batch], warm, progress=False)
    return {"batches": info["batches"], "batch_size": batch, "seconds": info["seconds"],
            "s_per_batch": info["seconds"] / info["batches"], "s_per_example": info["seconds"] / (steps * batch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="gemma3-270m")
    ap.add_argument("--cache-dir", default="runs/creative_lm")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--titles", type=int, default=4, help="held-out titles per language from the un-tuned backbone")
    ap.add_argument("--max-prompt-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    s = splits(args.seed)
    data = training_examples(s, 600, 600, args.seed)
    backbone = load_backbone(args.backbone, cache_dir=args.cache_dir)
    _, tok = lt.load_model(backbone.path)
    out = {"truncation": truncation(tok, data, args.max_prompt_tokens)}
    print(out)
    out["lora_step"] = step_cost(backbone.path, data, args.steps, args.batch_size, args.seed)
    print(out["lora_step"])
    gen = lt.LMTitleGenerator.from_dirs(backbone.path, None, lt.DecodeConfig(seed=args.seed))
    rng = np.random.default_rng(args.seed + 1)
    samples = []
    for lang, products in (("zh", s["zh_test"]), ("en", [s["en"][i] for i in sorted(s["en_test"])])):
        for i in rng.permutation(len(products))[:args.titles]:
            p = products[i]
            t0 = time.perf_counter()
            res = gen.generate(list(p.selling_points))
            samples.append({"lang": lang, "selling_points": list(p.selling_points), "reference": p.target,
                            "title": res.title, "fallback": res.fallback, "seconds": time.perf_counter() - t0,
                            "judge_failures": list(judge_title(res.title, list(p.selling_points), lang).failures)})
            print(samples[-1])
    out["untuned_titles"] = samples
    out["settings"] = vars(args)
    print(f"wrote {save('creative_lora_cost', out)}")


if __name__ == "__main__":
    main()
