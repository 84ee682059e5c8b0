"""English title targets a selling-point model can reach: a product title without its model and part numbers.

A product's selling points never hold its model number ("Justrite 7150400 ..."), so a title model trained on raw
Amazon titles learns to type one after the brand and dead-ends under the selling-point constraint. The English
training targets and references of the creative benchmarks go through :func:`strip_model_numbers` first
(:func:`genads.creative.title_data.amazon_products`).
"""

from __future__ import annotations

import re

from genads.creative.selling_points import SIZE, clean_text

_RATE_UNIT = frozenset({"ppm", "cfm", "gpm", "gph", "btu", "kw", "kva", "db", "nm", "ah", "bar", "kpa", "mpa", "lux", "ohm",
                        "ohms", "mbps", "gb", "tb", "mhz", "ghz"})
"""Units after a bare number that make it a rate ("440 CFM"), not a model number."""


def strip_model_numbers(title: str, brand: str = "") -> str:
    """``title`` without its model and part numbers ("Justrite 7150400 Type I ...", "Dico 541-786-21/2 Nyalox ...",
    "VenTech VT IF6+CF6 IF6CF620 Inline ..."): words with a digit that are not part of a size ("1/2-Inch", "Pack of
    10", "1.75mm", "440 CFM") or of the ``brand`` ("WD-40") and hold a letter besides or three or more digits;
    "3D", "i3" and "2x" stay. A product's
    selling points never hold its model number, so a title model trained on raw titles learns to type one and
    dead-ends (the constraint refuses it): the English training targets and references are stripped."""
    text = clean_text(title)
    sizes = [m.span() for m in SIZE.finditer(text)]
    brand_words = {w.lower() for w in brand.split()}
    words = list(re.finditer(r"\S+", text))
    out = []
    for i, m in enumerate(words):
        word = m.group(0)
        core = word.strip(",;:()[]\"'")
        after = words[i + 1].group(0).strip(",;:()[]").lower() if i + 1 < len(words) else ""
        in_size = (any(a <= m.start() < b or a < m.end() <= b for a, b in sizes) or core.lower() in brand_words
                   or (after in _RATE_UNIT and re.fullmatch(r"[\d.,/-]+", core) is not None))
        digits, letters = len(re.findall(r"\d", core)), len(re.findall(r"[A-Za-z]", core))
        if digits and not in_size and len(core) > 2 and (letters or digits >= 3):
            kept = word[:len(word) - len(word.lstrip("(["))] + word[len(word.rstrip(",;:)]")):]
            if kept.strip():
                out.append(kept.strip())
            continue
        out.append(word)
    result = " ".join(out)
    result = re.sub(r"\(\s*\)|\[\s*\]", " ", result)
    result = re.sub(r"\s+([,;:)\]])", r"\1", result)
    result = re.sub(r"([(\[])\s+", r"\1", result)
    result = re.sub(r"(?:^|\s)[,;:](?=\s|$)", " ", result)
    result = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", result)
    result = re.sub(r"\s+-\s+(?=-|$)|^\s*-\s+", " ", result)
    return re.sub(r"\s+", " ", result).strip(" ,;:-")
