"""What the LM title decoder demands beyond factuality: one script, a length budget, no repeats, a finished end.

:class:`TitleRules` is built per product and asked, for every sampled token, whether the title may
grow by that piece (:meth:`TitleRules.may_extend`) or stop here (:meth:`TitleRules.may_stop`):

* *Script*: the language is the sources' (any CJK in the selling points: Chinese). An English
  title takes no CJK character; a Chinese title takes no Latin word the sources do not hold.
* *Length*: at least ``min_words`` words (English) / ``min_chars`` CJK characters (Chinese), one
  of them a content word that is not the brand's, before the end; past ``max_words`` / ``max_chars`` only the end or a sentence end may follow.
* *Repeats*: no word n-gram twice (n = ``no_repeat_ngram``), no CJK character n-gram twice
  (n = ``no_repeat_ngram + 1``: a CJK bigram is about one word) and no CJK bigram three times,
  counted across spaces ("吊带 蕾丝 吊带 穿 吊带…"), no three equal CJK characters
  in a row ("满满满"), no four equal letters.
* *Punctuation*: never two marks in a row (".,"), and a sentence end only where the title may end;
  Chinese takes no space between CJK characters and no ASCII ``,;:!?`` next to them (the un-tuned
  backbone wrote "针织 黑色 简约" and "纱网, 潮, 显瘦").
* *A finished end*: a title stops after a sentence end (。！？!?) or where its last word can end a
  noun phrase: not a grammar word or a verb of :data:`OPEN_END_EN` / :data:`OPEN_END_ZH`, not clause
  punctuation, not 的 + one character ("纱网的穿"), and (Chinese) a last clause with a content word.

These are the decoder's own rules (read with the constraint's jieba/regex words); the judge
(``creative.judge``) checks finished titles independently.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from genads.creative.constraint import FUNCTION_EN, is_function_word
from genads.creative.text import is_chinese, jieba_words

OPEN_END_EN: frozenset[str] = FUNCTION_EN - frozenset(["it", "them", "us", "you", "too", "out", "off", "up", "down",
                                                       "all", "both", "each", "plus", "own", "more", "most"])
"""English words a title may not end with (grammar words; "x" of a size cut off, "12\" x", is one too)."""
_OPEN_END_ZH = (
    "的 地 得 和 与 及 以及 或 或者 而 且 而且 并 并且 但 但是 却 也 都 又 还 就 才 再 更 更加 很 非常 十分 超 颇 较 比较 最为 "
    "是 在 有 为 对 从 把 被 让 使 令 将 给 向 于 以 之 其 这 那 这款 那款 一款 款 这种 一种 种 个 件 条 双 只 一 一个 一件 "
    "一条 能 能够 可 可以 会 要 不 带来 打造 彰显 尽显 展现 展示 凸显 显得 显 呈现 营造 增添 增加 采用 选用 搭配 穿着 穿 "
    "让人 给人 带 做 用 加 加上 配 配合 结合 融合 又是 还是 就是 便是")
OPEN_END_ZH: frozenset[str] = frozenset(_OPEN_END_ZH.split())
SENTENCE_END = "。！？!?"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CASE_PART = re.compile(r"[a-z0-9]+|[A-Z0-9]+|[A-Z0-9][a-z0-9]*")
_LATIN_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-.][A-Za-z0-9]+)*")
_SHOUTED = re.compile(r"[A-Z0-9]*[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*")
"""Two or more capitals and no lower-case letter ("US", "THI", "PLASTIC"): the adapter types a model number this way
and, refused the number, ends up in capitalised function-word prefixes ("Thogus EVER", "Gardner Bender US BY-")."""


@dataclass(frozen=True)
class LengthBudget:
    min_words: int = 3
    max_words: int = 14
    """English: words (the constraint's regex words)."""
    min_chars: int = 6
    max_chars: int = 30
    """Chinese: CJK characters."""
    no_repeat_ngram: int = 2

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_chars", "max_chars", "no_repeat_ngram"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.min_words > self.max_words or self.min_chars > self.max_chars:
            raise ValueError(f"min_words/min_chars ({self.min_words}/{self.min_chars}) exceed "
                             f"max_words/max_chars ({self.max_words}/{self.max_chars})")


def title_language(sources: list[str]) -> str:
    return "zh" if any(is_chinese(s) for s in sources) else "en"


def repeats(text: str, n: int) -> bool:
    """A word n-gram twice, a CJK (n+1)-gram twice or a CJK bigram three times (over all CJK characters,
    across spaces), three equal CJK characters or four equal letters in a row."""
    if re.search(r"([\u3400-\u9fff])\1\1|([A-Za-z])\2\2\2", text):
        return True
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if len(grams) != len(set(grams)):
        return True
    cjk = "".join(_CJK.findall(text))
    k = n + 1
    cgrams = [cjk[i:i + k] for i in range(len(cjk) - k + 1)]
    bigrams = Counter(cjk[i:i + 2] for i in range(len(cjk) - 1))
    return len(cgrams) != len(set(cgrams)) or any(c > 2 for c in bigrams.values())


class TitleRules:
    """Script, length, repeat and ending rules for one product's title; see the module docstring."""

    def __init__(self, sources: list[str], budget: LengthBudget | None = None, brand: str = "") -> None:
        self.budget = budget or LengthBudget()
        self.lang = title_language(sources)
        self.latin = {w.lower() for s in sources for w in _LATIN_WORD.findall(s)}
        self.brand = {w.lower() for w in _LATIN_WORD.findall(brand)} | ({brand} if is_chinese(brand) else set())
        self.verbatim = {w for s in [*sources, brand] for w in _LATIN_WORD.findall(s)}
        self._verbatim_prefixes = {w[:k] for w in self.verbatim for k in range(1, len(w) + 1)}

    def _cased(self, word: str, open_end: bool) -> bool:
        """A Latin word written as the sources write it, or all lower, Capitalised or Title-Cased (per part:
        "Anti-Seize"); "delicatE" and "SaFe" are none of these (the decoder may type a word's pieces in different
        cases), and a part in capitals ("US", "PLASTIC"; one capital with digits, "3D", is fine) must be written so in
        the sources. A word still growing (``open_end``) need only be on its way to one of them."""
        if word in self.verbatim or (open_end and word in self._verbatim_prefixes):
            return True
        parts = [part for part in re.split(r"['\-.]", word) if part]
        return all(_CASE_PART.fullmatch(part) and not _SHOUTED.fullmatch(part) for part in parts)

    def length(self, text: str) -> int:
        """English words or Chinese CJK characters."""
        return len(_CJK.findall(text)) if self.lang == "zh" else len(_LATIN_WORD.findall(text))

    def says_something(self, text: str) -> bool:
        """At least one content word that is not the brand's ("did: it", "Shoreline Marine" say nothing)."""
        words = jieba_words(text) if self.lang == "zh" else _LATIN_WORD.findall(text)
        return any(w.strip() and re.search(r"\w", w) and not is_function_word(w.strip())
                   and w.strip().lower() not in self.brand for w in words)

    def _script_ok(self, text: str, open_end: bool) -> bool:
        latin = _LATIN_WORD.findall(text)
        growing = open_end and bool(latin) and bool(re.search(r"[A-Za-z0-9]$", text))
        if not all(self._cased(w, growing and i == len(latin) - 1) for i, w in enumerate(latin)):
            return False
        if self.lang == "en":
            return not _CJK.search(text)
        if not open_end and len(_CJK.findall(text)) < len(re.findall(r"[A-Za-z]", text)):
            return False  # a finished Chinese title is mostly Chinese ("polo，棉，线条" is not)
        words = [w.lower() for w in latin]
        if open_end and words and re.search(r"[A-Za-z0-9]$", text):  # the last Latin word may still be growing
            last, words = words[-1], words[:-1]
            if not any(w.startswith(last) for w in self.latin):
                return False
        return all(w in self.latin for w in words)

    def may_extend(self, text: str, piece: str) -> bool:
        """May ``text`` grow by ``piece`` (a non-final token)?"""
        new = text + piece
        b = self.budget
        if not self._script_ok(new, open_end=True) or repeats(new, b.no_repeat_ngram):
            return False
        if re.search(r"[^\w\s][\s]*[^\w\s\"'”)）]$", new.rstrip()) and not re.search(r"\.\.\.$|[)）\"”][^\w\s]$", new):
            return False  # two punctuation marks in a row: ".,", ":,"
        if self.lang == "zh" and re.search(r"[\u3400-\u9fff]\s+[\u3400-\u9fff]|[\u3400-\u9fff][,;:!?]|[,;:!?]\s*[\u3400-\u9fff]",
                                           new):
            return False  # Chinese: no spaces between CJK words, full-width punctuation only
        if any(c in SENTENCE_END for c in piece) and not self.may_stop(new.rstrip()):
            return False  # a sentence may end only where the title may
        over = self.length(text) >= (b.max_chars if self.lang == "zh" else b.max_words)
        return not over or (bool(piece.strip()) and piece.strip()[0] in SENTENCE_END)

    def complete(self, text: str) -> bool:
        """Does ``text`` end where a title can end (a sentence end or a noun-phrase end)?"""
        t = text.strip()
        if not t or re.search(r"[,，、;；:：\-–—/&(（]$", t):
            return False
        if t[-1] in SENTENCE_END:
            t = t.rstrip(SENTENCE_END + " ")
            return bool(t) and self.complete(t)
        clause = re.split(r"[，,。！？!?；;：:、]", t)[-1]
        if self.lang == "zh" and not self.says_something(clause):
            return False  # a last clause of grammar words only: "…，让整体", "…，它"
        if _CJK.match(t[-1]):
            words = [w for w in jieba_words(t) if w.strip()]
            if words[-1] in OPEN_END_ZH:
                return False
            return not (len(words[-1]) == 1 and len(words) > 1 and words[-2].endswith("的"))
        words = _LATIN_WORD.findall(t)
        return bool(words) and words[-1].lower() not in OPEN_END_EN

    def may_stop(self, text: str) -> bool:
        """May the title end after ``text``: long enough, in one script and complete."""
        b = self.budget
        long_enough = self.length(text) >= (b.min_chars if self.lang == "zh" else b.min_words)
        return (long_enough and self._script_ok(text, open_end=False) and self.complete(text)
                and self.says_something(text))

    def sentence_ended(self, text: str) -> bool:
        return bool(text.strip()) and text.strip()[-1] in SENTENCE_END and self.may_stop(text)

    def fallback(self, points: list[str], most: int = 3) -> str:
        """The title when no candidate finished: up to ``most`` of ``points`` joined, in order, leaving out any that
        would break the script rules (a Latin point that would outweigh the Chinese ones); the first ``most`` when
        none fits."""
        joiner = "，" if self.lang == "zh" else ", "
        kept: list[str] = []
        for p in points:
            if len(kept) == most:
                break
            if p.strip() and self._script_ok(joiner.join([*kept, p]), open_end=False):
                kept.append(p)
        return joiner.join(kept or list(points[:most]))

    def trim(self, text: str, valid) -> str:
        """The longest prefix of ``text`` (cut at word ends: jieba words for Chinese) that ``valid`` accepts
        and :meth:`complete` calls finished; "" when none is."""
        ends, pos = {len(text)}, 0
        for w in (jieba_words(text) if self.lang == "zh" else re.split(r"(\s+)", text)):
            pos += len(w)
            ends.add(pos)
        cuts = sorted(ends | {m.end() for m in re.finditer(r"[，,。！？!?；;、]", text)}, reverse=True)
        for c in cuts:
            cand = text[:c].rstrip(" ,，、;；:-&/(")
            if cand and valid(cand) and self.complete(cand) and self._script_ok(cand, open_end=False):
                return cand
        return ""
