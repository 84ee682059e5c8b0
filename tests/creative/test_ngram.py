import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.creative.metrics import factuality, repetition_rate
from genads.creative.ngram import BaselineConfig, BigramLM, NgramTitleGenerator, project, selling_point_units

SPS = ["waterproof shell", "light", "red", "hiking jacket"]


def test_project_keeps_vocab_words_in_order():
    assert project(["the", "red", "light", "red", "jacket"], {"red", "jacket", "light"}) == ["red", "light", "jacket"]


def test_bigram_lm_is_a_distribution():
    lm = BigramLM([["a", "b"], ["a", "c"]])
    total = sum(lm.prob("a", w) for w in ["a", "b", "c", "</s>"])
    assert total == pytest.approx(1.0, abs=0.05)  # unseen words share the add-one mass
    assert lm.prob("a", "b") > lm.prob("a", "a")


def test_units_drop_repeated_words():
    assert selling_point_units(["red shell", "red", "shell hood"]) == [["red", "shell"], ["hood"]]


def test_history_style_sets_the_order():
    gen = NgramTitleGenerator(BaselineConfig(threshold=0.3))
    colour_first = gen(SPS, history_titles=["Red light hiking jacket", "Red waterproof shell coat"] * 3)
    jacket_first = gen(SPS, history_titles=["Hiking jacket light and red", "Hiking jacket: waterproof shell"] * 3)
    assert colour_first[0] == "red"
    assert jacket_first[:2] == ["hiking", "jacket"]


def test_background_model_selects_what_copy_says():
    corpus_sps = [["red", "cotton", "shirt"]] * 20
    refs = ["a red shirt for you"] * 20
    gen = NgramTitleGenerator.fit(corpus_sps, refs)
    assert gen(["red", "cotton", "shirt"]) == ["red", "shirt"]


@settings(max_examples=30, deadline=None)
@given(sps=st.lists(st.sampled_from(["red", "light sole", "waterproof shell", "trail shoe", "grip", "red sole"]),
                    min_size=1, max_size=6),
       hist=st.lists(st.sampled_from(["Red trail shoe", "grip sole shoe", "light red", "mug"]), max_size=5),
       max_words=st.integers(1, 6))
def test_titles_are_factual_unrepeated_and_short(sps, hist, max_words):
    words = NgramTitleGenerator(BaselineConfig(max_words=max_words))(sps, history_titles=hist)
    assert 1 <= len(words) <= max_words
    assert factuality(words, sps) == 1.0
    assert repetition_rate(words) == 0.0
