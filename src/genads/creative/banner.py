"""Banner composition: styled background, exact product cut-out, title and call-to-action layers.

One :class:`Layout` per size places the layers (landscape: product right, text left; square or
near-square: product on top, text below). The product cut-out is scaled once to fit its box and
alpha-composited, so every opaque pixel of the (scaled) cut-out appears unchanged in the PNG;
at scale 1 these are the cut-out's own pixels. The same layers are written as an SVG (one group
per layer: background as an embedded PNG, product as an embedded PNG, title and CTA as live
text) and as layout JSON (boxes, colours, font, text).

Fonts: Chinese needs a CJK font. :func:`find_font` looks in the usual places and asks fontconfig
(``fc-list :lang=zh``); Debian/Ubuntu ship one in ``fonts-wqy-zenhei`` or ``fonts-noto-cjk``.
Without one, Chinese text is drawn with the default font (boxes) and a warning says what to install.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from genads.creative.style import Style, contrast_text_colour, render_background
from genads.creative.text import is_chinese, jieba_words

SIZES: tuple[tuple[int, int], ...] = ((1200, 628), (1080, 1080), (300, 250))
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc")
LATIN_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NO_CJK_FONT = ("no CJK font found (looked in {paths} and `fc-list :lang=zh`); Chinese text will render as boxes. "
               "Install one, e.g. `apt-get install fonts-wqy-zenhei` (or fonts-noto-cjk).")
Box = tuple[int, int, int, int]


class BackgroundRenderer(Protocol):
    def __call__(self, style: Style, size: tuple[int, int], product: Image.Image,
                 position: tuple[int, int]) -> Image.Image:
        """An RGB background of ``size`` (W, H) for the placed RGBA ``product`` at ``position`` (top-left)."""
        ...


@lru_cache(maxsize=4)
def find_font(chinese: bool) -> Path | None:
    """A TrueType font path that can draw Chinese (``chinese``) or Latin text, or None."""
    for p in CJK_FONTS if chinese else (*LATIN_FONTS, *CJK_FONTS):
        if Path(p).exists():
            return Path(p)
    if chinese and shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False).stdout
        files = sorted(line.split(":")[0].strip() for line in out.splitlines() if line.strip())
        return Path(files[0]) if files else None
    return None


def load_font(text: str, size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, str]:
    """(font, family name for SVG); warns once per call when Chinese text has no CJK font."""
    chinese = is_chinese(text)
    path = find_font(chinese)
    if path is None:
        if chinese:
            warnings.warn(NO_CJK_FONT.format(paths=", ".join(CJK_FONTS)), RuntimeWarning, stacklevel=2)
        return ImageFont.load_default(size=size), "sans-serif"
    font = ImageFont.truetype(str(path), size=size)
    return font, font.getname()[0]


TEMPLATES: tuple[str, ...] = ("auto", "text-left", "text-right", "centre")
"""Layout templates: text left of the product, right of it, or product above centred text; "auto"
picks text-left for landscape sizes (w/h >= 1.4) and centre otherwise (square, skyscraper)."""


@dataclass(frozen=True)
class Layout:
    size: tuple[int, int]
    product: Box
    title: Box
    cta: Box

    @classmethod
    def for_size(cls, w: int, h: int, template: str = "auto") -> Layout:
        if template not in TEMPLATES:
            raise ValueError(f"template={template!r} must be one of {TEMPLATES}")
        m = round(0.05 * min(w, h))
        if template == "auto":
            template = "text-left" if w / h >= 1.4 else "centre"
        if template in ("text-left", "text-right"):
            split = round(w * 0.55)
            if template == "text-left":
                return cls((w, h), (split, m, w - m, h - m), (m, m, split - m, round(h * 0.68)),
                           (m, round(h * 0.74), m + round(w * 0.25), h - m))
            text_x = w - split
            return cls((w, h), (m, m, text_x, h - m), (text_x + m, m, w - m, round(h * 0.68)),
                       (text_x + m, round(h * 0.74), min(w - m, text_x + m + round(w * 0.25)), h - m))
        ph = round(h * 0.58)
        return cls((w, h), (m, m, w - m, ph), (m, ph + m // 2, w - m, round(h * 0.84)),
                   (round(w * 0.3), round(h * 0.86), round(w * 0.7), h - m // 2))


def relative_luminance(rgb: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """WCAG 2.x relative luminance of sRGB colour(s) in 0-255 (last axis = RGB)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def contrast_ratio(a, b) -> np.ndarray:
    """WCAG contrast ratio (1-21) between colours ``a`` and ``b`` (broadcast over leading axes)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


MIN_CONTRAST = 4.5
"""WCAG AA for normal text."""


@dataclass
class Banner:
    png: Image.Image
    svg: str
    layout: dict


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy line breaking at spaces (Latin) or between jieba words (Chinese); a unit wider than the
    line on its own is broken between characters."""
    units = jieba_words(text) if is_chinese(text) else text.split()
    sep = "" if is_chinese(text) else " "
    pieces: list[str] = []
    for u in units:
        if font.getlength(u) <= width:
            pieces.append(u)
            continue
        cur = ""
        for ch in u:
            if cur and font.getlength(cur + ch) > width:
                pieces.append(cur)
                cur = ch
            else:
                cur += ch
        pieces.append(cur)
    lines, cur = [], ""
    for u in pieces:
        trial = (cur + sep + u) if cur else u
        if cur and font.getlength(trial) > width:
            lines.append(cur)
            cur = u.lstrip()
        else:
            cur = trial
    return [*lines, cur] if cur else lines


LINE_HEIGHT = 1.2


def _fits(lines: list[str], font: ImageFont.ImageFont, size: int, w: int, h: int) -> bool:
    return len(lines) * size * LINE_HEIGHT <= h and all(font.getlength(x) <= w for x in lines)


def fit_text(text: str, box: Box, max_size: int) -> tuple[ImageFont.ImageFont, str, list[str], int]:
    """The largest font size (down to 8 px) at which ``text`` wraps inside ``box``. When even 8 px
    does not fit, the lines that fit are kept and the last one ends in an ellipsis: text never
    leaves its box."""
    w, h = box[2] - box[0], box[3] - box[1]
    size = max_size
    while True:
        font, family = load_font(text, size)
        lines = _wrap(text, font, w)
        if _fits(lines, font, size, w, h):
            return font, family, lines, size
        if size <= 8:
            break
        size = max(8, int(size * 0.9))
    keep = max(1, int(h // (size * LINE_HEIGHT)))
    lines = lines[:keep]
    last = lines[-1]
    while last and font.getlength(last + "…") > w:
        last = last[:-1]
    lines[-1] = last + "…"
    return font, family, lines, size


def place_product(cutout: Image.Image, box: Box) -> tuple[Image.Image, tuple[int, int]]:
    """Fit the RGBA cut-out into ``box``, centred; returns (placed cut-out, top-left).

    Too large: scaled down (Lanczos). Smaller than half the box: enlarged by the largest integer
    factor that fits, with nearest-neighbour, so each cut-out pixel becomes a block of identical
    pixels and no new colour appears. Otherwise kept as is.
    """
    bw, bh = box[2] - box[0], box[3] - box[1]
    scale = min(bw / cutout.width, bh / cutout.height)
    if scale < 1.0:
        img = cutout.resize((max(1, round(cutout.width * scale)), max(1, round(cutout.height * scale))), Image.LANCZOS)
    elif int(scale) >= 2:
        img = cutout.resize((cutout.width * int(scale), cutout.height * int(scale)), Image.NEAREST)
    else:
        img = cutout
    return img, (box[0] + (bw - img.width) // 2, box[1] + (bh - img.height) // 2)


def png_base64(img: Image.Image) -> str:
    """PNG bytes of ``img``, base64 (for SVG embedding and HTML reports)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _readable(bg: Image.Image, box: Box, preferred: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple | None]:
    """(text colour, scrim colour or None) so that the text reaches MIN_CONTRAST against *every*
    background pixel of ``box`` (the worst pixel, not the mean): near-black or white if one of them
    does, else a scrim (an opaque rounded panel) in the background's mean colour pushed light or dark."""
    px = np.asarray(bg.crop(box)).reshape(-1, 3)
    for colour in (preferred, (20, 20, 20), (255, 255, 255)):
        if contrast_ratio(px, colour).min() >= MIN_CONTRAST:
            return colour, None
    mean = px.mean(0)
    text = contrast_text_colour(tuple(int(v) for v in mean))
    target = np.array([250, 250, 250]) if text == (20, 20, 20) else np.array([24, 24, 28])
    for t in np.linspace(0.5, 1.0, 6):
        scrim = tuple(int(v) for v in np.round((1 - t) * mean + t * target))
        if contrast_ratio(scrim, text) >= MIN_CONTRAST:
            return text, scrim
    return text, tuple(int(v) for v in target)


def compose(cutout: Image.Image, title: str, style: Style, size: tuple[int, int], cta: str | None = None,
            background: BackgroundRenderer | None = None, template: str = "auto") -> Banner:
    """Compose one banner of ``size`` (W, H) with a layout ``template`` (TEMPLATES); ``background``
    defaults to the style's own (:func:`render_background`); e.g.
    :class:`genads.creative.inpaint.InpaintBackground` paints one. Title and CTA text always fit their
    boxes (:func:`fit_text`) and reach WCAG contrast 4.5 (:func:`_readable`)."""
    if cutout.mode != "RGBA":
        raise ValueError(f"product cut-out must be RGBA (transparent background), got mode {cutout.mode}")
    cta = cta or ("立即购买" if is_chinese(title) else "Shop now")
    lay = Layout.for_size(*size, template=template)
    prod, (px, py) = place_product(cutout, lay.product)
    bg = render_background(style, size) if background is None else background(style, size, prod, (px, py)).convert("RGB")
    if bg.size != tuple(size):
        raise ValueError(f"background renderer returned size {bg.size}, expected {tuple(size)}")
    canvas = bg.convert("RGBA")
    canvas.alpha_composite(prod, (px, py))
    draw = ImageDraw.Draw(canvas)
    tb = lay.title
    patch = np.asarray(bg.crop(tb)).reshape(-1, 3).mean(0)
    text_rgb, scrim = _readable(bg, tb, contrast_text_colour(tuple(int(v) for v in patch)))
    if scrim is not None:
        pad = max(2, (tb[3] - tb[1]) // 20)
        draw.rounded_rectangle((tb[0] - pad, tb[1] - pad, tb[2] + pad, tb[3] + pad), radius=pad * 2, fill=scrim)
    font, family, lines, fsize = fit_text(title, tb, max_size=max(10, (tb[3] - tb[1]) // 2))
    for i, line in enumerate(lines):
        draw.text((tb[0], tb[1] + i * fsize * LINE_HEIGHT), line, font=font, fill=text_rgb)
    cb = lay.cta
    draw.rounded_rectangle(cb, radius=(cb[3] - cb[1]) // 3, fill=style.accent)
    cta_rgb = contrast_text_colour(style.accent)
    if contrast_ratio(style.accent, cta_rgb) < MIN_CONTRAST:  # a mid-tone accent: darken the button
        accent = tuple(int(v * 0.55) for v in style.accent)
        draw.rounded_rectangle(cb, radius=(cb[3] - cb[1]) // 3, fill=accent)
        cta_rgb = (255, 255, 255)
    else:
        accent = style.accent
    cfont, cfamily, _, csize = fit_text(cta, (0, 0, int((cb[2] - cb[0]) * 0.8), int((cb[3] - cb[1]) * 0.6)),
                                        max_size=(cb[3] - cb[1]) // 2)
    draw.text(((cb[0] + cb[2]) / 2, (cb[1] + cb[3]) / 2), cta, font=cfont, fill=cta_rgb, anchor="mm")
    layout = {"size": list(size), "style": style.__dict__ | {},
              "layers": [
                  {"name": "background", "type": "image", "box": [0, 0, *size]},
                  {"name": "product", "type": "image", "box": [px, py, px + prod.width, py + prod.height],
                   "scale": prod.width / cutout.width},
                  {"name": "title", "type": "text", "box": list(tb), "text": title, "lines": lines,
                   "font_family": family, "font_size": fsize, "colour": list(text_rgb),
                   "scrim": list(scrim) if scrim else None},
                  {"name": "cta", "type": "button", "box": list(cb), "text": cta, "font_family": cfamily,
                   "font_size": csize, "fill": list(accent), "colour": list(cta_rgb)}],
              "template": template}
    svg = to_svg(layout, bg, prod)
    return Banner(canvas.convert("RGB"), svg, layout)


def _families(family: str) -> str:
    return f"'{family}', sans-serif" if family != "sans-serif" else family


def to_svg(layout: dict, background: Image.Image, product: Image.Image) -> str:
    """The layers as SVG groups: images embedded as PNG, text kept as editable text."""
    w, h = layout["size"]
    _, prod, title, cta = layout["layers"]
    x0, y0, x1, y1 = prod["box"]
    rgb = "rgb({},{},{})".format
    tx0, ty0, tx1, ty1 = title["box"]
    pad = max(2, (ty1 - ty0) // 20)
    scrim = (f'<g id="scrim"><rect x="{tx0 - pad}" y="{ty0 - pad}" width="{tx1 - tx0 + 2 * pad}" height="{ty1 - ty0 + 2 * pad}" '
             f'rx="{2 * pad}" fill="{rgb(*title["scrim"])}"/></g>') if title.get("scrim") else ""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f'<g id="background"><image x="0" y="0" width="{w}" height="{h}" xlink:href="data:image/png;base64,{png_base64(background)}"/></g>',
           f'<g id="product"><image x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" '
           f'xlink:href="data:image/png;base64,{png_base64(product)}"/></g>', scrim,
           f'<g id="title" font-family="{html.escape(_families(title["font_family"]))}" font-size="{title["font_size"]}" '
           f'fill="{rgb(*title["colour"])}">']
    for i, line in enumerate(title["lines"]):
        y = title["box"][1] + i * title["font_size"] * LINE_HEIGHT + title["font_size"]
        out.append(f'<text x="{title["box"][0]}" y="{y:.1f}">{html.escape(line)}</text>')
    cx0, cy0, cx1, cy1 = cta["box"]
    out += ["</g>", '<g id="cta">',
            f'<rect x="{cx0}" y="{cy0}" width="{cx1 - cx0}" height="{cy1 - cy0}" rx="{(cy1 - cy0) // 3}" fill="{rgb(*cta["fill"])}"/>',
            f'<text x="{(cx0 + cx1) / 2}" y="{(cy0 + cy1) / 2}" text-anchor="middle" dominant-baseline="central" '
            f'font-family="{html.escape(_families(cta["font_family"]))}" font-size="{cta["font_size"]}" fill="{rgb(*cta["colour"])}">'
            f'{html.escape(cta["text"])}</text>', "</g>", "</svg>"]
    return "\n".join(out)


def non_background_mask(layout: dict, cutout: Image.Image) -> np.ndarray:
    """(H, W) bool: the product's pixels plus the title and CTA boxes (for PBS on the background only)."""
    mask = product_mask(layout, cutout)
    for layer in layout["layers"][2:]:
        x0, y0, x1, y1 = layer["box"]
        mask[y0:y1, x0:x1] = True
    return mask


def product_mask(layout: dict, cutout: Image.Image) -> np.ndarray:
    """(H, W) bool: where the banner shows the product (alpha > 0 of the placed cut-out)."""
    w, h = layout["size"]
    x0, y0, x1, y1 = layout["layers"][1]["box"]
    prod, _ = place_product(cutout, (x0, y0, x1, y1))
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = np.asarray(prod)[..., 3] > 0
    return mask


def text_card(text: str, size: int = 320) -> Image.Image:
    """An RGBA stand-in cut-out for a product without an image: its name on a white rounded card."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((4, 4, size - 4, size - 4), radius=size // 8, fill=(255, 255, 255, 255),
                           outline=(60, 60, 60, 255), width=3)
    font, _, lines, fsize = fit_text(text, (0, 0, size - 48, size - 48), max_size=size // 6)
    y0 = (size - len(lines) * fsize * 1.2) / 2
    for i, line in enumerate(lines):
        draw.text((size / 2, y0 + i * fsize * 1.2 + fsize / 2), line, font=font, fill=(30, 30, 30, 255), anchor="mm")
    return img
