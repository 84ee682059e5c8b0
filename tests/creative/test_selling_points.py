"""Selling points are short attribute phrases, never sentence fragments: on fixed real rows
(tests/fixtures/creative: 8 Amazon 2018 Industrial & Scientific items, 5 AdvertiseGen lines cut short)."""

import json
from pathlib import Path

import pytest

from genads.creative.records import parse_attributes
from genads.creative.selling_points import (
    KIND_CAPS,
    clean_text,
    derive_selling_points,
    extract_selling_points,
    phrase_problems,
)
from genads.creative.title_data import _description, amazon_products
from genads.creative.title_targets import strip_model_numbers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "creative"
ITEMS = json.loads((FIXTURES / "amazon18_items.json").read_text(encoding="utf-8"))
ROWS = [json.loads(line) for line in (FIXTURES / "advertisegen_rows.jsonl").read_text(encoding="utf-8").splitlines()]


def _points(item_id: str) -> dict[str, list[str]]:
    item = ITEMS[item_id]
    out: dict[str, list[str]] = {}
    for p in extract_selling_points(description=_description(item["description"]), brand=item["brand"]):
        out.setdefault(p.kind, []).append(p.text)
    return out


def test_glued_sentences_are_split_again():
    assert clean_text("the bottom radius of the gaugeThen use the") == "the bottom radius of the gauge. Then use the"
    assert clean_text("BRAND STORYIn 1953, in a lab") == "BRAND STORY. In 1953, in a lab"
    assert clean_text("Heavy Duty Wt. 12 lbs.Need a Step-Up?") == "Heavy Duty Wt. 12 lbs. Need a Step-Up?"
    assert clean_text("Tape &ndash; 2.5 Inch") == "Tape – 2.5 Inch"


@pytest.mark.parametrize("fragment", ["the gaugeThen use", "BRAND STORYIn 1953,", 'inch * Item', "This gauge is a",
                                      "and it is perfect", "which is especially critical", "It is a division",
                                      "Amazon.com This superior quality", "BRAND STORY", "STAPLE STNLSS1/2 NARROW"])
def test_fragments_are_not_phrases(fragment):
    assert phrase_problems(fragment)


@pytest.mark.parametrize("phrase", ["Stainless Steel", "reduces staple breakage", "for roofing felt", '2-1/2" diameter',
                                    "Pack of 1000", "heavy-duty", "portable wheel step", "白色牛仔外套"])
def test_phrases_pass(phrase):
    assert phrase_problems(phrase) == []


def test_real_descriptions_give_typed_phrases():
    """The rows whose old selling points were fragments ("the gaugeThen use", "BRAND STORYIn 1953,")."""
    assert _points("3149") == {"brand": ["amplified_parts"], "size": ['7.25"', '9.5"'], "use": ["for bridge saddles"]}
    kreg = _points("3")
    assert kreg["brand"] == ["Kreg"] and kreg["size"] == ["1-1/4-Inch", "500-Pack"]
    assert "prevents overdriving" in kreg["benefit"]
    stanley = _points("1")
    assert stanley["type"] == ["Staple Gun"]  # from "Staple Type: Staple Gun"
    assert "Heavy-duty" in stanley["benefit"]
    step = _points("2434")
    assert step["material"] == ["steel"] and "12 lbs" in step["size"]
    wd40 = _points("628")
    assert not any("STORY" in t or "USE" in t for ts in wd40.values() for t in ts)


def test_every_point_of_every_fixture_row_is_a_phrase():
    for item in ITEMS.values():
        for source in ({"description": _description(item["description"])}, {"title": item["title"]}):
            points = extract_selling_points(**source, brand=item["brand"])
            assert points, item["title"]
            for p in points:
                if p.kind != "brand":
                    assert phrase_problems(p.text) == [], (p, item["title"])
                    assert len(p.text.split()) <= 5 and "*" not in p.text and ":" not in p.text
            kinds = [p.kind for p in points]
            assert all(kinds.count(k) <= KIND_CAPS[k] for k in kinds)


def test_titles_are_cut_into_noun_phrases():
    item = ITEMS["3"]
    points = extract_selling_points(title=item["title"], brand=item["brand"])
    assert [(p.text, p.kind) for p in points] == [("Kreg", "brand"), ("Coarse Pocket Hole Screws", "type"),
                                                  ("1-1/4-Inch", "size"), ("500-Pack", "size"), ("Washer-Head", "feature")]
    assert derive_selling_points(ITEMS["7"]["title"]) == ["UltraSource Hamburger Patty Paper", '5.5" x 5.5"', "Pack of 1000"]


def test_chinese_attributes_and_copy():
    attrs = parse_attributes(ROWS[0]["content"])
    points = extract_selling_points(attributes=attrs, max_points=10)
    assert [p.text for p in points] == ["外套", "牛仔布", "白色", "简约", "刺绣", "破洞"]  # 上衣 (coarse) under 外套
    assert points[0].kind == "type" and points[1].kind == "material"
    dress = [p.text for p in extract_selling_points(attributes=parse_attributes(ROWS[1]["content"]), max_points=12)]
    assert "裙" not in dress and "连衣裙" in dress
    copy = [p.text for p in extract_selling_points(description=ROWS[0]["summary"])]
    assert "牛仔外套" in copy and all(2 <= len(t) <= 10 and "，" not in t for t in copy)
    assert derive_selling_points("白色牛仔外套，简约百搭。刺绣") == ["白色牛仔外套", "简约百搭", "刺绣"]


def test_amazon_products_use_description_and_brand_only():
    """The English benchmark's selling points never come from the title (the title is the target)."""
    products = amazon_products(FIXTURES / "amazon18_items.json")
    assert len(products) == len(ITEMS)
    for iid, p in products.items():
        item = ITEMS[iid]
        expected = extract_selling_points(description=_description(item["description"]), brand=item["brand"], max_points=7)
        assert list(p.selling_points) == [e.text for e in expected][:7]
        assert p.target == strip_model_numbers(item["title"], item["brand"])
    raw = amazon_products(FIXTURES / "amazon18_items.json", strip_models=False)
    assert all(p.target == ITEMS[iid]["title"] for iid, p in raw.items())


def test_a_type_lexicon_adds_type_points_but_never_items():
    lexicon = frozenset(["staple", "screw", "paper", "tape", "cutter"])
    plain = amazon_products(FIXTURES / "amazon18_items.json")
    typed = amazon_products(FIXTURES / "amazon18_items.json", type_lexicon=lexicon)
    assert set(typed) == set(plain)
    assert typed["1"].selling_points[:2] == ("Stanley", "Heavy-duty staples")
    assert "Waxed patty paper" in typed["7"].selling_points and "Waxed patty paper" not in plain["7"].selling_points
    assert all(p.target == plain[iid].target for iid, p in typed.items())


def test_limits_and_errors():
    assert len(derive_selling_points("red shoe, blue coat, warm wool, soft cotton, slim fit", max_points=3)) == 3
    with pytest.raises(ValueError, match="max_points"):
        derive_selling_points("x", max_points=0)
    with pytest.raises(ValueError, match="max_words"):
        extract_selling_points(title="x", max_words=0)
