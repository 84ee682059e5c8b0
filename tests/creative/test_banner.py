import json
import re
import warnings
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from genads.creative import banner
from genads.creative.banner import SIZES, Layout, compose, place_product, product_mask
from genads.creative.fixtures import PALETTES, draw_ad, draw_product
from genads.creative.metrics import pbs
from genads.creative.style import Style, extract_style, render_background


def _overlap(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


@pytest.mark.parametrize("size", SIZES)
def test_layout_boxes_inside_and_disjoint(size):
    lay = Layout.for_size(*size)
    boxes = [lay.product, lay.title, lay.cta]
    for b in boxes:
        assert 0 <= b[0] < b[2] <= size[0] and 0 <= b[1] < b[3] <= size[1]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_product_pixels_kept_exact():
    cut = draw_product("speaker", (200, 60, 30), size=200)
    for size in [(1200, 628), (300, 250)]:
        b = compose(cut, "wireless speaker deep bass", Style(texture_strength=0.2), size)
        layer = b.layout["layers"][1]
        x0, y0, x1, y1 = layer["box"]
        placed, _ = place_product(cut, tuple(Layout.for_size(*size).product))
        alpha = np.asarray(placed)[..., 3]
        out = np.asarray(b.png)[y0:y1, x0:x1]
        opaque = alpha == 255
        assert np.array_equal(out[opaque], np.asarray(placed)[..., :3][opaque])
        if layer["scale"] >= 1:  # integer nearest-neighbour enlargement: only the cut-out's own colours
            colours = {tuple(c) for c in np.asarray(cut)[..., :3][np.asarray(cut)[..., 3] == 255]}
            assert {tuple(c) for c in out[opaque]} <= colours
        assert product_mask(b.layout, cut).sum() == (alpha > 0).sum()


def test_exports_are_consistent():
    cut = draw_product("mug", (40, 120, 200))
    b = compose(cut, "ceramic mug dishwasher safe", Style(), (1080, 1080))
    assert b.png.size == (1080, 1080) and b.png.mode == "RGB"
    for layer_id in ("background", "product", "title", "cta"):
        assert f'<g id="{layer_id}"' in b.svg
    root = ElementTree.fromstring(b.svg)  # well-formed XML
    assert [g.get("id") for g in root] == ["background", "product", "title", "cta"]
    title_group = b.svg.split('<g id="title"')[1].split("</g>")[0]
    assert " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", title_group)) == "ceramic mug dishwasher safe"
    assert "Shop now" in b.svg
    assert len(re.findall("data:image/png;base64", b.svg)) == 2
    layout = json.loads(json.dumps(b.layout))
    assert [x["name"] for x in layout["layers"]] == ["background", "product", "title", "cta"]
    assert " ".join(layout["layers"][2]["lines"]) == "ceramic mug dishwasher safe"


def test_chinese_title_and_cta(monkeypatch):
    cut = draw_product("shirt", (240, 240, 240))
    b = compose(cut, "简约白色牛仔外套", Style(), (300, 250))
    assert b.layout["layers"][3]["text"] == "立即购买"
    assert "".join(b.layout["layers"][2]["lines"]) == "简约白色牛仔外套"
    monkeypatch.setattr(banner, "CJK_FONTS", ())
    monkeypatch.setattr(banner.shutil, "which", lambda _: None)
    banner.find_font.cache_clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b = compose(cut, "简约白色牛仔外套", Style(), (300, 250))
    banner.find_font.cache_clear()
    assert any("fonts-wqy-zenhei" in str(x.message) for x in w)
    assert b.png.size == (300, 250)


def test_rejects_non_rgba_cutout():
    with pytest.raises(ValueError, match="RGBA"):
        compose(Image.new("RGB", (10, 10)), "t", Style(), (300, 250))


def test_style_follows_history_palette():
    cut = draw_product("bottle", (30, 30, 30), size=96)
    warm = [draw_ad(cut, PALETTES[0], "stripes") for _ in range(3)]
    cool = [draw_ad(cut, PALETTES[1], "plain") for _ in range(3)]
    s_warm = extract_style([a for a, _ in warm], [m for _, m in warm])
    s_cool = extract_style([a for a, _ in cool], [m for _, m in cool])
    assert s_warm.top[0] > s_warm.top[2] and s_cool.top[2] > s_cool.top[0]
    assert s_warm.texture_strength > s_cool.texture_strength
    target, mask = draw_ad(cut, PALETTES[0], "stripes")
    bg_w, bg_c = render_background(s_warm, (192, 192)), render_background(s_cool, (192, 192))
    assert pbs(bg_w, target, None, mask) > pbs(bg_c, target, None, mask) + 0.2
    assert extract_style([]) == Style()


def test_svg_escapes_text():
    b = compose(draw_product("mug", (10, 10, 10)), 'Salt & "pepper" <mill>', Style(), (300, 250))
    texts = "".join(t.text or "" for t in ElementTree.fromstring(b.svg).iter("{http://www.w3.org/2000/svg}text"))
    assert 'Salt & "pepper" <mill>'.replace(" ", "") in texts.replace(" ", "")
