"""Factual-but-fluent title constraint: content words from the sources, function words free.

A title may say any function word (articles, prepositions, conjunctions, pronouns, auxiliaries,
and a short list of generic ad wording that states nothing about the product: ``FUNCTION_EN``,
``FUNCTION_ZH``; praise such as 独特 "unique", 别致 "chic" or 十足 "full of" is a claim, not one of them, and
words a reader takes as content, 结合 "combine", 加 "add", 显 "look", 时 "when", 后 "after", 处 "place", 却 "yet",
a part of the garment (衣身) or a verb that says how it is made or matched (选用, 加上, 融合, 配, 配合, 做, 带),
没有 / 无 "has no", 只 "only", must come from the sources too) and
any punctuation; every other word must be *supported* by the sources (selling points, brand, category):

* English (and Latin words inside Chinese): a maximal run of letters/digits must be a word of the
  sources (case-insensitive).
* Chinese: a maximal run of CJK characters must split into pieces that are each a function word,
  a word of the sources (jieba) or a substring of length >= 2 of a source phrase; once the run is
  finished, its jieba words must also all be supported (the metric's own reading).

:class:`TitleConstraint` checks finished titles and *prefixes* (the last, unfinished run need only
extend to a valid run), so a decoder can test a token before taking it. It also forbids saying a
content word twice (English) or repeating a CJK content bigram (Chinese).

:func:`content_support` is the metric side: jieba/regex words of a title that are not function
words, and which of them the sources do not support (hallucinations).
"""

from __future__ import annotations

import re
from functools import lru_cache

from genads.creative.text import is_chinese, selling_point_vocab, tokenize

FUNCTION_EN: frozenset[str] = frozenset(["a", "an", "the", "and", "or", "but", "nor", "for", "with", "without", "of", "to", "in", "on", "at", "by", "from", "into", "onto", "over", "under", "up", "down", "out", "off", "per", "via", "as", "than", "then", "so", "if", "when", "while", "that", "this", "these", "those", "it", "its", "it's", "your", "you", "our", "we", "us", "they", "them", "their", "his", "her", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "has", "have", "had", "can", "will", "would", "should", "may", "might", "must", "shall", "not", "no", "all", "any", "each", "every", "both", "either", "neither", "other", "another", "such", "same", "own", "only", "just", "also", "too", "very", "more", "most", "x", "&", "plus", "about", "around", "between", "through", "across", "within"])
FUNCTION_ZH: frozenset[str] = frozenset(["的", "地", "得", "了", "着", "过", "和", "与", "及", "以及", "或", "或者", "而", "且", "而且", "并", "并且", "但", "但是", "也", "都", "又", "还", "就", "才", "再", "更", "更加", "很", "非常", "十分", "超", "颇", "较", "比较", "最为", "是", "在", "有", "为", "对", "从", "把", "被", "让", "使", "令", "将", "给", "向", "于", "以", "之", "其", "这", "那", "这款", "那款", "一款", "款", "这种", "一种", "种", "个", "件", "条", "双", "一", "一个", "一件", "一条", "它", "你", "您", "我", "我们", "大家", "能", "能够", "可", "可以", "会", "要", "不", "带来", "打造", "彰显", "尽显", "展现", "展示", "凸显", "显得", "呈现", "营造", "增添", "增加", "设计", "采用", "搭配", "穿着", "穿", "上身", "整体", "视觉", "效果", "感觉", "感", "元素", "细节", "造型", "风格", "款式", "版型", "中", "上", "下", "里", "前", "间", "之间", "让人", "给人", "出", "起来", "下来", "一下", "一些", "一点", "些", "点", "用", "又是", "还是", "就是", "便是"])
_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z0-9]+(?:['\-.][A-Za-z0-9]+)*")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MAX_PIECE = 12
_INNER = frozenset(["'", "-", "."])


def is_function_word(word: str) -> bool:
    return word.lower() in FUNCTION_EN or word in FUNCTION_ZH


class TitleConstraint:
    """The allowed vocabulary for one product; see the module docstring."""

    def __init__(self, sources: list[str]) -> None:
        sources = [s for s in sources if s and s.strip()]
        self.sources = sources
        self.words = {w.lower() for w in selling_point_vocab(sources)}
        self.latin = {w for w in self.words if not is_chinese(w)} | FUNCTION_EN
        cjk_text = [m.group(0) for s in sources for m in re.finditer(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", s)]
        pieces = {w for w in self.words if _CJK.fullmatch(w[:1] or "x") and all(_CJK.match(c) for c in w)}
        for run in cjk_text:
            for i in range(len(run)):
                for j in range(i + 2, min(len(run), i + MAX_PIECE) + 1):
                    pieces.add(run[i:j])
            if len(run) == 1:
                pieces.add(run)
        self.cjk_pieces = pieces | FUNCTION_ZH
        self._prefixes = {p[:k] for p in self.cjk_pieces for k in range(1, len(p) + 1)}
        self._latin_prefixes = {w[:k] for w in self.latin for k in range(1, len(w) + 1)}

    @lru_cache(maxsize=8192)  # noqa: B019 - one constraint per product, short-lived
    def _cjk_ok(self, run: str, partial: bool) -> bool:
        """Can ``run`` split into allowed pieces (the last one only a prefix of a piece when ``partial``)?"""
        n = len(run)
        reach = [False] * (n + 1)
        reach[0] = True
        for i in range(n):
            if not reach[i]:
                continue
            for j in range(i + 1, min(n, i + MAX_PIECE) + 1):
                piece = run[i:j]
                if piece in self.cjk_pieces:
                    reach[j] = True
                elif partial and j == n and piece in self._prefixes:
                    return True
                elif piece not in self._prefixes:
                    break
        return reach[n]

    @lru_cache(maxsize=8192)  # noqa: B019
    def _jieba_ok(self, run: str) -> bool:
        """A finished CJK run must also pass the metric's reading: every jieba content word supported
        (pieces can glue into a word the sources do not hold, e.g. 穿 + 上 -> 穿上)."""
        return content_support(run, self.sources)[0] == 0

    def check(self, text: str, partial: bool = False) -> bool:
        """True when ``text`` obeys the constraint (as a prefix that can still be completed when ``partial``)."""
        runs = list(_RUN.finditer(text))
        said: set[str] = set()
        bigrams: set[str] = set()
        for k, m in enumerate(runs):
            run = m.group(0)
            open_end = partial and k == len(runs) - 1 and m.end() == len(text)
            if _CJK.match(run):
                if not self._cjk_ok(run, open_end):
                    return False
                if not open_end and not self._jieba_ok(run):
                    return False
                for i in range(len(run) - 1):
                    bg = run[i:i + 2]
                    if bg[0] in FUNCTION_ZH or bg[1] in FUNCTION_ZH:
                        continue
                    if bg in bigrams:
                        return False
                    bigrams.add(bg)
                continue
            word = run.lower()
            if open_end:
                if word not in self._latin_prefixes:
                    return False
                continue
            tail = text[m.end():] if partial and k == len(runs) - 1 else ""
            if tail in _INNER and word + tail in self._latin_prefixes:
                continue  # a word still growing past an inner mark: "0." of "0.9 g", "anti-" of "anti-seize"
            if word not in self.latin:
                return False
            if word not in FUNCTION_EN:
                if word in said:
                    return False
                said.add(word)
        return True


def content_support(title: str, sources: list[str]) -> tuple[int, int]:
    """(unsupported content words, content words) of ``title``; words from :func:`tokenize`.

    A content word is supported when it is a word of the sources or, for Chinese, a substring of a
    source phrase (jieba cuts differently in context).
    """
    vocab = {w.lower() for w in selling_point_vocab(sources)}
    joined = " ".join(sources).lower()
    content = [w for w in tokenize(title) if not is_function_word(w)]
    bad = sum(1 for w in content if w not in vocab and not (is_chinese(w) and w in joined))
    return bad, len(content)
