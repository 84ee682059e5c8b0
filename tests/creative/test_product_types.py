"""The product-type point: lexicon head nouns from catalogue titles, the noun phrase from a description."""

import pytest

from genads.creative.product_types import description_type, stem, title_head, type_lexicon
from genads.creative.selling_points import extract_selling_points

# real rows of ../shared/data/amazon18/Industrial_and_Scientific.item.json (ids 1, 10, 888), descriptions cut
STAPLES = ("Heavy-duty staples are ideal for jobs such as insulation, carpet underlaying and roofing felt. Staple "
           "Type: Staple Gun; For Use With: Stanley Bostitch SharpShooter Tacker (TR150); Leg Length: 1/2 in; Sheet "
           "Capacity: N/A. For heavy duty stapling jobs such as insulation, carpet under laying and roofing felt.")
FOIL = ("Scotch 3311 foil tape provides quick, hassle-free use and top performance results every time. Specially "
        "designed for sealing joints or seams against harmful moisture or vapor on foil jacketing insulation.")
FLASKS = ("Get all 5 sizes of Erlenmeyer flasks for one low price! Perfect for stocking your lab or shop. These flasks "
          "are made of laboratory-grade Borosilicate glass and may be heated over flame.")
LEXICON = frozenset(["staple", "tape", "flask", "glass"])


def test_stem_drops_plural_endings_only():
    assert [stem(w) for w in ("Flasks", "batteries", "boxes", "glass", "tape", "bus")] == \
        ["flask", "battery", "box", "glass", "tape", "bus"]


def test_title_head_is_the_last_word_of_the_first_noun_phrase():
    assert title_head("3M Scotch Foil Tape, 2-Inch by 50-Yard", "3M") == "tape"
    assert title_head("Stanley TRA708T Sharpshooter 1/2-Inch Leg Length Staples, Steel (1000 Count)", "Stanley") == \
        "staple"
    assert title_head("12345", "") is None


def test_lexicon_keeps_frequent_heads_and_drops_colours_and_packages():
    titles = [("Acme Foil Tape", "Acme"), ("Duct Tape, Grey", ""), ("Vinyl Tape", ""), ("Acme Red", "Acme"),
              ("Shirt Red", ""), ("Cap, Red", ""), ("Erlenmeyer Flask", "")]
    assert type_lexicon(titles, min_count=3) == frozenset(["tape"])  # "red" thrice, but a colour
    assert "flask" in type_lexicon(titles, min_count=1)
    with pytest.raises(ValueError, match="min_count"):
        type_lexicon(titles, min_count=0)


def test_description_type_on_real_rows():
    assert description_type(STAPLES, "Stanley", LEXICON) == "Heavy-duty staples"  # "staple(s)" said most
    assert description_type(FOIL, "3M", LEXICON) == "foil tape"  # the number "3311" stops the modifiers
    assert description_type(FLASKS, "SEOH", LEXICON) == "Erlenmeyer flasks"  # flask (2) beats glass (1)
    assert description_type(FOIL, "3M", frozenset(["flask"])) is None
    assert description_type(FOIL, "3M", frozenset()) is None
    assert description_type("Acme tape holds.", "Acme", frozenset(["tape"])) == "tape"  # brand words never modify


def test_the_type_point_comes_first_after_the_brand_and_wins_over_a_type_pair():
    plain = [p.text for p in extract_selling_points(description=STAPLES, brand="Stanley")]
    typed = extract_selling_points(description=STAPLES, brand="Stanley", type_lexicon=LEXICON)
    assert "Staple Gun" in plain and "Heavy-duty staples" not in plain
    assert [(p.text, p.kind) for p in typed[:2]] == [("Stanley", "brand"), ("Heavy-duty staples", "type")]
    assert "Staple Gun" not in [p.text for p in typed]  # one type point per product
