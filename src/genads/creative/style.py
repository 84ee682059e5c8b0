"""The user's visual style, read from the clicked ads' images, and a background rendered from it.

A :class:`Style` is what a background generator needs: the vertical gradient's end colours, an
accent colour, and a texture (stripes at the history's dominant gradient orientation, with an
amplitude following the history's texture energy). It is estimated from the background pixels of
the history images (products masked when their masks are known):

* gradient ends: the mean colour of the top and bottom fifth of every image, averaged;
* accent: of a 4-colour k-means palette over the background pixels, the colour farthest from both
  gradient ends (weighted by its share);
* texture: the median over images of the mean gradient magnitude, and the dominant orientation (circular mean of doubled
  angles, so 0 and 180 degrees agree).

With no history the style is a neutral light-grey gradient without texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Colour = tuple[int, int, int]
PATTERNS: tuple[str, ...] = ("stripes", "shapes", "diagonal", "plain")


@dataclass(frozen=True)
class Style:
    top: Colour = (236, 236, 236)
    bottom: Colour = (206, 206, 210)
    accent: Colour = (40, 90, 200)
    texture_strength: float = 0.0
    """Stripe amplitude as a fraction of 255 (0 = plain)."""
    texture_angle: float = 0.0
    """Stripe direction in radians (direction of the intensity change)."""
    texture_period: float = 0.06
    """Stripe period as a fraction of the image's shorter side."""
    pattern: str = "stripes"
    """One of PATTERNS: "stripes" (texture above), "shapes" (soft accent-coloured discs), "diagonal"
    (a corner-to-corner gradient), "plain" (the vertical gradient alone)."""

    def __post_init__(self) -> None:
        if not 0 <= self.texture_strength <= 0.5:
            raise ValueError(f"texture_strength={self.texture_strength} must be in [0, 0.5]")
        if self.texture_period <= 0:
            raise ValueError(f"texture_period={self.texture_period} must be > 0")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern={self.pattern!r} must be one of {PATTERNS}")


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) -> centres (k, 3), counts (k,)."""
    centres = x[rng.choice(len(x), size=min(k, len(x)), replace=False)]
    for _ in range(iters):
        labels = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        centres = np.stack([x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(len(centres))])
    return centres, np.bincount(labels, minlength=len(centres))


def _background_pixels(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return img.reshape(-1, 3) if mask is None else img[~mask]


def _texture(gray: np.ndarray, keep: np.ndarray) -> tuple[float, float]:
    gx, gy = np.gradient(gray)
    mag = np.hypot(gx, gy)[keep]
    ang = np.arctan2(gy, gx)[keep]
    energy = float(mag.mean()) if mag.size else 0.0
    angle = float(np.angle((mag * np.exp(2j * ang)).sum()) / 2) if mag.size else 0.0
    return energy, angle


def extract_style(images: list[Image.Image], masks: list[np.ndarray | None] | None = None,
                  rng: np.random.Generator | None = None, size: int = 96) -> Style:
    """Estimate a :class:`Style` from history ad images; ``masks`` (H, W) bool mark product pixels."""
    if not images:
        return Style()
    rng = rng or np.random.default_rng(0)
    masks = masks or [None] * len(images)
    tops, bottoms, pixels, energies, vecs = [], [], [], [], []
    for image, mask in zip(images, masks, strict=True):
        arr = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float64)
        m = None if mask is None else np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 0
        keep = np.ones((size, size), bool) if m is None else ~m
        band = size // 5
        for rows, out in ((slice(0, band), tops), (slice(size - band, size), bottoms)):
            sel = keep[rows]
            out.append(arr[rows][sel].mean(0) if sel.any() else arr[rows].reshape(-1, 3).mean(0))
        px = _background_pixels(arr, m)
        pixels.append(px[rng.choice(len(px), size=min(400, len(px)), replace=False)])
        energy, angle = _texture(arr.mean(-1) / 255.0, keep)
        energies.append(energy)
        vecs.append(energy * np.exp(2j * angle))
    top, bottom = np.mean(tops, 0), np.mean(bottoms, 0)
    centres, counts = _kmeans(np.concatenate(pixels), 4, rng)
    dist = np.minimum(np.linalg.norm(centres - top, axis=1), np.linalg.norm(centres - bottom, axis=1))
    accent = centres[np.argmax(dist * np.sqrt(counts / counts.sum()))]
    strength = float(np.clip(np.median(energies) * 2.0, 0.0, 0.5))  # median: robust to noisy clicks
    return Style(top=_rgb(top), bottom=_rgb(bottom), accent=_rgb(accent), texture_strength=strength,
                 texture_angle=float(np.angle(np.sum(vecs)) / 2))


def _rgb(x: np.ndarray) -> Colour:
    r, g, b = (int(v) for v in np.clip(np.round(x), 0, 255))
    return (r, g, b)


def render_background(style: Style, size: tuple[int, int]) -> Image.Image:
    """An RGB background of ``size`` (W, H): the style's gradient plus its pattern (see ``Style.pattern``).

    "shapes": three soft discs (Gaussian falloff) in the accent colour at 18-30 % opacity, placed by
    a generator seeded from the style's colours (the same style always gives the same picture).
    """
    w, h = size
    if style.pattern == "diagonal":
        yy, xx = np.mgrid[0:h, 0:w]
        t = ((xx / max(w - 1, 1) + yy / max(h - 1, 1)) / 2)[..., None]
    else:
        t = np.broadcast_to(np.linspace(0.0, 1.0, h)[:, None, None], (h, w, 1))
    img = (1 - t) * np.array(style.top, float) + t * np.array(style.bottom, float)
    img = np.broadcast_to(img, (h, w, 3)).copy()
    if style.pattern == "stripes" and style.texture_strength > 0:
        yy, xx = np.mgrid[0:h, 0:w]
        period = style.texture_period * min(w, h)
        phase = (xx * np.cos(style.texture_angle) + yy * np.sin(style.texture_angle)) / period
        img += 255 * style.texture_strength * 0.5 * np.sign(np.sin(2 * np.pi * phase))[..., None]
    elif style.pattern == "shapes":
        rng = np.random.default_rng(sum(style.top) * 65536 + sum(style.bottom) * 256 + sum(style.accent))
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(3):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(0.25, 0.5) * min(w, h)
            a = rng.uniform(0.18, 0.30) * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
            img = (1 - a) * img + a * np.array(style.accent, float)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def contrast_text_colour(background: Colour) -> Colour:
    """Near-black or white, whichever reads better on ``background`` (WCAG relative luminance)."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in background]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return (20, 20, 20) if lum > 0.22 else (255, 255, 255)
