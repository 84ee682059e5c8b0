"""Multi-hot attribute vectors (genres, anonymised category/brand ids) for items without text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def attribute_vocab(attributes: Sequence[Sequence[str]], min_count: int = 1) -> list[str]:
    """Attribute tokens seen at least ``min_count`` times, most frequent first (ties by name)."""
    if min_count < 1:
        raise ValueError(f"min_count={min_count} must be >= 1")
    counts = Counter(a for attrs in attributes for a in attrs)
    return sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: (-counts[a], a))


def multi_hot(
    attributes: Sequence[Sequence[str]], vocab: list[str] | None = None, min_count: int = 1
) -> tuple[np.ndarray, list[str]]:
    """One row per item, one column per attribute token; 1 where the item has it.

    Args:
        attributes: per item, its attribute tokens (the catalogue's ``attributes`` column).
        vocab: a fixed vocabulary (e.g. from fitting); tokens outside it are ignored.
        min_count: when building the vocabulary, drop tokens seen fewer times.

    Returns:
        ((n, len(vocab)) float32 matrix, vocab).
    """
    vocab = attribute_vocab(attributes, min_count) if vocab is None else list(vocab)
    index = {a: i for i, a in enumerate(vocab)}
    rows, cols = [], []
    for r, attrs in enumerate(attributes):
        for a in attrs:
            c = index.get(a)
            if c is not None:
                rows.append(r)
                cols.append(c)
    out = np.zeros((len(attributes), len(vocab)), dtype=np.float32)
    out[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = 1.0
    return out, vocab
