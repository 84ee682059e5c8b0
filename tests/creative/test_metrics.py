import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from genads.creative.metrics import (
    background_embedding,
    corpus_bleu,
    exaggeration_hits,
    factuality,
    is_copy,
    lcs_length,
    pbs,
    repetition_rate,
    rouge_l,
    sentence_bleu,
    text_metrics,
)

words = st.lists(st.sampled_from(list("abcdef")), min_size=1, max_size=12)


def test_bleu_known_values():
    hyp = ["the", "cat", "is", "on", "the", "mat"]
    assert corpus_bleu([hyp], [[hyp]]) == pytest.approx(1.0)
    # Papineni's example: unigram precision 2/7 clipped; no bigram match -> 0
    assert corpus_bleu(["the"] * 7 and [["the"] * 7], [[["the", "cat", "is", "on", "the", "mat"]]]) == 0.0
    # brevity penalty: 4 of 6 reference words, all n-grams match
    short = ["the", "cat", "is", "on"]
    ref = ["the", "cat", "is", "on", "the", "mat"]
    assert corpus_bleu([short], [[ref]]) == pytest.approx(np.exp(1 - 6 / 4))
    assert sentence_bleu(short, [ref]) == pytest.approx(np.exp(1 - 6 / 4))


def test_rouge_l_known_value():
    # LCS("a b c d", "a c x d") = 3 -> P = R = 3/4
    assert lcs_length(list("abcd"), list("acxd")) == 3
    assert rouge_l(list("abcd"), list("acxd")) == pytest.approx(0.75)
    assert rouge_l(["x"], ["y"]) == 0.0


@given(words, words)
def test_text_metrics_bounds(hyp, ref):
    assert 0.0 <= rouge_l(hyp, ref) <= 1.0
    assert 0.0 <= sentence_bleu(hyp, [ref]) <= 1.0
    assert 0.0 <= repetition_rate(hyp) < 1.0
    assert rouge_l(hyp, hyp) == pytest.approx(1.0)


def test_factuality_repetition_copy_exaggeration():
    sps = ["waterproof shell", "light"]
    assert factuality(["light", "shell"], sps) == 1.0
    assert factuality(["best", "light"], sps) == 0.5
    assert repetition_rate(["light", "light", "shell", "shell"]) == 0.5
    assert is_copy(["waterproof", "shell", "light"], sps) and not is_copy(["light", "waterproof", "shell"], sps)
    assert exaggeration_hits("The best, 100% guaranteed jacket") == 3
    assert exaggeration_hits("最好的顶级外套") == 2
    m = text_metrics("light waterproof shell", sps, reference="light waterproof shell")
    assert m["factuality"] == 1.0 and m["bleu"] == pytest.approx(1.0) and m["copy"] == 0.0


def _img(colour, size=(96, 64)):
    return Image.new("RGB", size, colour)


def test_pbs_ignores_the_masked_product():
    a = _img((200, 40, 40))
    b = a.copy()
    b.paste((0, 220, 0), (30, 20, 60, 44))  # a green product on the same background
    mask = np.zeros((64, 96), dtype=bool)
    mask[20:44, 30:60] = True
    assert pbs(a, b, None, mask) == pytest.approx(1.0)
    assert pbs(a, b) < 0.99
    assert pbs(a, _img((40, 40, 200))) < 0.6


def test_pbs_sees_texture():
    rng = np.random.default_rng(0)
    flat = _img((120, 120, 120))
    noisy = Image.fromarray(np.clip(120 + rng.normal(0, 40, (64, 96, 3)), 0, 255).astype(np.uint8))
    assert pbs(flat, noisy) < pbs(flat, flat) - 0.2
    assert background_embedding(flat).shape == (72 + 160,)


def test_pbs_rejects_bad_masks():
    with pytest.raises(ValueError, match="shape"):
        pbs(_img((1, 2, 3)), _img((1, 2, 3)), np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="whole image"):
        background_embedding(_img((1, 2, 3)), np.ones((64, 96), dtype=bool))


def test_rouge_l_matches_rouge_score_to_1e6():
    from genads.creative.metrics import rouge_l_f
    from genads.creative.text import tokenize

    pairs = [("Cordless drill with 20V battery", "20V cordless drill, battery included"),
             ("白色的牛仔外套，简约刺绣", "简约而不简单的牛仔外套，白色的衣身十分百搭"),
             ("red shirt", "blue coat")]
    for h, r in pairs:
        assert abs(rouge_l_f([h], [r]) - rouge_l(tokenize(h), tokenize(r))) < 1e-6


def test_sacre_bleu_is_one_for_identical_and_zero_for_disjoint():
    from genads.creative.metrics import sacre_bleu

    refs = ["the quick brown fox jumps over the dog", "简约而不简单的牛仔外套，白色的衣身十分百搭"]
    assert sacre_bleu(refs[:1], refs[:1]) == pytest.approx(1.0)
    assert sacre_bleu(refs[1:], refs[1:]) == pytest.approx(1.0)
    assert sacre_bleu(["zzz yyy xxx www"], refs[:1]) == 0.0
    with pytest.raises(ValueError):
        sacre_bleu(["a"], [])


def test_distinct_history_copy_and_style():
    from genads.creative.metrics import distinct_n, history_copy_rate, style_match

    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert history_copy_rate("red cotton slim shirt", ["a red cotton slim shirt here"]) == 1.0
    assert history_copy_rate("red cotton slim shirt", ["blue wool coat"]) == 0.0
    s = style_match("Red Cotton Shirt", ["Blue Wool Coat", "Red Linen Dress"])
    assert s["caps_gap"] == 0.0 and 0 < s["word_overlap"] < 1


def test_paired_bootstrap_separates_a_better_system_from_noise():
    from genads.creative.metrics import paired_bootstrap, rouge_l_f

    refs = [f"red cotton shirt number {i}" for i in range(30)]
    good = [f"red cotton shirt {i}" for i in range(30)]
    bad = ["blue wool coat"] * 30
    r = paired_bootstrap(rouge_l_f, good, bad, refs, n=200, seed=0)
    assert r["lo"] > 0 and r["lo"] <= r["diff"] <= r["hi"]
    same = paired_bootstrap(rouge_l_f, good, good, refs, n=50, seed=0)
    assert same["diff"] == same["lo"] == same["hi"] == 0.0
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(rouge_l_f, good, bad[:3], refs)
