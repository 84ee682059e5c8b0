"""Word tokenisation for ad copy: jieba for Chinese, a regex word tokeniser for English.

Metrics (BLEU, ROUGE-L, factuality) and the title generators all work on the same word lists,
so a title's words can be checked against its selling points' words exactly.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EN_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-.][A-Za-z0-9]+)*")
_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)


def is_chinese(text: str) -> bool:
    """True when the text contains any CJK ideograph."""
    return bool(_CJK.search(text))


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@lru_cache(maxsize=65536)
def _tokenize_cached(text: str) -> tuple[str, ...]:
    if is_chinese(text):
        words = (w.strip() for w in _jieba().lcut(text))
        return tuple(w.lower() for w in words if w and not _PUNCT.match(w))
    return tuple(w.lower() for w in _EN_WORD.findall(text))


def tokenize(text: str) -> list[str]:
    """Words of ``text``, lower-cased, without punctuation or spaces.

    Chinese (any CJK ideograph present) is cut by jieba; Latin words and numbers inside Chinese
    text are kept as jieba returns them. English is split by a regex on letters/digits with inner
    apostrophes, hyphens and dots ("wi-fi", "2.4", "men's").
    """
    return list(_tokenize_cached(text))


def jieba_words(text: str) -> list[str]:
    """jieba's segmentation with punctuation and case kept (for display, e.g. line breaking)."""
    return _jieba().lcut(text)


def join_words(words: list[str]) -> str:
    """Inverse of :func:`tokenize` for display: no spaces between CJK words, spaces otherwise."""
    out = ""
    for w in words:
        if out and not (is_chinese(out[-1]) and is_chinese(w[:1])):
            out += " "
        out += w
    return out


def selling_point_vocab(selling_points: list[str]) -> set[str]:
    """The set of words a constrained title may use: every word of every selling point."""
    return {w for sp in selling_points for w in tokenize(sp)}


def restore_case(words: list[str], sources: list[str]) -> list[str]:
    """Give lower-cased ``words`` back the casing they first have in ``sources`` (e.g. the selling points)."""
    cased: dict[str, str] = {}
    for text in sources:
        for w in _EN_WORD.findall(text):
            cased.setdefault(w.lower(), w)
    return [cased.get(w, w) for w in words]
