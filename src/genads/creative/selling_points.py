"""Selling points from product text, for catalogues that have none (e.g. Amazon titles/descriptions).

A selling point is a short phrase the advertiser states about the product. Heuristic, English:
split the text into clauses at punctuation and at connectives ("with", "for", "and", ...), keep
clauses of 1-``max_words`` words that are not only stop words or numbers, drop near-duplicates
(same word set), and keep the first ``max_points`` in text order. Chinese text is split at
punctuation only.
"""

from __future__ import annotations

import re

from genads.creative.text import is_chinese, tokenize

_SPLIT_EN = re.compile(r"(?<!\d)[.,](?!\d)\s*|[;:!?()\[\]{}|•·\"]+\s*|\s+[-–—/]+\s+|\s+(?:with|for|and|or|the|that|which|includes?|including|to|in|on|of|by)\s+",
                       re.IGNORECASE)
_SPLIT_ZH = re.compile(r"[，。；：！？、（）()\[\]|/,.;:!?\s]+")
STOP = frozenset(["a", "an", "the", "this", "that", "these", "those", "it", "its", "is", "are", "be", "our", "your", "you", "we", "of", "to", "in", "on", "at", "by", "as", "from", "use", "used", "uses", "using", "designed", "ideal", "great", "new", "item", "product", "products", "please", "note", "country", "origin", "n/a", "na"])


def derive_selling_points(text: str, max_points: int = 6, max_words: int = 4) -> list[str]:
    """Short phrases from ``text`` (title and/or description); see the module docstring."""
    if max_points < 1 or max_words < 1:
        raise ValueError(f"max_points={max_points} and max_words={max_words} must be >= 1")
    pieces = _SPLIT_ZH.split(text) if is_chinese(text) else _SPLIT_EN.split(text)
    out: list[str] = []
    seen: list[frozenset[str]] = []
    for piece in pieces:
        words = tokenize(piece)
        content = [w for w in words if w not in STOP and not w.replace(".", "").isdigit()]
        if not content or len(words) > max_words:
            continue
        key = frozenset(content)
        if any(key <= s or s <= key for s in seen):
            continue
        seen.append(key)
        out.append(piece.strip())
        if len(out) == max_points:
            break
    return out
