"""From a Dataset to tokenizer inputs: fused item vectors and the end-to-end tokenizer's side features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genads.data.dataset import Dataset
from genads.data.split import SplitConfig, training_events
from genads.encode.attributes import multi_hot
from genads.encode.collaborative import (
    CollabConfig,
    collaborative_vectors,
    cooccurring_pairs,
    sequences_from_events,
)
from genads.encode.fusion import fuse
from genads.encode.precomputed import precomputed_vectors
from genads.encode.text import TextEncoder, has_text, item_texts, text_cache
from genads.encode.tokens import item_tokens
from genads.tokenize.unisid import ItemFeatures

SOURCES: tuple[str, ...] = ("text", "attributes", "collab", "embedding")
"""Item-vector sources a dataset can offer."""


def available_sources(dataset: Dataset) -> tuple[str, ...]:
    """The sources this dataset has: text if most ads have a title/description, attributes if any,
    collaborative if there are events, precomputed embeddings if every ad has one."""
    cat = dataset.catalogue
    out = []
    if has_text(cat):
        out.append("text")
    if "attributes" in cat.columns and cat["attributes"].map(lambda a: a is not None and len(a) > 0).any():
        out.append("attributes")
    if len(dataset.events):
        out.append("collab")
    if "embedding" in cat.columns and cat["embedding"].notna().all() and len(cat):
        out.append("embedding")
    return tuple(out)


def item_vectors(
    dataset: Dataset,
    sources: Sequence[str] | None = None,
    *,
    weights: dict[str, float] | None = None,
    cache_dir: str | Path | None = None,
    encoder: TextEncoder | None = None,
    collab: CollabConfig | None = None,
    split: SplitConfig | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, int]]:
    """Fused item vectors, one row per catalogue row (catalogue order).

    Args:
        sources: subset of SOURCES; default: all :func:`available_sources`.
        weights: per-source fusion weights (default 1 each).
        cache_dir: folder of the MiniLM content-hash cache (no cache if None).
        split: the leave-one-out split whose validation and test events the collaborative vectors
            must not see (:func:`~genads.data.split.training_events`; default ``SplitConfig()``).

    Returns:
        ((n_ads, d) float32, {source: its dimension}).
    """
    sources = tuple(sources) if sources else available_sources(dataset)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown item-vector source(s) {sorted(unknown)}; choose from {list(SOURCES)}")
    if not sources:
        raise ValueError(f"{dataset.name}: no item-vector source available (no text, attributes, events or embeddings)")
    cat = dataset.catalogue
    parts: dict[str, np.ndarray] = {}
    for name in sources:
        if name == "text":
            encoder = encoder or TextEncoder()
            cache = text_cache(cache_dir, encoder.max_seq_length) if cache_dir is not None else None
            parts[name] = encoder.encode(item_texts(cat), cache=cache, progress=progress)
        elif name == "attributes":
            parts[name] = multi_hot(cat["attributes"].tolist())[0]
        elif name == "collab":
            seqs = sequences_from_events(training_events(dataset, split), cat["ad_id"].to_numpy())
            parts[name] = collaborative_vectors(seqs, len(cat), collab, seed=seed)
        else:
            parts[name] = precomputed_vectors(cat)
    return fuse(parts, weights), {k: v.shape[1] for k, v in parts.items()}


def item_features(dataset: Dataset, max_tokens: int = 32, window: int = 3,
                  split: SplitConfig | None = None) -> ItemFeatures:
    """Attribute/word tokens and co-occurring pairs of the catalogue rows, for the end-to-end tokenizer.

    The pairs come from the training events of ``split`` only (default ``SplitConfig()``): a pair seen
    only in validation or test events never reaches the tokenizer.
    """
    tokens, vocab = item_tokens(dataset.catalogue, max_tokens=max_tokens)
    seqs = sequences_from_events(training_events(dataset, split), dataset.catalogue["ad_id"].to_numpy())
    pairs = cooccurring_pairs(seqs, window) if seqs else None
    return ItemFeatures(tokens=tokens, vocab_size=len(vocab), pairs=pairs)
