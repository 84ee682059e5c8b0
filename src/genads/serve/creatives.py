"""Creatives for served ads: a title per ad (written into the bundle) and a banner per ad (on request).

Titles come from the creative part's n-gram title generator (selling-point words only, so they
are factual by construction), fitted on the catalogue's own (selling points, title) pairs, or from
any generator passed in (the LoRA-tuned LM); an ad whose generator output is empty keeps its
catalogue title. Titles are computed offline when the bundle is written, never on a request. Banners are composed at the first
request for an ad (the product card, the title, a style taken from the brand's colours) and kept
in a bounded cache.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from threading import Lock

import numpy as np
import pandas as pd

from genads.creative.banner import compose, text_card
from genads.creative.fixtures import PALETTES, TEXTURES, draw_ad
from genads.creative.ngram import NgramTitleGenerator
from genads.creative.selling_points import derive_selling_points
from genads.creative.style import extract_style
from genads.creative.text import join_words, restore_case

BANNER_SIZE = (300, 250)
"""The IAB medium rectangle."""


def _selling_points(title: str, description: str) -> list[str]:
    sps = derive_selling_points(title, max_points=4, max_words=6) + derive_selling_points(description, max_points=4)
    return list(dict.fromkeys(sps))[:8] or [title]


def creative_titles(catalogue: pd.DataFrame, fit_rows: int = 1000, seed: int = 0, generator=None) -> list[str]:
    """One ad title per catalogue row (columns title, description), from its selling points.

    ``generator``: None fits the n-gram baseline on the catalogue; an object with ``title(selling_points,
    description)`` (e.g. ``lm_titles.LMTitleGenerator``) writes the title text itself. Either way this
    runs offline, when the bundle is written: the service only reads the stored titles.
    """
    titles = catalogue["title"].astype(str).tolist()
    descs = catalogue["description"].fillna("").astype(str).tolist()
    sps = [_selling_points(t, d) for t, d in zip(titles, descs, strict=True)]
    if generator is None:
        rng = np.random.default_rng(seed)
        fit = rng.permutation(len(titles))[:fit_rows]
        generator = NgramTitleGenerator.fit([sps[i] for i in fit], [titles[i] for i in fit])
    out = []
    for title, desc, sp in zip(titles, descs, sps, strict=True):
        if hasattr(generator, "title"):
            text = generator.title(sp, desc)
        else:
            words = generator(sp, desc)
            text = join_words(restore_case(words, sp)) if words else ""
        out.append(text or title)
    return out


def _brand_style(brand: str, title: str) -> object:
    h = int.from_bytes(hashlib.blake2b(brand.encode(), digest_size=4).digest(), "little")
    image, mask = draw_ad(text_card(title[:40], size=120), PALETTES[h % len(PALETTES)], TEXTURES[(h // 7) % 3])
    return extract_style([image], [mask], rng=np.random.default_rng(h))


class BannerCache:
    """PNG banners by ad id, composed on first use; at most ``size`` kept (least recently used goes)."""

    def __init__(self, ads: pd.DataFrame, size: int = 512) -> None:
        self.rows = {int(a): (str(t), str(c), str(b)) for a, t, c, b in
                     zip(ads["ad_id"], ads["title"], ads["creative_title"], ads["brand"], strict=True)}
        self.size = size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = Lock()

    def __contains__(self, ad_id: int) -> bool:
        return ad_id in self.rows

    def png(self, ad_id: int) -> bytes:
        with self._lock:
            if ad_id in self._cache:
                self._cache.move_to_end(ad_id)
                return self._cache[ad_id]
        title, creative, brand = self.rows[ad_id]
        banner = compose(text_card(title[:60]), creative, _brand_style(brand, title), BANNER_SIZE)
        buf = io.BytesIO()
        banner.png.save(buf, format="PNG")
        data = buf.getvalue()
        with self._lock:
            self._cache[ad_id] = data
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return data
