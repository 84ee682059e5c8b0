"""Every template x size x pattern, short and long titles (English, Chinese): no text leaves its box,
and title/CTA text reach WCAG contrast 4.5 against every pixel behind them."""

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genads.creative.banner import (
    MIN_CONTRAST,
    TEMPLATES,
    Layout,
    compose,
    contrast_ratio,
    fit_text,
    load_font,
    text_card,
)
from genads.creative.style import PATTERNS, Style, render_background

SIZES = ((300, 250), (1200, 628), (1080, 1080), (160, 600), (728, 90))
TITLES = ("Drill", "Cordless 20V Lithium-Ion Drill Driver Kit with Two Batteries, Charger and a Hard Carrying Case "
          "for Woodworking, Metal and Masonry (Supercalifragilisticexpialidociousness Edition)",
          "简约而不简单的牛仔外套，白色的衣身十分百搭，衣身多处有做旧破洞设计，打破单调乏味，增加一丝造型看点")
STYLES = (Style(), Style(top=(20, 30, 80), bottom=(200, 210, 240), accent=(250, 200, 40), texture_strength=0.2),
          Style(top=(128, 128, 128), bottom=(118, 118, 118), accent=(120, 120, 120)))


def _inside(layer: dict) -> None:
    x0, y0, x1, y1 = layer["box"]
    font, _ = load_font(layer["text"], layer["font_size"])
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for i, line in enumerate(layer["lines"]):
        bx0, by0, bx1, by1 = draw.textbbox((x0, y0 + i * layer["font_size"] * 1.2), line, font=font)
        assert bx0 >= x0 - 1 and bx1 <= x1 + 1 and by1 <= y1 + 1, (line, layer["box"], (bx0, by0, bx1, by1))


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("size", SIZES)
def test_text_stays_in_its_box_and_is_readable(template, size):
    cutout = text_card("Product", size=160)
    for k, title in enumerate(TITLES):
        for pattern in PATTERNS:
            style = dataclasses.replace(STYLES[k % len(STYLES)], pattern=pattern)
            banner = compose(cutout, title, style, size, template=template)
            assert banner.png.size == size
            _, _, t, cta = banner.layout["layers"]
            _inside(t)
            behind = np.asarray(render_background(style, size).crop(t["box"])).reshape(-1, 3)
            if t["scrim"] is not None:
                behind = np.asarray(t["scrim"])[None]
            assert contrast_ratio(behind, t["colour"]).min() >= MIN_CONTRAST
            assert contrast_ratio(cta["fill"], cta["colour"]) >= MIN_CONTRAST
            assert ('id="scrim"' in banner.svg) == (t["scrim"] is not None) and 'id="title"' in banner.svg


def test_fit_text_ellipsises_what_cannot_fit():
    _, _, lines, size = fit_text("word " * 400, (0, 0, 60, 20), max_size=20)
    assert size == 8 and lines[-1].endswith("…") and len(lines) * size * 1.2 <= 20


def test_templates_put_text_on_the_named_side():
    left, right = Layout.for_size(1200, 628, "text-left"), Layout.for_size(1200, 628, "text-right")
    assert left.title[2] <= left.product[0] and right.title[0] >= right.product[2]
    with pytest.raises(ValueError, match="template"):
        Layout.for_size(300, 250, "diagonal")


def test_patterns_differ_and_are_deterministic():
    imgs = {p: np.asarray(render_background(Style(pattern=p, texture_strength=0.2), (120, 80))) for p in PATTERNS}
    assert all(not np.array_equal(imgs["plain"], imgs[p]) for p in PATTERNS if p != "plain")
    assert np.array_equal(imgs["shapes"], np.asarray(render_background(Style(pattern="shapes", texture_strength=0.2), (120, 80))))
    with pytest.raises(ValueError, match="pattern"):
        Style(pattern="zigzag")
