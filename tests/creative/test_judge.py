"""The independent judge: it flags the degenerate titles of the first LM benchmark, passes plain
good titles, and shares no rule with the decoder's constraint."""

import ast
from pathlib import Path

import pytest
import torch

from genads.creative import judge
from genads.creative.judge import CHECKS, judge_title, judge_titles, support

SOURCES_ZH = ["阔腿裤", "纱网", "连衣裙", "宽松", "棉麻", "白色", "牛仔布", "外套", "刺绣", "简约"]
SOURCES_EN = ["VXB", "HATCHBOX", "radius gauge", "Stainless Steel", "Pack of 1000", "Washer-Head", "Pocket Hole Screws"]


@pytest.mark.parametrize(("title", "lang", "check"), [
    ("满满满，满满满，满满满满满", "en", "script"),  # an *English* product's title in the first benchmark
    ("满满满，满满满，满满满满满", "en", "degenerate"),
    ("满满满，满满满，满满满满满", "zh", "degenerate"),
    ("阔腿裤的款式是与", "zh", "incomplete"),
    ("纱网的穿", "zh", "incomplete"),
    ("连衣裙的穿", "zh", "incomplete"),
    ("宽松的棉", "zh", "incomplete"),
    ("This gauge is a", "en", "incomplete"),
    ("A", "en", "incomplete"),
    ("A", "en", "too_short"),
    ("VXB", "en", "too_short"),
    ("HATCHBOX", "en", "too_short"),
    ("", "en", "empty"),
    ("  ，", "zh", "empty"),
    ("Stainless Steel Pocket Hole Screws Stainless Steel Pocket Hole Screws", "en", "degenerate"),
    ("Steel Steel Steel Screws", "en", "degenerate"),
    ("白色外套白色外套", "zh", "degenerate"),
    ("吊带 蕾丝 吊带 穿 吊带 吊带 搭配 吊带 结合 吊带 整体", "zh", "degenerate"),  # the un-tuned Gemma, spaced
    # the un-tuned Gemma, 3-shot (creative_titles_fewshot.json): a last clause that says nothing
    ("蕾丝外套，搭配上地中", "zh", "incomplete"),
    ("阔腿裤的风格是简约的，在搭配上，它", "zh", "incomplete"),
    ("连衣裙的细节处，可采用拼接的款式，让整体造型更加增添了", "zh", "incomplete"),
    ("蕾丝的A字设计，让整体", "zh", "incomplete"),
    ("Screws, Stainless Steel,", "en", "incomplete"),
    ("Titanium Pocket Hole Screws", "en", "unsupported"),
    ("纯棉白色外套", "zh", "unsupported"),
    ("Stainless Steel Pocket Hole Screws", "zh", "script"),
])
def test_the_judge_flags_degenerate_titles(title, lang, check):
    sources = SOURCES_ZH if lang == "zh" else SOURCES_EN
    j = judge_title(title, sources, lang)
    assert check in j.failures and not j.passed


@pytest.mark.parametrize(("title", "lang"), [
    ("Stainless Steel Pocket Hole Screws, Pack of 1000", "en"),
    ("HATCHBOX radius gauges in stainless steel", "en"),  # plural and case differ from the sources
    ("简约白色牛仔布外套，刺绣点缀", "zh"),
    ("宽松阔腿裤，简约白色", "zh"),
    ("简约的白色刺绣外套。", "zh"),
])
def test_good_titles_pass(title, lang):
    sources = [*SOURCES_ZH, "点缀"] if lang == "zh" else SOURCES_EN
    j = judge_title(title, sources, lang)
    assert j.passed, j.failures


def test_support_tokenises_differently_from_the_constraint():
    # the constraint reads "washer-head" as one word; the judge as two pieces, each supported
    assert support("Washer-Head screws", ["Washer Head", "Screw"]) == (0, 3)
    # the judge's Chinese reading is bigram cover: 牛仔 + 外套 both occur in the sources
    assert support("牛仔外套", ["牛仔布", "外套"]) == (0, 4)
    assert support("纯棉外套", ["外套"]) == (2, 4)
    # a function word inside a bigram the sources hold is the word's own character: 条 of 条纹 is no measure word
    assert support("条纹拼接", ["条纹", "拼接"]) == (0, 4)
    assert support("纹拼接", ["条纹", "拼接"]) == (1, 3)
    # a one-character selling point is a whole source word: 裙 of 印花裙; a character only inside a longer point is not
    assert support("印花裙", ["印花", "裙"]) == (0, 3)
    assert support("印花裙", ["印花", "长裙"]) == (1, 3)
    # degree adverbs and modals are grammar, as 很 / 非常 / 能 are
    assert support("比较宽松，能够显瘦", ["宽松", "显瘦"]) == (0, 4)


def test_a_title_that_is_only_the_brand_is_too_short():
    sources = ["Shoreline Marine", "waterproof", "prevents corrosion"]
    assert "too_short" in judge_title("Shoreline Marine", sources, "en", brand="Shoreline Marine").failures
    assert "too_short" in judge_title("Philips Sonicare 1", ["Philips Sonicare", "1 charger"], "en",
                                      brand="Philips Sonicare").failures
    assert judge_title("Shoreline Marine waterproof", sources, "en", brand="Shoreline Marine").passed
    assert judge_title("Shoreline Marine", sources, "en").passed  # without the brand it cannot tell


def test_the_judge_imports_nothing_from_the_decoder():
    tree = ast.parse(Path(judge.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and ("constraint" in m or "lm_titles" in m) for m in imported)


def test_summary_counts_every_check():
    titles = ["Stainless Steel Pocket Hole Screws", "", "This gauge is a", "满满满，满满满"]
    r = judge_titles(titles, [SOURCES_EN] * 4, "en")
    assert r["titles"] == 4 and r["pass_all"] == 0.25
    assert set(r["failures"]) == set(CHECKS) and r["failures"]["empty"] == 1 and r["failures"]["script"] == 1
    assert r["failures"]["incomplete"] == 1
    with pytest.raises(ValueError, match="lang"):
        judge_title("x", [], "fr")
    with pytest.raises(ValueError, match="source lists"):
        judge_titles(["x"], [], "en")
    assert judge_titles(["Shoreline Marine"], [["Shoreline Marine", "waterproof"]], "en",
                        ["Shoreline Marine"])["failures"]["too_short"] == 1


def test_selling_points_joined_are_fully_supported():
    """A title that only says the sources cannot fail support, whatever the tokeniser."""
    for sources, lang in ((SOURCES_EN, "en"), (SOURCES_ZH, "zh")):
        joined = ("，" if lang == "zh" else ", ").join(sources)
        assert judge_title(joined, sources, lang).unsupported == 0


def test_perplexity_prefers_the_text_the_model_learned(tmp_path):
    from genads.creative import lm
    from genads.creative import lm_titles as lt

    torch.manual_seed(0)
    texts = ["Ad title: red cotton shirt"] * 40 + ["Ad title: blue wool coat"] * 2
    backbone = lm.tiny_backbone(tmp_path / "tiny", texts, seed=0, vocab_size=80)
    model, tok = lt.load_model(backbone.path)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids = tok(texts[0] + tok.eos_token, return_tensors="pt")["input_ids"]
    for _ in range(30):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    seen, unseen, empty = judge.perplexity(model, tok, ["red cotton shirt", "blue wool coat", ""])
    assert seen < unseen and empty == float("inf")
