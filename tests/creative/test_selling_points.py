import pytest

from genads.creative.selling_points import derive_selling_points


def test_english_phrases():
    sps = derive_selling_points("Scotch Foil Tape, 2-Inch by 50-Yard. Ideal for sealing joints and seams; 3/4 in. steel")
    # split at punctuation and connectives; in-word hyphens kept; bare numbers and stop words dropped
    assert sps == ["Scotch Foil Tape", "2-Inch", "50-Yard", "sealing joints", "seams", "steel"]


def test_limits_and_duplicates():
    sps = derive_selling_points("red shoe, shoe red, a very long clause that has far too many words, grip, the, 42",
                                max_points=5, max_words=3)
    assert sps == ["red shoe", "grip"]
    assert len(derive_selling_points("a, b, c, d, e, f, g", max_points=3)) == 3
    with pytest.raises(ValueError, match="max_points"):
        derive_selling_points("x", max_points=0)


def test_chinese_split_at_punctuation():
    assert derive_selling_points("白色牛仔外套，简约百搭。刺绣") == ["白色牛仔外套", "简约百搭", "刺绣"]
