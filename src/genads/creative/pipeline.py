"""One creative for one (product, user): sample history -> title -> style -> banners -> metrics.

Components go in through the constructor (the title generator, the text encoder, the history
config, the sizes, the background renderer); there is one way to run it, and randomness comes
from an explicit generator.
Images are passed in already loaded: the pipeline never touches disk. PBS compares the first
size's banner, with the product and the text layers masked (only generated background is
compared), against the clicked ad with its product masked (when that mask is known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from genads.creative.banner import SIZES, BackgroundRenderer, Banner, compose, non_background_mask
from genads.creative.encoders import HashingEncoder, TextEncoder
from genads.creative.history import HistoryConfig, sample_history
from genads.creative.metrics import pbs, text_metrics
from genads.creative.records import CreativeRecord
from genads.creative.style import Style, extract_style
from genads.creative.text import join_words, restore_case, tokenize


class TitleGenerator(Protocol):
    def __call__(self, selling_points: list[str], description: str = "", history_titles: list[str] = ()) -> list[str]:
        """Title words; every word from the selling points, none repeated."""
        ...


@dataclass
class CreativeOutput:
    title: str
    words: list[str]
    history_used: list[int]
    """Indices into the record's history."""
    style: Style
    banners: dict[tuple[int, int], Banner]
    metrics: dict[str, float] = field(default_factory=dict)


def product_text(record: CreativeRecord) -> str:
    p = record.product
    return " ".join([p.title, p.description, *p.selling_points])


class CreativePipeline:
    def __init__(self, generator: TitleGenerator, encoder: TextEncoder | None = None,
                 history: HistoryConfig | None = None, sizes: tuple[tuple[int, int], ...] = SIZES,
                 background: BackgroundRenderer | None = None) -> None:
        """``background``: None for the style's gradient, or e.g. ``inpaint.InpaintBackground``."""
        if not sizes:
            raise ValueError("sizes must name at least one banner size")
        self.generator = generator
        self.encoder = encoder or HashingEncoder()
        self.history = history or HistoryConfig()
        self.sizes = sizes
        self.background = background

    def select_history(self, record: CreativeRecord, rng: np.random.Generator) -> list[int]:
        titles = [h.title for h in record.history]
        if not titles or self.history.n == 0:
            return []
        vecs = self.encoder([product_text(record), *titles])
        return sample_history(vecs[0], vecs[1:], titles, record.target_title, self.history, rng).tolist()

    def __call__(self, record: CreativeRecord, cutout: Image.Image, history_images: list[Image.Image | None],
                 rng: np.random.Generator, target_image: Image.Image | None = None,
                 target_mask: np.ndarray | None = None,
                 history_masks: list[np.ndarray | None] | None = None) -> CreativeOutput:
        """Generate the title and the banners, and score them.

        Args:
            cutout: the product's RGBA cut-out.
            history_images: one entry per history item (None where it has no image).
            target_image, target_mask: the clicked ad and its product mask (H, W), for PBS.
            history_masks: product masks of the history images, where known.
        """
        if len(history_images) != len(record.history):
            raise ValueError(f"{len(history_images)} history images for {len(record.history)} history items")
        used = self.select_history(record, rng)
        p = record.product
        hist = [record.history[i].title for i in used]
        if hasattr(self.generator, "title"):  # an LM writes the title's text itself (function words, punctuation)
            title = self.generator.title(list(p.selling_points), p.description, hist)
            words = tokenize(title)
        else:
            words = self.generator(list(p.selling_points), p.description, hist)
            title = join_words(restore_case(words, list(p.selling_points)))
        masks = history_masks or [None] * len(history_images)
        with_img = [i for i in used if history_images[i] is not None]
        style = extract_style([history_images[i] for i in with_img], [masks[i] for i in with_img], rng=rng)
        banners = {size: compose(cutout, title, style, size, background=self.background) for size in self.sizes}
        metrics = text_metrics(title, list(p.selling_points), record.target_title)
        metrics["history_used"] = float(len(used))
        first = banners[self.sizes[0]]
        if target_image is not None:
            metrics["pbs"] = pbs(first.png, target_image, non_background_mask(first.layout, cutout), target_mask)
        return CreativeOutput(title, words, used, style, banners, metrics)
