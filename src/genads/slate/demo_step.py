"""Demo step "slate": the generative slate model over the tokenize step's SIDs, next to the baselines."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from genads.eval import plots
from genads.eval.harness import evaluate_split_both
from genads.eval.report import figure_png, protocol_rows
from genads.slate.model import PRESETS
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20")


def run(ctx) -> None:  # ctx: DemoContext (demo.py imports the steps)
    if "sids" not in ctx.artifacts:
        raise ValueError("the slate step needs ctx.artifacts['sids'] from the tokenize step")
    if ctx.fast:
        arch, train = PRESETS["tiny"], replace(TRAIN_PRESETS["tiny"], batch_size=256, epochs=1, eval_users=200)
    else:
        arch = PRESETS["small"]
        train = replace(TRAIN_PRESETS["small"], epochs=40, eval_every=2, patience=3, eval_users=800, time_budget_s=100)
    rec = SlateRecommender(ctx.artifacts["sids"], arch, train)
    start = time.perf_counter()
    log = rec.fit(ctx.split, seed=ctx.seed, progress=not ctx.fast)
    seconds = time.perf_counter() - start
    result = evaluate_split_both(rec, ctx.split)
    ctx.artifacts["slate_model"] = rec
    ctx.metrics["slate"] = {**result, "epochs": len(log), "train_seconds": round(seconds, 1),
                            "config": asdict(rec.config), "train": asdict(train), "log": log}
    rows = protocol_rows(rec.name, result, KEYS)
    for name, base in ctx.metrics.get("baselines", {}).items():
        rows += protocol_rows(name, base, KEYS)
    s = ctx.report.section("Generative slate model")
    s.paragraphs.append(
        f"A decoder-only transformer ({rec.config.n_layer} layers, d={rec.config.d_model}, "
        f"{rec.config.mtp_heads} multi-token-prediction head(s)) reads each history as the concatenation of its "
        f"ads' Semantic IDs ({rec.config.levels} tokens per ad) and writes the next ad token by token. Decoding is "
        f"beam search (beam {max(train.beam, 20)}) constrained by a prefix trie of the live ads, so every "
        "recommended ad exists; the harness ranks the whole catalogue. "
        f"Trained {len(log)} epoch(s) in {seconds:.0f}s with early stopping on validation NDCG@10; "
        "popularity and SASRec come from the baselines step."
    )
    s.tables.append(("Test metrics (full ranking, leave-one-out; the beam's list with the history removed for the "
                     "second protocol)", rows))
    s.images.append(("Generative slate model training", figure_png(plots.training_curves({rec.name: log}))))
