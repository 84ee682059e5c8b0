"""Demo step "tokenize": MiniLM text vectors of the catalogue -> Semantic IDs (RQ-KMeans, end-to-end).

Leaves ``ctx.artifacts["sids"]``: (n_items + 1, L + 1) int64 unique SIDs aligned with
``ctx.split`` item indices (row 0 = padding, all zeros; the last column is the disambiguation
level), ``ctx.artifacts["sid_codes"]`` (the tokenizer's raw L codes, same rows),
``ctx.artifacts["sid_vocab"]`` (tokens per level), ``ctx.artifacts["tokenizer"]`` (the fitted
RQ-KMeans tokenizer) and ``ctx.artifacts["sid_trie"]`` (a PrefixTrie over item indices).
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from genads.eval.report import figure_png
from genads.tokenize import RQKMeansConfig, RQKMeansTokenizer, UniSIDConfig, UniSIDTokenizer, disambiguate
from genads.tokenize.features import item_features, item_vectors
from genads.tokenize.metrics import level_stats, sid_summary
from genads.tokenize.trie import PrefixTrie

LEVELS, CODEBOOK = 3, 32
"""32^3 = 32,768 SIDs for ~3.7k ads: about 115 ads per first-level code."""


def usage_figure(codes: dict[str, np.ndarray], codebook: int) -> plt.Figure:
    """Per method: sorted code counts at each level (flat = well spread), and SID bucket sizes."""
    fig, axes = plt.subplots(1, len(codes) + 1, figsize=(4.2 * (len(codes) + 1), 3.2), squeeze=False)
    for ax, (name, c) in zip(axes[0], codes.items(), strict=False):
        for level in range(c.shape[1]):
            counts = np.sort(np.bincount(c[:, level], minlength=codebook))[::-1]
            ax.plot(np.arange(1, codebook + 1), counts, label=f"level {level + 1}")
        ax.set(title=f"{name}: code usage", xlabel="code rank", ylabel="ads")
        ax.legend()
    last = axes[0, -1]
    for name, c in codes.items():
        _, sizes = np.unique(c, axis=0, return_counts=True)
        last.hist(sizes, bins=np.arange(1, sizes.max() + 2) - 0.5, alpha=0.6, label=name)
    last.set(title="ads per SID (before disambiguation)", xlabel="ads sharing an SID", ylabel="SIDs", yscale="log")
    last.legend()
    fig.tight_layout()
    return fig


def run(ctx) -> None:  # ctx: DemoContext (not imported: demo.py imports the steps)
    ds, split = ctx.dataset, ctx.split
    start = time.perf_counter()
    vectors, dims = item_vectors(ds, ("text",), cache_dir=ctx.out / "cache" / "text", seed=ctx.seed, progress=False)
    t_vec = time.perf_counter() - start
    fits: dict[str, tuple[object, np.ndarray, float]] = {}
    start = time.perf_counter()
    rq = RQKMeansTokenizer(RQKMeansConfig(levels=LEVELS, codebook_size=CODEBOOK, n_iter=20))
    fits["RQ-KMeans"] = (rq, rq.fit(vectors, seed=ctx.seed), time.perf_counter() - start)
    start = time.perf_counter()
    e2e = UniSIDTokenizer(UniSIDConfig(levels=LEVELS, codebook_size=CODEBOOK, epochs=2 if ctx.fast else 30,
                                       batch_size=256, d_model=32, n_heads=2, n_layers=1))
    features = item_features(ds, max_tokens=16, split=split.config)  # co-occurrences of training events only
    fits["end-to-end (UniSID)"] = (e2e, e2e.fit(vectors, seed=ctx.seed, features=features), time.perf_counter() - start)

    rows = []
    for name, (tok, codes, secs) in fits.items():
        row = {"method": name, **sid_summary(codes, CODEBOOK, vectors, tok.reconstruct(codes)), "fit_s": round(secs, 2)}
        rows.append(row)
    codes = fits["RQ-KMeans"][1]
    sids = disambiguate(codes)
    index = split.index_of(ds.catalogue["ad_id"].to_numpy())
    aligned = np.zeros((split.n_items + 1, sids.shape[1]), dtype=np.int64)
    aligned[index] = sids
    raw = np.zeros((split.n_items + 1, LEVELS), dtype=np.int64)
    raw[index] = codes
    vocab = [CODEBOOK] * LEVELS + [int(sids[:, -1].max()) + 1]
    ctx.artifacts.update({"sids": aligned, "sid_codes": raw, "sid_vocab": vocab, "tokenizer": rq,
                          "sid_trie": PrefixTrie.from_codes(index.tolist(), sids, vocab_size=max(vocab))})
    ctx.metrics["tokenize"] = {"vector_seconds": round(t_vec, 2), "sources": dims, "levels": LEVELS,
                               "codebook": CODEBOOK, "disambiguation_vocab": vocab[-1],
                               "methods": {r["method"]: r for r in rows}}

    s = ctx.report.section("Semantic IDs")
    s.paragraphs.append(
        f"Every ad becomes {LEVELS} codes from codebooks of {CODEBOOK}, plus one disambiguation token so that no two "
        f"ads share an SID. Item vectors: all-MiniLM-L6-v2 (offline) over title, brand, category and the head of the "
        f"description ({vectors.shape[1]} dims, {t_vec:.1f}s with the content-hash cache). RQ-KMeans = residual k-means "
        "(faiss); end-to-end = the UniSID-style tokenizer (all levels predicted in parallel from the whole item context, "
        "trained with multi-granularity contrastive, reconstruction, co-occurrence and balance losses). The pipeline "
        f"uses the RQ-KMeans SIDs; the largest bucket needs a disambiguation vocabulary of {vocab[-1]}."
    )
    s.tables.append(("Collisions and codebook use (before disambiguation)", rows))
    s.tables.append(("RQ-KMeans per level", level_stats(codes, CODEBOOK)))
    s.images.append(("Code usage per level and SID bucket sizes",
                     figure_png(usage_figure({n: c for n, (_, c, _) in fits.items()}, CODEBOOK))))
