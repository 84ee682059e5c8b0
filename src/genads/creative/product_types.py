"""What the product is, as a selling point found in its description ("foil tape", "Erlenmeyer flasks").

An English description rarely says "Type: tape"; it names the product in a noun phrase ("Scotch
3311 foil tape provides ..."). Without a part-of-speech model we recognise the phrase by its head
noun: a *type lexicon* holds the head nouns of catalogue titles (the last word of a title's first
noun phrase, model numbers, sizes and the brand removed: "Hookit Film Disc" -> "disc"), seen at
least ``min_count`` times. :func:`description_type` then takes the lexicon head noun the
description repeats most (first occurrence on a tie) with up to two modifiers before it
("depressed-center wire wheel").

The lexicon must not come from the titles a benchmark uses as references: build it from the
training split's titles and other catalogues (``benchmarks/creative_titles.py`` uses the
Industrial & Scientific training titles and all of Office Products). Without the type point the
title LM cannot name the product at all, since its content words must come from the selling
points (``constraint``): "Uxcell 3 x" instead of "Uxcell limit switch".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from genads.creative.constraint import FUNCTION_EN

_WORD = re.compile(r"[A-Za-z][A-Za-z\-]*[A-Za-z]|[A-Za-z]")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-'/.\"]*[A-Za-z0-9\"]|[A-Za-z0-9]|[,;:()!?|]|\.(?=\s|$)")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NOT_A_TYPE: frozenset[str] = _words(
    "black white red blue green yellow orange pink purple grey gray silver gold clear brown pack set kit piece count box "
    "size inch inc product series pro plus mini large small medium heavy duty new assorted assortment "
    "steel stainless aluminum plastic brass copper nylon rubber wood "
    "material materials surface male female unit part side end top bottom type style design quality feature option "
    "model version grade replacement compatible approved certified")
"""Frequent last words of titles that say a colour, a package or a material, not what the product is."""
_STOP = FUNCTION_EN | _words("this these our new your great high best easy ideal perfect very")


def stem(word: str) -> str:
    """Lower case without a plural ending: "flasks" -> "flask", "batteries" -> "battery", "boxes" -> "box"."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ches", "shes", "sses", "xes", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def title_head(title: str, brand: str = "") -> str | None:
    """The stemmed head noun of a title's first noun phrase, or None when it is not a plain word."""
    from genads.creative.selling_points import _brand, _english_title

    first = next((p.text for p in _english_title(title, _brand(brand), 5) if p.kind == "type" and p.text), "")
    last = first.split()[-1] if first else ""
    return stem(last) if re.fullmatch(r"[A-Za-z][A-Za-z\-]+", last) else None


def type_lexicon(titles: Iterable[tuple[str, str]], min_count: int = 3) -> frozenset[str]:
    """Head nouns of ``(title, brand)`` pairs seen at least ``min_count`` times, colours/packages/materials out."""
    if min_count < 1:
        raise ValueError(f"min_count={min_count} must be >= 1")
    heads = Counter(h for t, b in titles if (h := title_head(t, b)))
    return frozenset(h for h, n in heads.items()
                     if n >= min_count and len(h) > 2 and h not in FUNCTION_EN and h not in NOT_A_TYPE)


def description_type(description: str, brand: str, lexicon: frozenset[str], max_modifiers: int = 2) -> str | None:
    """The noun phrase of ``description`` whose head is the lexicon noun it repeats most, as written, with up to
    ``max_modifiers`` plain words before it (no grammar word, number or brand word); None when no lexicon noun occurs."""
    if not lexicon:
        return None
    brand_words = {w.lower() for w in _WORD.findall(brand)}
    toks = _TOKEN.findall(description)

    def plain(t: str) -> bool:
        return bool(re.fullmatch(r"[A-Za-z][A-Za-z\-]*", t)) and t.lower() not in _STOP and t.lower() not in brand_words

    heads = [i for i, t in enumerate(toks) if plain(t) and stem(t) in lexicon]
    if not heads:
        return None
    counts = Counter(stem(toks[i]) for i in heads)
    top = max(counts.values())
    i = next(i for i in heads if counts[stem(toks[i])] == top)
    j = i
    while j > 0 and i - j < max_modifiers and plain(toks[j - 1]):
        j -= 1
    return " ".join(toks[j:i + 1])
