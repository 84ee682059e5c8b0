"""Generated PAd1M-style fixtures: products drawn with PIL as RGBA cut-outs, users with a style.

A small synthetic world in which personalisation is measurable. Each user has, per product group
(personal care + kitchen, or electronics + apparel), a palette and a texture for ad backgrounds,
and one order in which they like selling points said. The clicked ads in a user's history follow
that style except for a share of noisy clicks (random palette, random order: Uni-AdGen's
sample-level noise); the target ad (a new product) follows it exactly. A history item's image is
a whole ad (background + product); the product cut-out is stored alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genads.creative.records import CreativeRecord, HistoryItem, Product, record_to_dict

CATEGORIES: dict[str, tuple[str, list[str]]] = {
    "bottle": ("care", ["hydrating serum", "vitamin c", "fragrance free", "travel size", "glass bottle", "gentle formula"]),
    "mug": ("care", ["ceramic mug", "dishwasher safe", "large handle", "heat retaining", "matte glaze", "gift ready"]),
    "speaker": ("tech", ["wireless speaker", "bluetooth 5.0", "long battery", "deep bass", "compact design", "usb-c charging"]),
    "shirt": ("tech", ["cotton tee", "slim fit", "breathable fabric", "crew neck", "machine washable", "soft touch"]),
}
"""category -> (group, selling-point pool). Group decides which of a user's two styles applies."""
BRANDS = ("Aurora", "Nimbus", "Kestrel", "Lumen", "Orchard", "Tidal")
PALETTES: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((250, 214, 165), (232, 120, 80), (120, 40, 30)),    # warm sunset
    ((200, 230, 255), (60, 110, 190), (20, 40, 90)),     # cool blue
    ((220, 245, 215), (90, 160, 100), (30, 70, 40)),     # fresh green
    ((245, 225, 245), (170, 110, 190), (70, 30, 90)),    # lilac
    ((240, 240, 235), (160, 160, 150), (50, 50, 50)),    # stone
    ((255, 245, 190), (235, 185, 40), (110, 80, 10)),    # mustard
)
TEXTURES = ("plain", "stripes", "dots")
STYLE_WORDS = ("new", "shop", "today", "for you", "now", "limited")


@dataclass(frozen=True)
class UserStyle:
    palette: tuple[int, int]
    """Palette index per group (care, tech)."""
    texture: tuple[str, str]
    order: tuple[int, ...]
    """Preferred order of selling-point slots (a permutation of range(6)); the first ``k`` are said."""
    k: int
    extra: str
    """A non-selling-point word the user's clicked titles carry (removed by projection)."""


def draw_product(category: str, colour: tuple[int, int, int], size: int = 160) -> Image.Image:
    """An RGBA cut-out: the product shape on a fully transparent background."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s, c, dark = size, (*colour, 255), (*(v // 2 for v in colour), 255)
    if category == "bottle":
        d.rounded_rectangle((s * .3, s * .3, s * .7, s * .95), radius=s * .08, fill=c, outline=dark, width=3)
        d.rectangle((s * .42, s * .12, s * .58, s * .3), fill=dark)
        d.rectangle((s * .36, s * .55, s * .64, s * .75), fill=(255, 255, 255, 255))
    elif category == "mug":
        d.ellipse((s * .55, s * .38, s * .88, s * .72), outline=c, width=int(s * .07))
        d.rounded_rectangle((s * .15, s * .25, s * .68, s * .9), radius=s * .06, fill=c, outline=dark, width=3)
    elif category == "speaker":
        d.rounded_rectangle((s * .15, s * .12, s * .85, s * .92), radius=s * .1, fill=c, outline=dark, width=3)
        d.ellipse((s * .3, s * .42, s * .7, s * .82), fill=dark)
        d.ellipse((s * .42, s * .18, s * .58, s * .34), fill=dark)
    elif category == "shirt":
        d.polygon([(s * .3, s * .12), (s * .7, s * .12), (s * .95, s * .35), (s * .82, s * .48), (s * .75, s * .4),
                   (s * .75, s * .92), (s * .25, s * .92), (s * .25, s * .4), (s * .18, s * .48), (s * .05, s * .35)],
                  fill=c, outline=dark)
        d.arc((s * .4, s * .02, s * .6, s * .22), 0, 180, fill=dark, width=3)
    else:
        raise ValueError(f"category={category!r} must be one of {sorted(CATEGORIES)}")
    return img


def draw_ad(product: Image.Image, palette: tuple, texture: str, size: int = 192) -> tuple[Image.Image, np.ndarray]:
    """An ad image (RGB) with the product centred on a styled background, and its product mask (H, W)."""
    top, bottom, accent = (np.array(c, float) for c in palette)
    t = np.linspace(0, 1, size)[:, None, None]
    bg = np.broadcast_to((1 - t) * top + t * bottom, (size, size, 3)).copy()
    yy, xx = np.mgrid[0:size, 0:size]
    if texture == "stripes":
        bg[((xx + yy) // 12) % 2 == 0] = 0.75 * bg[((xx + yy) // 12) % 2 == 0] + 0.25 * accent
    elif texture == "dots":
        bg[((xx % 24 - 12) ** 2 + (yy % 24 - 12) ** 2) < 20] = accent
    img = Image.fromarray(bg.astype(np.uint8), "RGB")
    off = ((size - product.width) // 2, (size - product.height) // 2)
    img.paste(product, off, product)
    mask = np.zeros((size, size), bool)
    mask[off[1]:off[1] + product.height, off[0]:off[0] + product.width] = np.asarray(product)[..., 3] > 0
    return img, mask


def _user_style(rng: np.random.Generator) -> UserStyle:
    pal = rng.choice(len(PALETTES), size=2, replace=False)
    return UserStyle(palette=(int(pal[0]), int(pal[1])), texture=tuple(rng.choice(TEXTURES, size=2)),
                     order=tuple(int(i) for i in rng.permutation(6)), k=int(rng.integers(3, 5)),
                     extra=str(rng.choice(STYLE_WORDS)))


def _product(rng: np.random.Generator, pid: str) -> tuple[Product, str, Image.Image]:
    category = str(rng.choice(list(CATEGORIES)))
    _, pool = CATEGORIES[category]
    brand = str(rng.choice(BRANDS))
    colour = tuple(int(v) for v in rng.integers(40, 230, size=3))
    product = Product(id=pid, title=f"{brand} {pool[0]}",
                      description=f"The {brand} {pool[0]}: {pool[1]}, {pool[2]} and {pool[3]}.",
                      selling_points=tuple(pool))
    return product, category, draw_product(category, colour)


def _title(pool: tuple[str, ...], order: tuple[int, ...], k: int, extra: str) -> str:
    return " ".join([*(pool[i] for i in order[:k]), extra]).capitalize()


def make_user(rng: np.random.Generator, uid: int, n_history: int = 24, noise: float = 0.3
              ) -> tuple[CreativeRecord, dict[str, Image.Image], dict[str, np.ndarray]]:
    """One record (relative image paths) and the images to write (path -> image), plus ad masks."""
    style = _user_style(rng)
    images: dict[str, Image.Image] = {}
    masks: dict[str, np.ndarray] = {}
    history = []
    for j in range(n_history):
        product, category, cut = _product(rng, f"u{uid}h{j}")
        g = 0 if CATEGORIES[category][0] == "care" else 1
        noisy = rng.random() < noise
        palette = PALETTES[int(rng.integers(len(PALETTES)))] if noisy else PALETTES[style.palette[g]]
        texture = str(rng.choice(TEXTURES)) if noisy else style.texture[g]
        order = tuple(int(i) for i in rng.permutation(6)) if noisy else style.order
        path = f"img/u{uid}_h{j}.png"
        images[path], masks[path] = draw_ad(cut, palette, texture)
        history.append(HistoryItem(_title(product.selling_points, order, style.k, style.extra), Path(path)))
    product, category, cut = _product(rng, f"u{uid}p")
    g = 0 if CATEGORIES[category][0] == "care" else 1
    images[f"img/u{uid}_product.png"] = cut
    target = f"img/u{uid}_target.png"
    images[target], masks[target] = draw_ad(cut, PALETTES[style.palette[g]], style.texture[g])
    product = Product(product.id, product.title, product.description, product.selling_points,
                      Path(f"img/u{uid}_product.png"))
    title = " ".join(product.selling_points[i] for i in style.order[:style.k])
    rec = CreativeRecord(product, tuple(history), title, Path(target), meta={"user": uid, "category": category})
    return rec, images, masks


def write_fixtures(out_dir: str | Path, n_users: int = 8, seed: int = 0, n_history: int = 24) -> Path:
    """Write ``records.jsonl``, ``masks.npz`` (product masks of every ad image) and ``img/`` PNGs."""
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines, all_masks = [], {}
    for uid in range(n_users):
        rec, images, masks = make_user(rng, uid, n_history)
        for path, img in images.items():
            img.save(out / path)
        all_masks.update(masks)
        lines.append(json.dumps(record_to_dict(rec)))
    np.savez_compressed(out / "masks.npz", **{k.replace("/", "__"): v for k, v in all_masks.items()})
    (out / "records.jsonl").write_text("\n".join(lines) + "\n")
    return out / "records.jsonl"
