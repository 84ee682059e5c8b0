"""An independent judge of ad titles: checks that share no rule or word list with the decoder.

The decoder's constraint (``constraint.TitleConstraint``) and the old metrics read titles with the
same jieba/regex words and the same function-word lists, so garbage that slips through the
constraint also slips through the metrics ("满满满，满满满…" was scored 0 % hallucinated). The judge
tokenises differently and keeps its own lists. A title passes when it fails none of :data:`CHECKS`:

* ``empty``: nothing but spaces and punctuation.
* ``script``: English titles hold no CJK, kana or Hangul and only Latin-1 letters; Chinese titles
  hold CJK, at least half their letters are CJK, and no kana or Hangul.
* ``degenerate``: a repeated n-gram (English: a word trigram twice, a bigram right after itself
  or three times, a content word three times; Chinese, over the content segments of all CJK runs,
  the judge's function words removed: a segment or bigram three times, a trigram twice, "xyxy"),
  a run of 3 equal CJK characters ("满满满") or 4 equal letters, or one
  character over 30 % of the title (counted once a title
  has >= 5 CJK characters or >= 16 Latin letters: shorter titles reach 30 % by chance).
* ``incomplete``: the title neither ends at a sentence boundary nor as a noun phrase: it ends in
  a dangling word (article, preposition, conjunction, auxiliary, determiner: "This gauge is a",
  "阔腿裤的款式是与"), in clause punctuation (``,`` ``、`` ``-``), with an open bracket, or (Chinese)
  in 的 + one character that is not a whole word ("纱网的穿", "宽松的棉"), or (Chinese) its last
  clause holds nothing but the judge's function words ("…，让整体", "…，它", "搭配上地中"). Chinese
  endings are read by jieba words (so 自在 does not end in 在); a final 的 is allowed after 是 (是…的).
* ``too_short``: fewer than 2 content words (English) or 4 CJK characters (Chinese), or (English,
  when the brand is given) no content word beyond the brand and numbers: a brand or a single word
  ("HATCHBOX", "A", "Shoreline Marine") is not an ad title.
* ``unsupported``: a content unit the sources do not support. English: lower-cased alphanumeric
  pieces split at every non-alphanumeric character (so "washer-head" is two pieces), reduced by a
  light plural stemmer, not in :data:`STOP_EN`; each must be a piece of the sources. Chinese: CJK
  runs with the judge's own function words (:data:`FUNCTION_ZH`, longest match first) removed, except
  inside a character bigram of the run that the sources hold (条 of 条纹 is the pattern, not a measure
  word); every remaining character must be covered by such a bigram or be a one-character source by
  itself (裙 of "印花裙" when 裙 is a selling point; a single-character segment: the character occurs in
  the sources). Counted in words (English) and characters (Chinese).

:func:`perplexity` (the un-tuned backbone's perplexity of a title) is a fluency proxy reported
beside the checks, not one of them: it needs the backbone's weights.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

CHECKS = ("empty", "script", "degenerate", "incomplete", "too_short", "unsupported")
CHAR_SHARE = 0.30
STOP_EN = frozenset(["a", "an", "the", "and", "or", "but", "nor", "yet", "his", "her", "my", "had", "did", "do", "does", "of", "to", "in", "on", "at", "by", "for", "from",
                     "with", "without", "into", "onto", "over", "under", "up", "as", "than", "so", "that", "this",
                     "these", "those", "it", "its", "you", "your", "our", "we", "they", "their", "is", "are", "be",
                     "was", "were", "has", "have", "can", "will", "not", "no", "all", "any", "each", "every", "both",
                     "more", "most", "very", "just", "also", "only", "per", "x", "s", "new", "great", "perfect",
                     "ideal", "quality", "high", "premium", "best", "easy", "use", "made", "design", "designed"])
DANGLE_EN = frozenset(["a", "an", "the", "and", "or", "but", "nor", "of", "to", "in", "on", "at", "by", "for", "from",
                       "with", "without", "into", "onto", "as", "than", "that", "which", "who", "this", "these",
                       "those", "its", "your", "our", "their", "my", "his", "her", "is", "are", "was", "were", "be",
                       "been", "has", "have", "had", "do", "does", "can", "will", "would", "should", "may", "very",
                       "more", "most", "so", "if", "when", "while", "because", "such", "per", "x", "&", "plus"])
FUNCTION_ZH = ("的", "地", "得", "了", "着", "过", "和", "与", "及", "或", "而", "且", "并", "但", "也", "都", "又",
               "还", "就", "才", "再", "更", "很", "超", "最", "是", "在", "有", "为", "对", "从", "把", "被", "让",
               "使", "将", "给", "向", "于", "以", "之", "其", "这", "那", "款", "种", "个", "件", "条", "一",
               "你", "您", "我", "它", "她", "不", "能", "能够", "会", "要", "非常", "十分", "更加", "比较", "较", "颇",
               "这款", "一款", "一件",
               "可以", "带来", "打造", "彰显", "尽显", "展现", "凸显", "显得", "营造", "增添", "设计", "采用",
               "搭配", "穿着", "上身", "整体", "视觉", "效果", "感觉", "时尚", "气质", "魅力", "风格", "造型",
               "款式", "版型", "细节", "元素", "单品", "女性", "女生", "出", "起来", "让你", "轻松", "自然", "上",
               "下", "中", "里", "感", "可", "穿", "用", "以及", "或者", "还是")
"""The judge's own list (grammar words and generic ad wording that states no product fact)."""
DANGLE_ZH = ("的", "地", "得", "和", "与", "及", "或", "而", "且", "并", "但", "也", "都", "又", "还", "就", "才",
             "再", "更", "很", "最", "是", "在", "把", "被", "让", "使", "对", "从", "为", "以", "将", "给", "向",
             "于", "这", "那", "一", "个", "件", "条", "款", "种", "非常", "十分", "更加", "这款", "一款", "其")
WHOLE_AFTER_DE = frozenset("美你您他她它人心事感风光")
"""Single characters that end a Chinese title after 的 as whole words ("女人的美")."""

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_FOREIGN = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u0400-\u04ff\u0590-\u06ff\ufffd]")
_LATIN_OK = re.compile(r"[\x20-\x7e\u00a0-\u00ff\u2010-\u2027\u2122\u00b0\u00b1\u00d7]")
_PIECE = re.compile(r"[a-z0-9]+")
_WORD = re.compile(r"[a-z0-9]+(?:[.'/-][a-z0-9]+)*")


@dataclass(frozen=True)
class Judgement:
    title: str
    failures: tuple[str, ...]
    """Names from :data:`CHECKS` that the title fails (empty: it passes)."""
    unsupported: int
    content: int
    """Content units (English words, Chinese characters) and how many the sources do not support."""

    @property
    def passed(self) -> bool:
        return not self.failures


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def latin_pieces(text: str) -> list[str]:
    """The judge's English tokeniser: stemmed lower-case alphanumeric pieces."""
    return [_stem(w) for w in _PIECE.findall(text.lower())]


def _strip_function_zh(run: str) -> list[str]:
    """Content segments of a CJK run: the judge's function words removed, longest match first."""
    out, cur, i = [], "", 0
    longest = max(len(w) for w in FUNCTION_ZH)
    while i < len(run):
        hit = next((run[i:i + n] for n in range(min(longest, len(run) - i), 0, -1) if run[i:i + n] in FUNCTION_ZH), "")
        if hit:
            if cur:
                out.append(cur)
            cur, i = "", i + len(hit)
        else:
            cur, i = cur + run[i], i + 1
    return [*out, cur] if cur else out


def _zh_support(title: str, sources: list[str]) -> tuple[int, int]:
    """(unsupported, content) CJK characters: a character is supported when a character bigram of its run that
    holds it occurs in the sources; function words are removed first, except inside such a bigram (条 of 条纹
    is the pattern's own character, not a measure word); a content segment of one character is supported when
    the character occurs in the sources; a character that is a whole source by itself (the product type 裙 of
    "印花裙" when 裙 is a selling point) is supported anywhere."""
    joined = "\n".join(sources)  # no bigram across two sources
    bigrams = {joined[i:i + 2] for i in range(len(joined) - 1)}
    whole = {s.strip() for s in sources if len(s.strip()) == 1}
    longest = max(len(w) for w in FUNCTION_ZH)
    bad = total = 0
    for run in _CJK_RUN.findall(title):
        held = [c in whole for c in run]
        for i in range(len(run) - 1):
            if run[i:i + 2] in bigrams:
                held[i] = held[i + 1] = True
        segments, i = [[]], 0  # content segments, as positions in the run
        while i < len(run):
            hit = next((n for n in range(min(longest, len(run) - i), 0, -1)
                        if run[i:i + n] in FUNCTION_ZH and not any(held[i:i + n])), 0)
            if hit:
                segments.append([])
            else:
                segments[-1].append(i)
            i += hit or 1
        for seg in filter(None, segments):
            total += len(seg)
            if len(seg) == 1:
                bad += not held[seg[0]] and run[seg[0]] not in joined
            else:
                bad += sum(not held[j] for j in seg)
    return bad, total


def support(title: str, sources: list[str]) -> tuple[int, int]:
    """(unsupported content units, content units) of ``title``; see the module docstring."""
    vocab = {p for s in sources for p in latin_pieces(s)}
    content = [p for p in latin_pieces(title) if p not in STOP_EN]
    bad = sum(p not in vocab for p in content)
    zb, zt = _zh_support(title, sources)
    return bad + zb, len(content) + zt


def _script_ok(title: str, lang: str) -> bool:
    if _FOREIGN.search(title):
        return False
    cjk = sum(len(r) for r in _CJK_RUN.findall(title))
    if lang == "en":
        return cjk == 0 and all(_LATIN_OK.match(c) for c in title) and bool(re.search(r"[A-Za-z]", title))
    letters = cjk + len(re.findall(r"[A-Za-z]", title))
    return cjk > 0 and cjk >= 0.5 * letters


def _repeats(units: list[str]) -> bool:
    """A unit trigram twice, a bigram right after itself ("x y x y"), or a bigram three times."""
    grams3 = Counter(tuple(units[i:i + 3]) for i in range(len(units) - 2))
    grams2 = Counter(tuple(units[i:i + 2]) for i in range(len(units) - 1))
    adjacent = any(units[i:i + 2] == units[i + 2:i + 4] for i in range(len(units) - 3))
    return adjacent or any(c > 1 for c in grams3.values()) or any(c > 2 for c in grams2.values())


def _degenerate(title: str, lang: str) -> bool:
    if re.search(rf"([{_CJK}])\1\1|([A-Za-z])\2\2\2", title):
        return True
    cjk = "".join(_CJK_RUN.findall(title))
    latin = re.sub(r"[^A-Za-z]", "", title).lower()
    for chars, minimum in ((cjk, 5), (latin, 16)):
        if len(chars) >= minimum and Counter(chars).most_common(1)[0][1] > CHAR_SHARE * len(chars):
            return True
    words = _WORD.findall(title.lower())
    if _repeats(words) or any(c > 2 for w, c in Counter(words).items() if w not in STOP_EN):
        return True
    return _zh_repeats([seg for run in _CJK_RUN.findall(title) for seg in _strip_function_zh(run)])


def _zh_repeats(segments: list[str]) -> bool:
    """Over the content segments of every CJK run (so across spaces: "吊带 蕾丝 吊带 穿 吊带…"): a
    segment three times, a character trigram twice or a bigram three times, or "xyxy" inside one."""
    if any(c > 2 for seg, c in Counter(segments).items() if len(seg) >= 2):
        return True
    tri = Counter(seg[i:i + 3] for seg in segments for i in range(len(seg) - 2))
    bi = Counter(seg[i:i + 2] for seg in segments for i in range(len(seg) - 1))
    return (any(c > 1 for c in tri.values()) or any(c > 2 for c in bi.values())
            or any(re.search(r"(..)\1", seg) for seg in segments))


def _last_zh_word(text: str) -> tuple[str, str]:
    """(last word, the text before it) by jieba: where a title ends is read per word ("自在" is no "在")."""
    from genads.creative.text import jieba_words

    words = [w for w in jieba_words(text) if w.strip()]
    return (words[-1], "".join(words[:-1])) if words else ("", "")


def _incomplete(title: str, lang: str) -> bool:
    t = title.strip()
    if re.search(r"[,，、;；:：\-–—/&(（\[【]$", t) or t.count("(") > t.count(")") or t.count("（") > t.count("）"):
        return True
    if re.search(r"[.!?。！？…]$", t):
        t = t.rstrip(".!?。！？… ")
        if not t:
            return True
    if _CJK_RUN.fullmatch(t[-1:]):
        clause = re.split(r"[，,。！？!?；;：:、\s]", t)[-1]
        if not any(_strip_function_zh(run) for run in _CJK_RUN.findall(clause)):
            return True  # the last clause says nothing: "…，让整体", "…，它", "搭配上地中"
        last, before = _last_zh_word(t)
        if last == "的":
            return "是" not in before  # 是…的 ends a sentence
        if last in DANGLE_ZH:
            return True
        return len(last) == 1 and before.endswith("的") and last not in WHOLE_AFTER_DE
    words = re.findall(r"[A-Za-z0-9&']+", t)
    if not words:
        return True
    last, prev = words[-1], words[-2] if len(words) > 1 else ""
    if last.lower() == "in" and prev[:1].isdigit():
        return False  # "24 in": inches
    return last.lower() in DANGLE_EN and not (last[:1].isupper() and last.lower() in ("can", "will", "may", "plus", "more"))


def _too_short(title: str, lang: str, brand: str) -> bool:
    if lang == "zh":
        return sum(len(r) for r in _CJK_RUN.findall(title)) < 4
    content = [p for p in latin_pieces(title) if p not in STOP_EN]
    beyond = [p for p in content if p not in set(latin_pieces(brand)) and not p.isdigit()]
    return len(content) < 2 or not beyond  # "Shoreline Marine" names the brand, not the product


def judge_title(title: str, sources: list[str], lang: str, brand: str = "") -> Judgement:
    """Run every check of :data:`CHECKS` on one title; ``lang`` is "en" or "zh"; ``brand`` (when known)
    does not count towards ``too_short``."""
    if lang not in ("en", "zh"):
        raise ValueError(f"lang={lang!r} must be 'en' or 'zh'")
    if not re.search(r"\w", title):
        return Judgement(title, ("empty",), 0, 0)
    bad, total = support(title, [s for s in sources if s])
    failures = [name for name, failed in (("script", not _script_ok(title, lang)), ("degenerate", _degenerate(title, lang)),
                                          ("incomplete", _incomplete(title, lang)), ("too_short", _too_short(title, lang, brand)),
                                          ("unsupported", bad > 0)) if failed]
    return Judgement(title, tuple(failures), bad, total)


def judge_titles(titles: list[str], sources: list[list[str]], lang: str, brands: list[str] | None = None) -> dict:
    """Pass-all share, failures per check, and the unsupported share of content units, for a set of titles."""
    brands = brands if brands is not None else [""] * len(titles)
    if not len(titles) == len(sources) == len(brands):
        raise ValueError(f"{len(titles)} titles for {len(sources)} source lists and {len(brands)} brands")
    js = [judge_title(t, s, lang, b) for t, s, b in zip(titles, sources, brands, strict=True)]
    fails = Counter(f for j in js for f in j.failures)
    return {"titles": len(js), "pass_all": sum(j.passed for j in js) / max(len(js), 1),
            "failures": {c: fails.get(c, 0) for c in CHECKS},
            "unsupported_share": sum(j.unsupported for j in js) / max(sum(j.content for j in js), 1)}


def perplexity(model, tok, titles: list[str], prefix: str = "Ad title:") -> list[float]:
    """Per-title perplexity of ``prefix + " " + title + <eos>`` on the title tokens under ``model``
    (a causal LM, e.g. the un-tuned backbone): a fluency proxy. ``inf`` for an empty title."""
    import torch

    out = []
    head = tok(prefix, add_special_tokens=True)["input_ids"]
    for title in titles:
        if not title.strip():
            out.append(math.inf)
            continue
        body = tok(" " + title.strip(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([head + body])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(head) - 1:-1]  # (len(body), V)
        nll = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(body))
        out.append(float(torch.exp(nll)))
    return out
