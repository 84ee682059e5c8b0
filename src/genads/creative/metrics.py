"""Creative metrics: BLEU, ROUGE-L, factuality, repetition, copy rate, exaggeration, PBS.

Text metrics work on word lists from :func:`genads.creative.text.tokenize` (jieba for Chinese).

PBS (product background similarity, after Uni-AdGen) compares two ad images with their products
masked out, using an offline hand-made embedding (:func:`background_embedding`):

* colour: a 8 x 3 x 3 HSV histogram (hue x saturation x value) of the background pixels,
  square-rooted (Hellinger) and L2-normalised;
* texture: HOG-like, per cell of a 4 x 4 grid, a 9-bin histogram of unsigned gradient orientation
  weighted by magnitude plus one "flat" bin counting pixels with almost no gradient, each cell
  divided by its background pixel count; the whole vector L2-normalised.

Images are resized to 128 x 128; the product mask (alpha > 0 of the cut-out as placed) is dilated
by 2 px so the product's outline does not count as background texture. The embedding is
``concat(sqrt(w) * colour, sqrt(1 - w) * texture)`` with w = 0.6, so
PBS = 0.6 * cos(colour) + 0.4 * cos(texture), in [0, 1] for these non-negative features.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from PIL import Image

from genads.creative.text import is_chinese, selling_point_vocab, tokenize

EXAGGERATION_EN: frozenset[str] = frozenset({
    "best", "greatest", "perfect", "ultimate", "miracle", "guaranteed", "cheapest", "unbeatable",
    "revolutionary", "world's", "#1", "no.1", "number-one", "100%", "forever", "flawless", "amazing",
    "incredible", "instant", "magic", "risk-free", "lowest", "finest", "supreme",
})
"""Superlatives and absolute claims that ad regulations (e.g. China's Advertising Law, art. 9) flag."""
EXAGGERATION_ZH: tuple[str, ...] = ("最", "第一", "顶级", "极致", "绝对", "国家级", "全网", "万能", "永久",
                                    "100%", "独一无二", "史无前例", "首选", "极品", "神器", "秒杀")


def ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _clipped(hyp: list[str], refs: list[list[str]], n: int) -> tuple[int, int]:
    h = ngrams(hyp, n)
    best: Counter = Counter()
    for r in refs:
        best |= ngrams(r, n)
    return sum(min(c, best[g]) for g, c in h.items()), max(len(hyp) - n + 1, 0)


def _closest_ref_len(hyp: list[str], refs: list[list[str]]) -> int:
    return min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]


def corpus_bleu(hyps: list[list[str]], refs: list[list[list[str]]], max_n: int = 4) -> float:
    """Corpus BLEU (Papineni et al. 2002): clipped n-gram precisions up to ``max_n``, geometric mean,
    brevity penalty against the closest reference length. 0.0 when some order has no match."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference lists")
    matches, totals = np.zeros(max_n), np.zeros(max_n)
    hyp_len = ref_len = 0
    for hyp, rs in zip(hyps, refs, strict=True):
        hyp_len += len(hyp)
        ref_len += _closest_ref_len(hyp, rs)
        for n in range(1, max_n + 1):
            m, t = _clipped(hyp, rs, n)
            matches[n - 1] += m
            totals[n - 1] += t
    if hyp_len == 0 or np.any(matches == 0):
        return 0.0
    log_p = np.mean(np.log(matches / totals))
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return float(bp * math.exp(log_p))


def sentence_bleu(hyp: list[str], refs: list[list[str]], max_n: int = 4) -> float:
    """BLEU of one sentence with add-one smoothing for n > 1 (Lin & Och 2004)."""
    if not hyp:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        m, t = _clipped(hyp, refs, n)
        if n == 1 and m == 0:
            return 0.0
        log_p += math.log((m + (n > 1)) / (t + (n > 1)))
    r = _closest_ref_len(hyp, refs)
    bp = 1.0 if len(hyp) > r else math.exp(1 - r / len(hyp))
    return float(bp * math.exp(log_p / max_n))


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, O(len(a) * len(b))."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hyp: list[str], ref: list[str], beta: float = 1.0) -> float:
    """ROUGE-L F-measure (Lin 2004) from the LCS; ``beta`` weighs recall over precision."""
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return float((1 + beta**2) * p * r / (r + beta**2 * p))


def factuality(title_words: list[str], selling_points: list[str]) -> float:
    """Share of the title's words that are words of the selling points (1.0 for an empty title)."""
    if not title_words:
        return 1.0
    vocab = selling_point_vocab(list(selling_points))
    return sum(w in vocab for w in title_words) / len(title_words)


def repetition_rate(title_words: list[str]) -> float:
    """Share of words that repeat an earlier word of the same title."""
    return 0.0 if not title_words else 1.0 - len(set(title_words)) / len(title_words)


def is_copy(title_words: list[str], selling_points: list[str]) -> bool:
    """True when the title is just the selling points concatenated in their given order."""
    return title_words == [w for sp in selling_points for w in tokenize(sp)]


def exaggeration_hits(title: str) -> int:
    """Number of exaggeration-lexicon entries in the title (Chinese: substrings; English: words)."""
    hits = sum(w in EXAGGERATION_EN for w in tokenize(title)) + title.lower().count("100%")
    if is_chinese(title):
        hits += sum(title.count(w) for w in EXAGGERATION_ZH if w != "100%")
    return hits


def text_metrics(title: str, selling_points: list[str], reference: str | None = None) -> dict[str, float]:
    """All per-title text metrics; BLEU-4 (smoothed) and ROUGE-L only when a reference is given."""
    words = tokenize(title)
    out = {"factuality": factuality(words, selling_points), "repetition": repetition_rate(words),
           "copy": float(is_copy(words, selling_points)), "exaggeration": float(exaggeration_hits(title)),
           "length_words": float(len(words))}
    if reference:
        ref = tokenize(reference)
        out["bleu"] = sentence_bleu(words, [ref])
        out["rouge_l"] = rouge_l(words, ref)
    return out


EMBED_SIZE = 128
COLOUR_WEIGHT = 0.6


def _resize(image: Image.Image, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(image.convert("RGB").resize((EMBED_SIZE, EMBED_SIZE), Image.BILINEAR), dtype=np.float64)
    if mask is None:
        return rgb, np.zeros((EMBED_SIZE, EMBED_SIZE), dtype=bool)
    m = Image.fromarray(mask.astype(np.uint8) * 255).resize((EMBED_SIZE, EMBED_SIZE), Image.NEAREST)
    m = np.asarray(m) > 0
    for _ in range(2):  # dilate by 2 px (4-neighbourhood)
        m = m | np.roll(m, 1, 0) | np.roll(m, -1, 0) | np.roll(m, 1, 1) | np.roll(m, -1, 1)
    return rgb, m


def _hsv(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert("HSV"), dtype=np.float64) / 255.0


def _colour_hist(rgb: np.ndarray, keep: np.ndarray) -> np.ndarray:
    hsv = _hsv(rgb)[keep]  # (P, 3)
    idx = (np.minimum((hsv[:, 0] * 8).astype(int), 7) * 9 + np.minimum((hsv[:, 1] * 3).astype(int), 2) * 3
           + np.minimum((hsv[:, 2] * 3).astype(int), 2))
    hist = np.sqrt(np.bincount(idx, minlength=72) / max(len(idx), 1))
    return hist / max(np.linalg.norm(hist), 1e-12)


def _texture_hist(rgb: np.ndarray, keep: np.ndarray, cells: int = 4, bins: int = 9) -> np.ndarray:
    gray = rgb @ np.array([0.299, 0.587, 0.114]) / 255.0
    gx, gy = np.zeros_like(gray), np.zeros_like(gray)
    gx[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    gy[1:-1, :] = gray[2:, :] - gray[:-2, :]
    mag = np.hypot(gx, gy)
    ori = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins).astype(int), bins - 1)
    flat = mag < 0.02
    step = EMBED_SIZE // cells
    feats = []
    for cy in range(cells):
        for cx in range(cells):
            sl = (slice(cy * step, (cy + 1) * step), slice(cx * step, (cx + 1) * step))
            k = keep[sl]
            h = np.bincount(ori[sl][k & ~flat[sl]], weights=mag[sl][k & ~flat[sl]] * 10, minlength=bins)
            feats.append(np.append(h, (k & flat[sl]).sum()) / max(k.sum(), 1))
    vec = np.concatenate(feats)
    return vec / max(np.linalg.norm(vec), 1e-12)


def background_embedding(image: Image.Image, product_mask: np.ndarray | None = None) -> np.ndarray:
    """(72 + 160,) embedding of the background of ``image``; ``product_mask`` (H, W) bool, True = product."""
    if product_mask is not None and product_mask.shape != (image.height, image.width):
        raise ValueError(f"product_mask shape {product_mask.shape} != image size {(image.height, image.width)}")
    rgb, mask = _resize(image, product_mask)
    keep = ~mask
    if not keep.any():
        raise ValueError("the product mask covers the whole image; no background left to compare")
    return np.concatenate([math.sqrt(COLOUR_WEIGHT) * _colour_hist(rgb, keep),
                           math.sqrt(1 - COLOUR_WEIGHT) * _texture_hist(rgb, keep)])


def pbs(image_a: Image.Image, image_b: Image.Image, mask_a: np.ndarray | None = None,
        mask_b: np.ndarray | None = None) -> float:
    """Product background similarity: 0.6 * colour cosine + 0.4 * texture cosine, products masked."""
    return float(background_embedding(image_a, mask_a) @ background_embedding(image_b, mask_b))


class _WordTokenizer:
    """rouge-score's tokenizer interface over :func:`tokenize` (jieba for Chinese, regex words otherwise)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def sacre_bleu(hyps: list[str], refs: list[str], chinese: bool | None = None) -> float:
    """Corpus BLEU-4 by sacrebleu (0-100 scale divided by 100): ``tokenize="zh"`` for Chinese, "13a" otherwise."""
    import sacrebleu

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if chinese is None:
        chinese = any(is_chinese(r) for r in refs)
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh" if chinese else "13a").score / 100)


def rouge_l_f(hyps: list[str], refs: list[str]) -> float:
    """Mean ROUGE-L F1 by rouge-score on :func:`tokenize` words (the same words as ``rouge_l``)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    return float(np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)]))


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the corpus (Li et al. 2016); 0.0 when there are none."""
    total, seen = 0, set()
    for t in texts:
        grams = ngrams(tokenize(t), n)
        total += sum(grams.values())
        seen.update(grams)
    return len(seen) / total if total else 0.0


def history_copy_rate(title: str, history_titles: list[str], n: int = 4) -> float:
    """Share of the title's word n-grams that occur in the user's history titles (1.0 = copied)."""
    grams = ngrams(tokenize(title), n)
    if not grams:
        return 0.0
    hist: set = set()
    for h in history_titles:
        hist.update(ngrams(tokenize(h), n))
    return sum(c for g, c in grams.items() if g in hist) / sum(grams.values())


def style_match(title: str, history_titles: list[str]) -> dict[str, float]:
    """How much a title looks like the user's history titles: relative length gap, capitalised-word
    share gap, punctuation-rate gap, and word overlap (share of the title's words seen in the history)."""
    if not history_titles:
        return {}
    words = tokenize(title)

    def caps(t: str) -> float:
        ws = [w for w in t.split() if w[:1].isalpha()]
        return sum(w[0].isupper() for w in ws) / len(ws) if ws else 0.0

    def punct(t: str) -> float:
        return sum(not c.isalnum() and not c.isspace() for c in t) / max(len(t), 1)

    h_len = float(np.mean([len(tokenize(h)) for h in history_titles]))
    vocab = {w for h in history_titles for w in tokenize(h)}
    return {"length_gap": abs(len(words) - h_len) / max(h_len, 1.0),
            "caps_gap": abs(caps(title) - float(np.mean([caps(h) for h in history_titles]))),
            "punct_gap": abs(punct(title) - float(np.mean([punct(h) for h in history_titles]))),
            "word_overlap": sum(w in vocab for w in words) / len(words) if words else 0.0}


def paired_bootstrap(metric, hyps_a: list[str], hyps_b: list[str], refs: list[str], n: int = 1000,
                     seed: int = 0) -> dict:
    """Paired bootstrap of ``metric(a) - metric(b)`` over the same resampled items (Koehn 2004).

    ``metric(hyps, refs) -> float`` is a corpus metric (e.g. :func:`sacre_bleu`, :func:`rouge_l_f`).
    Returns the observed difference and the 2.5 / 97.5 percentiles of ``n`` resampled differences.
    """
    if not len(hyps_a) == len(hyps_b) == len(refs) or not refs:
        raise ValueError(f"need equal, non-empty lists: {len(hyps_a)}, {len(hyps_b)}, {len(refs)}")
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(refs), len(refs))
        a, b, r = [hyps_a[i] for i in idx], [hyps_b[i] for i in idx], [refs[i] for i in idx]
        diffs.append(metric(a, r) - metric(b, r))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": float(metric(hyps_a, refs) - metric(hyps_b, refs)), "lo": float(lo), "hi": float(hi), "n": n}
