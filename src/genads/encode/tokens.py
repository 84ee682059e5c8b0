"""Discrete item features: attribute tokens + words of the title, brand and category.

The end-to-end tokenizer reads them as input tokens and reconstructs them as a bag of words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

PAD = "<pad>"
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(["a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "from", "or", "is", "are", "as", "at", "be", "this", "that", "it", "its"])


def _item_words(catalogue: pd.DataFrame, fields: Sequence[str]) -> list[list[str]]:
    present = [f for f in fields if f in catalogue.columns]
    texts = [" ".join(parts) for parts in zip(*(catalogue[f].fillna("").astype(str).str.lower().tolist()
                                                for f in present), strict=True)] if present else [""] * len(catalogue)
    return [[w for w in WORD.findall(t) if len(w) > 1 and w not in STOPWORDS] for t in texts]


def item_tokens(
    catalogue: pd.DataFrame,
    fields: Sequence[str] = ("title", "brand", "category"),
    max_tokens: int = 32,
    min_count: int = 2,
    max_vocab: int = 5000,
) -> tuple[np.ndarray, list[str]]:
    """Token ids per ad: its ``attributes`` then its distinct words, in order, cut to ``max_tokens``.

    Returns:
        ((n, max_tokens) int64, 0 = padding; vocab with vocab[0] = "<pad>"). Tokens rarer than
        ``min_count`` or beyond the ``max_vocab`` most frequent are dropped.
    """
    if max_tokens < 1 or min_count < 1 or max_vocab < 1:
        raise ValueError(f"max_tokens={max_tokens}, min_count={min_count}, max_vocab={max_vocab} must be >= 1")
    attrs = catalogue["attributes"].tolist() if "attributes" in catalogue.columns else [[] for _ in range(len(catalogue))]
    words = _item_words(catalogue, fields)
    items = [list(dict.fromkeys([*(str(a) for a in (att if att is not None else [])), *w]))
             for att, w in zip(attrs, words, strict=True)]
    counts = Counter(t for toks in items for t in toks)
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))[:max_vocab]
    vocab = [PAD, *kept]
    index = {t: i for i, t in enumerate(vocab)}
    out = np.zeros((len(items), max_tokens), dtype=np.int64)
    for r, toks in enumerate(items):
        ids = [index[t] for t in toks if t in index][:max_tokens]
        out[r, : len(ids)] = ids
    return out, vocab
