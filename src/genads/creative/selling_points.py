"""Selling points from product text: short attribute phrases, not fragments of sentences.

A selling point is a short phrase an advertiser would put on an ad: the brand, what the product
is, its material, a size, a use ("for roofing felt"), a benefit ("weather-resistant", "reduces
staple breakage"). :func:`extract_selling_points` finds them, typed, in a product's title,
description and attributes; :func:`derive_selling_points` is the plain-text shortcut for one text.

English, in order:

1. *Clean* (:func:`clean_text`): HTML entities and tags out; sentences that the source glued
   together are split again ("the gaugeThen use" -> "the gauge. Then use", "BRAND STORYIn 1953"
   -> "BRAND STORY. In 1953", "lbs.Need" -> "lbs. Need").
2. *Typed extractors* on the description: ``Key: value`` attribute pairs (``Staple Type: Staple
   Gun``), measurements (``1/2-Inch``, ``Pack of 1000``, ``2-1/2" diameter``), materials from a
   lexicon with one modifier (``stainless steel``), uses after "for" / "ideal for" /
   "Applications:", benefits (hyphenated ``-resistant``/``-proof``/``heavy-duty`` words, a benefit
   adjective with the noun after it, "reduces/prevents/improves + object").
3. *Title chunks*: a title is a list of noun phrases; it is cut at commas, brackets, dashes and
   "with"/"for", and model numbers (letters and digits mixed, no unit) are dropped.
4. Every candidate must pass :func:`phrase_problems` (1-``max_words`` words, a content word, no
   dangling first/last word, no copula clause, no stray ``*``/``:``, no glued words, no header
   text such as "BRAND STORY"); near-duplicates (same word set, or one's words inside another's)
   keep the first.

Chinese: attribute values (AdvertiseGen ``k#v``) typed by their key, with the coarse 类型 value
dropped when a finer value ends with it (裙 under 连衣裙); from free text, jieba part-of-speech
chunks of adjectives/nouns that end in a noun or adjective (2-10 characters); a clause of at most 8
characters without grammar characters is a phrase as it is.

Points are returned brand first, then type, material, size, benefit, use, colour, style, feature,
each kind capped (:data:`KIND_CAPS`), in text order within a kind.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from genads.creative.product_types import description_type
from genads.creative.text import is_chinese


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KINDS = ("brand", "type", "material", "size", "benefit", "use", "colour", "style", "feature")
KIND_CAPS = {"brand": 1, "type": 1, "material": 2, "size": 2, "benefit": 2, "use": 2, "colour": 2, "style": 2,
             "feature": 6}
STOP = _words("a an the this that these those it its is are be our your you we of to in on at by as "
              "from use used uses using designed ideal great new item product products please note "
              "country origin n/a na and or with for")
DANGLE_START = _words("and or but nor which that who whom it is are was were be been to of from by as than then "
                      "so at in on into com www also such has have had can will may you we they these those "
                      "there here while when if because not very more most its all any each every some many "
                      "other features includes offers provides fits")
DANGLE_END = _words("a an the and or but of to for with in on at by from as is are was were be that which "
                    "this it its your our their such than very more most x will can not into onto per ideal "
                    "perfect great along")
_CLAUSE = _words("is are was were will can cannot can't does do did has have had it's you're we're they're")
_JUNK = _words("amazon amazon.com com www http https click visit warranty customer customers please")
_BREAK = DANGLE_END | DANGLE_START | _words(
    "such including over under through between across without within after before during about against up down "
    "out off via since like even where allowing making giving provides provide leads requires makes allows offers "
    "gives helps keeps features includes comes works fits ensures delivers lets cannot along")
_HEADER = _words("brand story how to use uses features feature specifications specification description "
                 "about us note notes warning package includes details product environmental "
                 "responsibility thousands of the fun fact overview why choose our")

_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[- ]\d+/\d+|/\d+)?"
_UNIT = (r"(?:inch(?:es)?|in\b\.?|\"|”|''|ft\b|feet|foot|mm\b|cm\b|(?-i:m)\b|meters?\b|yds?\b|yards?|oz\b|ounces?|lbs?\b|pounds?"
         r"|g\b|grams?|kg\b|ml\b|liters?|litres?|gallons?|gal\b|v\b|volts?|vac\b|vdc\b|w\b|watts?|amps?\b|mah\b|psi\b"
         r"|awg\b|gauge\b|grit\b|degrees?|°[cf]?|count\b|ct\b|pack\b|pk\b|pcs\b|pieces?\b|sheets?\b|rolls?\b|mil\b"
         r"|microns?|hz\b|rpm\b)")
_MEAS = rf"{_NUM}(?:\s?(?:-|to)\s?{_NUM})?\s?-?{_UNIT}"
SIZE = re.compile(rf"(?<![\w/.-])(?:{_MEAS}(?:\s?x\s?{_MEAS})*(?:\s(?:diameter|dia|wide|long|length|width|height|thick"
                  rf"|capacity|shank|bore|spool|deep|tall)\b)?|(?:pack|set|box|case|bag) of \d+|\d+-(?:pack|piece|count)\b)",
                  re.IGNORECASE)
"""A size or count in English product text ("1/2-Inch", "1.75mm", "2-1/2\" diameter", "Pack of 10")."""
_MATERIALS = ("stainless steel", "carbon steel", "alloy steel", "tool steel", "high-speed steel", "cast iron",
              "aluminum alloy", "aluminium alloy", "zinc alloy", "silicone rubber", "carbon fiber", "carbon fibre",
              "tungsten carbide", "polycarbonate", "polypropylene", "polyethylene", "polyester", "polyurethane",
              "nylon", "brass", "bronze", "copper", "steel", "iron", "aluminum", "aluminium", "titanium", "zinc",
              "nickel", "chrome", "silicone", "rubber", "latex", "nitrile", "neoprene", "vinyl", "pvc", "abs", "pla",
              "petg", "tpu", "acrylic", "plastic", "fiberglass", "glass", "ceramic", "porcelain", "hardwood",
              "plywood", "wood", "bamboo", "cotton", "leather", "wool", "foam", "paper", "cardboard", "felt",
              "kevlar", "ptfe", "epoxy", "resin", "quartz", "granite", "canvas", "mesh")
_MODIFIERS = "stainless|galvanized|hardened|anodized|solid|woven|reinforced|tempered|food-grade|medical-grade|natural"
_MATERIAL = re.compile(rf"\b(?:(?:{_MODIFIERS})\s+)?(?:{'|'.join(re.escape(m) for m in _MATERIALS)})\b", re.IGNORECASE)
_MADE_OF = re.compile(r"\b(?:made|constructed|crafted|manufactured|built|composed|comprised|fabricated)\s+(?:of|from|with|in)"
                      r"\s+(?:[\w-]+\s+){0,3}?$", re.IGNORECASE)
_MATERIAL_HEAD = re.compile(r"^\s+(?:construction|body|housing|frame|blade|handle|finish|shell|case|core|bristles?|tip"
                            r"|tubing|tube|jaws?|base)\b", re.IGNORECASE)
_BENEFIT_WORD = re.compile(r"\b(?:(?:[a-z]+-)+(?:resistant|proof|free|duty|strength|grade|tack|fusing|locking|tapping"
                           r"|sealing|rigid|stick|slip|insulated|coated|plated|lasting|wearing|saving|efficient)"
                           r"|(?:non|anti)[- ][a-z]{3,}|heavy duty|high[- ](?:strength|performance|precision|temperature"
                           r"|visibility|capacity))\b", re.IGNORECASE)
_BENEFIT_ADJ = ("waterproof|weatherproof|rustproof|durable|lightweight|portable|adjustable|rechargeable|reusable|cordless"
                "|flexible|washable|compact|sturdy|removable|resealable|stackable|foldable|ergonomic|magnetic|wireless"
                "|transparent|breathable|biodegradable|versatile|self-adhesive|waterproof|insulated")
_BENEFIT_PHRASE = re.compile(rf"\b(?:{_BENEFIT_ADJ})\b(?:\s+[A-Za-z][\w-]*){{0,2}}", re.IGNORECASE)
_BENEFIT_VERB = re.compile(r"\b(?:prevents?|reduces?|improves?|eliminates?|resists?|increases?|protects?|extends?"
                           r"|minimi[sz]es?|enhances?)\s+[A-Za-z][\w-]*(?:\s+[A-Za-z][\w-]*){0,2}", re.IGNORECASE)
_USE = re.compile(r"\b(?:ideal|perfect|great|suitable|designed|made|used|intended|recommended|good)?\s*for\s+"
                  r"(?:use\s+(?:in|on|with)\s+)?(?:the\s+|a\s+|an\s+|your\s+|all\s+)?"
                  r"([A-Za-z][\w/-]*,?(?:\s+[A-Za-z0-9][\w/-]*,?){0,3})", re.IGNORECASE)
_GENERIC_USE = _words("you use years hours more details example instance any many long a the this that it your "
                      "further information life purpose purposes around about over up at least jobs job work "
                      "several few minutes seconds")
_PAIR = re.compile(r"(?:(?<=^)|(?<=[.;*•|]\s)|(?<=[.;*•|])|(?<=\s{2}))\s*([A-Z][A-Za-z]*(?: [A-Za-z]+){0,2}):\s*"
                   r"([^;:*•|\n]{1,60}?)(?=\s*(?:[;*•|\n]|\.\s|\.$|$|\s[A-Z][A-Za-z]*(?: [A-Za-z]+){0,2}:))")
_PAIR_KIND = {"material": "material", "materials": "material", "color": "colour", "colour": "colour",
              "light color": "colour", "type": "type", "style": "style", "application": "use", "applications": "use",
              "use": "use", "uses": "use", "ideal for": "use", "for use with": "use", "compatible with": "use"}
_SIZE_KEYS = _words("size dimensions length width height diameter capacity weight voltage wattage thickness "
                    "leg length bolt size load capacity")
_SKIP_KEYS = _words("note notes warning disclaimer description specification specifications features feature "
                    "package package includes includes please note model item model number part number item "
                    "sku upc manufacturer country quantity brand bearing no housing no fun fact")
_TITLE_SPLIT = re.compile(r"\s*[,;|()\[\]{}]\s*|\.\s+|\s+[-–—/]+\s+|\s+(?:with|and|w/)\s+|\s+(?=for\s)", re.IGNORECASE)
_MODEL_NO = re.compile(r"^(?=[\w/-]*\d)(?=[\w/-]*[A-Za-z])[\w/-]{3,}$")
_WORD = re.compile(r"[A-Za-z0-9][\w'./-]*")
ZH_COARSE_KEY = "类型"
_ZH_KIND = {"类型": "type", "衣样式": "type", "裙型": "type", "裤型": "type", "材质": "material", "颜色": "colour",
            "风格": "style"}
_ZH_POS_KEEP = ("n", "a", "b", "vn", "an", "nz", "eng", "i", "l")
_ZH_POS_HEAD = ("n", "vn", "nz", "eng", "ng", "an", "i", "l", "a")


@dataclass(frozen=True)
class SellingPoint:
    text: str
    kind: str
    """One of :data:`KINDS`."""


def clean_text(text: str) -> str:
    """Unescape HTML, drop tags, and split sentences the source glued together (see the module docstring)."""
    text = html.unescape(html.unescape(text)).replace("Amazon.com", " ")
    text = re.sub(r"<[^>]{0,200}>", " ", text)
    text = re.sub(r"\b([a-z]{2,})([A-Z])", r"\1. \2", text)  # gaugeThen -> gauge. Then; safetyMLCS
    text = re.sub(r"\b(?:[A-Z][a-z]{2,}){3,}", lambda m: ", ".join(re.findall(r"[A-Z][a-z]+", m.group(0))), text)
    text = re.sub(r"\b([A-Z]{3,})([A-Z][a-z]{1,})", r"\1. \2", text)  # STORYIn -> STORY. In
    text = re.sub(r"(?<=[a-z0-9]{2})\.(?=[A-Z][a-z])", ". ", text)  # lbs.Need -> lbs. Need
    text = re.sub(r"(?<=[a-z])(\d{1,2}\.)(?=\s)", r". \1", text)  # well2. Flip -> well. 2. Flip
    text = re.sub(r"(?<=[A-Za-z]):(?=[A-Za-z])", ": ", text)  # Specification:Description:Easy
    return re.sub(r"\s+", " ", text).strip()


def phrase_problems(text: str, max_words: int = 5) -> list[str]:
    """Why ``text`` is not a selling-point phrase (empty list: it is one). English only; Chinese passes."""
    if is_chinese(text):
        return [] if 1 <= len(text) <= 16 and not re.search(r"[，。！？；：,.!?;:*]", text) else ["not a short zh phrase"]
    words = _WORD.findall(text)
    lower = [w.lower().strip(".'") for w in words]
    problems = []
    if not words:
        return ["no words"]
    if len(words) > max_words:
        problems.append(f"more than {max_words} words")
    is_size = bool(SIZE.fullmatch(text.strip()))
    if not is_size and not any(w not in STOP and w not in DANGLE_START and not re.fullmatch(r"[\d./-]+", w) for w in lower):
        problems.append("no content word")
    if lower[0] in DANGLE_START:
        problems.append(f"starts with {words[0]!r}")
    if lower[-1] in DANGLE_END:
        problems.append(f"ends with {words[-1]!r}")
    if any(w in _CLAUSE for w in lower):
        problems.append("a clause, not a phrase")
    if re.search(r"[*:•;|=<>]|^\W|[-/&,(]$", text.strip()) or text.count("(") != text.count(")") or text.count('"') > 2:
        problems.append("stray punctuation")
    if re.search(r"\b[a-z]{2,}[A-Z]|\b[A-Z]{3,}[A-Z][a-z]|\b(?:[A-Z][a-z]{2,}){3,}|[a-z]{5,}[A-Z][a-z]{3,}", text):
        problems.append("glued words")
    if any(w in _JUNK or w.startswith("amazon.") for w in lower):
        problems.append("boilerplate")
    if not is_size and any(_MODEL_NO.match(w) and not SIZE.fullmatch(w) for w in words) and len(words) > 1:
        problems.append("a model number inside")
    if text.isupper() and len(lower) >= 2 and all(w in _HEADER for w in lower):
        problems.append("a section header")
    return problems


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<![\d\s][a-z]\.)(?<=[.!?])\s+(?=[A-Z0-9\"(])|\s*[;•|\n]\s*|\s\*\s", text) if s.strip()]


def _tidy(phrase: str) -> str:
    """Trim dangling words and punctuation from the ends of a candidate."""
    words = phrase.strip(" ,.;:-/&").split()
    while words and words[-1].lower().strip(".,") in DANGLE_END:
        words.pop()
    while words and words[0].lower() in DANGLE_START | {"the", "a", "an"}:
        words.pop(0)
    return " ".join(words).strip(" ,.;:-/&")


def _stop_at_function(words: list[str], keep: frozenset[str] = frozenset()) -> list[str]:
    """The words up to the first function word (those in ``keep`` excepted) or punctuation."""
    out = []
    for w in words:
        bare = w.lower().strip(",.;:!?")
        if bare in _BREAK and bare not in keep:
            break
        out.append(w.rstrip(",.;:!?"))
        if w != w.rstrip(",.;:!?"):
            break
    return out


def _english_description(text: str) -> list[SellingPoint]:
    text = clean_text(text)
    found: list[tuple[int, SellingPoint]] = []
    for m in _PAIR.finditer(text):
        key, value = m.group(1).strip().lower(), _tidy(m.group(2))
        if key in _SKIP_KEYS or not value or value.lower() in ("n/a", "na", "none"):
            continue
        kind = _PAIR_KIND.get(key) or ("type" if key.endswith("type") else "colour" if key.endswith(("color", "colour"))
                                       else "material" if "material" in key else "size" if key in _SIZE_KEYS
                                       else "feature")
        if kind == "use":
            for part in re.split(r"\s*,\s*|\s+and\s+", value):
                found.append((m.start(), SellingPoint(_tidy(part), "use")))
            continue
        if kind == "size" and SIZE.search(value):
            value = f"{SIZE.search(value).group(0)} {key}" if key not in ("size", "dimensions") else value
        found.append((m.start(), SellingPoint(value, kind)))
    for m in SIZE.finditer(text):
        found.append((m.start(), SellingPoint(m.group(0).strip(), "size")))
    for m in _MATERIAL.finditer(text):
        specific = " " in m.group(0) or "-" in m.group(0)
        if specific or _MADE_OF.search(text[max(0, m.start() - 60):m.start()]) or _MATERIAL_HEAD.match(text[m.end():]):
            found.append((m.start(), SellingPoint(m.group(0), "material")))
    for rx in (_BENEFIT_WORD, _BENEFIT_PHRASE, _BENEFIT_VERB):
        for m in rx.finditer(text):
            words = m.group(0).split()
            rest = _stop_at_function(words[1:])
            if words[0][:1].islower():  # a capital after a lower-case adjective starts the next sentence
                rest = rest[:next((i for i, w in enumerate(rest) if w[:1].isupper()), len(rest))]
            if rx is not _BENEFIT_VERB or rest:  # a verb needs its object: "prevents overdriving"
                found.append((m.start(), SellingPoint(" ".join(words[:1] + rest), "benefit")))
    for m in _USE.finditer(text):
        words = _stop_at_function(m.group(1).split(), keep=frozenset(["and", "or"]))
        while len(words) > 1 and (words[-1].lower() in ("and", "or") or words[-1].lower().endswith(("ed", "ing"))):
            words.pop()
        if words and words[0].lower() not in _GENERIC_USE and (len(words) > 1 or words[0].lower().endswith("ing")):
            found.append((m.start(), SellingPoint("for " + " ".join(words), "use")))
    for s in _sentences(text):
        for piece in _TITLE_SPLIT.split(s):
            words = _tidy(piece).split()
            if 2 <= len(words) <= 4 and not any(w.lower() in _BREAK for w in words):
                found.append((text.find(piece), SellingPoint(" ".join(words), "feature")))
    return [p for _, p in sorted(found, key=lambda x: x[0])]


def _english_title(title: str, brand: str, max_words: int) -> list[SellingPoint]:
    """Noun phrases of a title: sizes pulled out, model numbers and the brand dropped, a long phrase
    cut to its last ``max_words`` words (an English noun phrase ends in its head noun)."""
    out = []
    for k, piece in enumerate(_TITLE_SPLIT.split(clean_text(title))):
        piece = piece.strip()
        for m in SIZE.finditer(piece):
            out.append(SellingPoint(m.group(0).strip(), "size"))
        piece = SIZE.sub(" ", piece)
        if piece.lower().startswith("for "):
            out.append(SellingPoint(_tidy(piece), "use"))
            continue
        words = [w for w in piece.split() if not _MODEL_NO.match(w) and not re.fullmatch(r"#?\d+", w)]
        if brand and " ".join(words[:len(brand.split())]).lower() == brand.lower():
            words = words[len(brand.split()):]
        phrase = _tidy(" ".join(words[-max_words:]))
        kind = "material" if _MATERIAL.fullmatch(phrase) else "type" if k == 0 else "feature"
        out.append(SellingPoint(phrase, kind))
    return out


@lru_cache(maxsize=1)
def _posseg():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg


def _chinese_text(text: str) -> list[SellingPoint]:
    """Short clauses as they are; adjective/noun chunks of longer clauses (jieba part-of-speech tags)."""
    out = []
    for clause in re.split(r"[，。；：！？、,.;:!?\s]+", text):
        if 2 <= len(clause) <= 8 and not re.search(r"[的是在有让和与了着很都也就还这那]", clause):
            out.append(SellingPoint(clause, "feature"))  # a short clause is a phrase already
            continue
        chunk: list[tuple[str, str]] = []
        for pair in [*_posseg().cut(clause), None]:
            if pair is not None and pair.flag.startswith(_ZH_POS_KEEP) and pair.word not in ("的", "UNK"):
                chunk.append((pair.word, pair.flag))
                continue
            while chunk and not chunk[-1][1].startswith(_ZH_POS_HEAD):
                chunk.pop()
            phrase = "".join(w for w, _ in chunk)
            if 2 <= len(phrase) <= 10 and len(chunk) >= 1:
                out.append(SellingPoint(phrase, "feature"))
            chunk = []
    return out


def _chinese_attributes(attributes: list[tuple[str, str]]) -> list[SellingPoint]:
    values = [v for _, v in attributes]
    finer = any(_ZH_KIND.get(k) == "type" and k != ZH_COARSE_KEY for k, _ in attributes)
    out = []
    for key, value in attributes:
        if key == ZH_COARSE_KEY and (finer or any(v != value and v.endswith(value) for v in values)):
            continue
        out.append(SellingPoint(value, _ZH_KIND.get(key, "feature")))
    return out


def _brand(brand: str) -> str:
    return re.sub(r"[,.]?\s+(?:co|inc|corp|corporation|llc|ltd|gmbh|company)\b\.?", "", clean_text(brand),
                  flags=re.IGNORECASE).strip(" ,.")


def _select(points: list[SellingPoint], max_points: int, max_words: int) -> list[SellingPoint]:
    """Valid phrases, near-duplicates dropped (first kept), kinds capped, in kind order."""
    kept: list[SellingPoint] = []
    keys: list[frozenset[str]] = []
    per_kind: dict[str, int] = {}
    for p in points:
        text = p.text.strip()
        if not text or (p.kind != "brand" and phrase_problems(text, max_words)):
            continue
        key = frozenset(w for w in re.split(r"[^\w.]+", text.lower()) if w) if not is_chinese(text) else frozenset([text])
        if any(key <= k or k <= key for k in keys) or (is_chinese(text) and any(text in q.text for q in kept)):
            continue
        if per_kind.get(p.kind, 0) >= KIND_CAPS[p.kind]:
            continue
        per_kind[p.kind] = per_kind.get(p.kind, 0) + 1
        kept.append(SellingPoint(text, p.kind))
        keys.append(key)
    kept.sort(key=lambda p: KINDS.index(p.kind))
    return kept[:max_points]


def extract_selling_points(title: str = "", description: str = "", attributes: list[tuple[str, str]] = (),
                           brand: str = "", max_points: int = 6, max_words: int = 5,
                           type_lexicon: frozenset[str] = frozenset()) -> list[SellingPoint]:
    """Typed selling points of one product; see the module docstring.

    Args:
        title: the product title (leave empty when the title is what a model must learn to write).
        description: free text (English description paragraphs, or Chinese copy).
        attributes: ``(key, value)`` pairs (AdvertiseGen ``类型#上衣`` -> ``("类型", "上衣")``).
        brand: the brand; corporate suffixes ("Co., Inc.") are dropped.
        max_points: at most this many points; max_words: at most this many words per English point.
        type_lexicon: head nouns of product types (:func:`~genads.creative.product_types.type_lexicon`); when given,
            an English description's product noun phrase is the type point
            (:func:`~genads.creative.product_types.description_type`), ahead of a "Type:" pair.
    """
    if max_points < 1 or max_words < 1:
        raise ValueError(f"max_points={max_points} and max_words={max_words} must be >= 1")
    found: list[SellingPoint] = []
    if brand.strip():
        found.append(SellingPoint(_brand(brand), "brand"))
    found += _chinese_attributes(list(attributes)) if any(is_chinese(v) for _, v in attributes) else \
        [SellingPoint(_tidy(v), _PAIR_KIND.get(k.lower(), "feature")) for k, v in attributes]
    if title.strip():
        found += _chinese_text(title) if is_chinese(title) else _english_title(title, _brand(brand), max_words)
    if description.strip():
        if is_chinese(description):
            found += _chinese_text(description)
        else:
            kind = description_type(clean_text(description), _brand(brand), type_lexicon) if type_lexicon else None
            found += ([SellingPoint(_tidy(kind), "type")] if kind else []) + _english_description(description)
    return _select(found, max_points, max_words)


def derive_selling_points(text: str, max_points: int = 6, max_words: int = 4) -> list[str]:
    """Selling-point phrases of one text: a title (short, no sentence end) is cut into its noun phrases,
    a longer text goes through the description extractors."""
    if max_points < 1 or max_words < 1:
        raise ValueError(f"max_points={max_points} and max_words={max_words} must be >= 1")
    looks_like_title = not is_chinese(text) and len(text.split()) <= 25 and not re.search(r"[.!?]\s+[A-Z]", text)
    points = extract_selling_points(title=text, max_points=max_points, max_words=max_words) if looks_like_title else \
        extract_selling_points(description=text, max_points=max_points, max_words=max_words)
    return [p.text for p in points]
