from hypothesis import given
from hypothesis import strategies as st

from genads.creative.text import is_chinese, join_words, restore_case, selling_point_vocab, tokenize


def test_english_regex_tokeniser():
    assert tokenize("Men's Wi-Fi router, 2.4GHz -- FAST!") == ["men's", "wi-fi", "router", "2.4ghz", "fast"]


def test_chinese_uses_jieba():
    words = tokenize("简约的牛仔外套，白色。")
    assert "牛仔" in words and "外套" in words and "白色" in words
    assert "，" not in words and "。" not in words
    assert is_chinese("白色 shirt") and not is_chinese("white shirt")


def test_join_words():
    assert join_words(["白色", "外套", "usb", "cable"]) == "白色外套 usb cable"


def test_selling_point_vocab():
    assert selling_point_vocab(["light sole", "waterproof"]) == {"light", "sole", "waterproof"}


@given(st.lists(st.sampled_from(["red", "shoe", "light", "sole", "2.4ghz", "wi-fi"]), max_size=8))
def test_join_then_tokenize_is_identity_for_english(words):
    assert tokenize(join_words(words)) == words


def test_restore_case():
    assert restore_case(["usb-c", "loctite", "epoxy", "白色"], ["Loctite Epoxy", "USB-C cable"]) == ["USB-C", "Loctite", "Epoxy", "白色"]
