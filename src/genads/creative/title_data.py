"""(selling points -> title) pairs from real data, split by product (no product on both sides).

* Chinese, AdvertiseGen (``advertisegen/dev.json``): selling points = the attribute values
  (``selling_points.extract_selling_points``: the coarse 类型 dropped under a finer type); the
  target is the copy's lead sentence (text up to the first 。！？; at least 8 characters, at most
  ``max_zh_chars``), a headline-length line written by the platform's copywriters. A product is
  its attribute string (``content``): lines with the same attributes go to the same side.
* English, Amazon 2018 (``amazon18/NAME.item.json``): selling points = the brand plus typed phrases
  extracted from the description (``selling_points.extract_selling_points``; the title is never
  used), the target is the real title without its model and part numbers ("WD-40 300281 Specialist
  Degreaser" -> "WD-40 Specialist Degreaser": no selling point holds them). Products with fewer than ``min_points`` selling points are
  skipped. Real user windows (``NAME.valid.csv``/``NAME.test.csv``: up to 10 clicked titles ->
  next item) give histories: :func:`amazon_windows`.

Both splits come from a seeded permutation of the product ids.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genads.creative.records import RecordError, load_advertisegen
from genads.creative.selling_points import extract_selling_points
from genads.creative.title_targets import strip_model_numbers

_LEAD = re.compile(r"[。！？!?；;]")


@dataclass(frozen=True)
class Product:
    id: str
    selling_points: tuple[str, ...]
    target: str
    brand: str = ""
    lang: str = "en"


def lead_sentence(copy: str, min_chars: int = 8, max_chars: int = 40) -> str:
    """The copy's first sentence(s): up to a sentence end once ``min_chars`` are reached, cut at ``max_chars``."""
    out = ""
    for part in _LEAD.split(copy):
        out = f"{out}，{part}" if out else part
        if len(out) >= min_chars:
            break
    out = out.strip("，, ")
    if len(out) > max_chars:
        cut = max(out.rfind("，", 0, max_chars), out.rfind(",", 0, max_chars))
        out = out[:cut] if cut >= min_chars else out[:max_chars]
    return out


def advertisegen_products(path: Path | str, max_zh_chars: int = 40, max_points: int = 12) -> list[Product]:
    examples, _ = load_advertisegen(path, on_error="skip")
    return [Product(f"ag{e.line}:" + "*".join(f"{k}#{v}" for k, v in e.attributes),
                    tuple(p.text for p in extract_selling_points(attributes=list(e.attributes), max_points=max_points)),
                    lead_sentence(e.copy, max_chars=max_zh_chars), "", "zh") for e in examples]


def _description(raw: str) -> str:
    raw = raw or ""
    if raw.startswith("["):
        try:
            parts = ast.literal_eval(raw)  # a Python-list-like string of paragraphs (literals only: safe)
            if isinstance(parts, list):
                return " ".join(str(p) for p in parts)
        except (ValueError, SyntaxError):
            pass
    return raw


def amazon_products(path: Path | str, min_points: int = 2, max_points: int = 6,
                    strip_models: bool = True, type_lexicon: frozenset[str] = frozenset()) -> dict[str, Product]:
    """item id -> Product for items with a title and enough selling points; the target is the title without its
    model and part numbers (``strip_models``; :func:`~genads.creative.title_targets.strip_model_numbers`).

    ``type_lexicon`` (:func:`~genads.creative.product_types.type_lexicon`, built from titles that are not
    references) adds the description's product noun phrase as a type point; "enough" is counted without it, so
    the lexicon changes the points of an item, never which items there are."""
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(path, e.lineno, "<file>", f"invalid JSON: {e.msg}") from None
    out = {}
    for iid, item in items.items():
        if not isinstance(item, dict):
            raise RecordError(path, 0, f"{iid}", "an item must be an object")
        title = str(item.get("title") or "").strip()
        brand = str(item.get("brand") or "").strip()
        description = _description(str(item.get("description") or ""))
        points = extract_selling_points(description=description, brand=brand, max_points=max_points + 1)
        if not title or len([p for p in points if p.kind != "brand"]) < min_points:
            continue
        if type_lexicon:
            points = extract_selling_points(description=description, brand=brand, max_points=max_points + 1,
                                            type_lexicon=type_lexicon)
        sps = [p.text for p in points if p.kind != "brand"][:max_points]
        brand_point = [p.text for p in points if p.kind == "brand"]
        target = strip_model_numbers(title, brand) if strip_models else title
        if not target:
            continue
        out[str(iid)] = Product(str(iid), tuple(brand_point + sps), target, brand, "en")
    return out


def split_products(ids: list[str], test_share: float, seed: int) -> tuple[set[str], set[str]]:
    """(train ids, test ids) by a seeded permutation of the sorted ids."""
    if not 0 < test_share < 1:
        raise ValueError(f"test_share={test_share} must be in (0, 1)")
    ids = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = max(1, round(test_share * len(ids)))
    return {ids[i] for i in order[n_test:]}, {ids[i] for i in order[:n_test]}


def group_key(p: Product) -> str:
    """The product identity used for the split (AdvertiseGen: the attribute string)."""
    return p.id.split(":", 1)[1] if p.lang == "zh" else p.id


@dataclass(frozen=True)
class Window:
    user: str
    history_ids: tuple[str, ...]
    history_titles: tuple[str, ...]
    item_id: str


def amazon_windows(path: Path | str) -> list[Window]:
    """Real (clicked titles -> next item) windows; raises RecordError naming the row and field."""
    path = Path(path)
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                titles = ast.literal_eval(row["history_item_title"])
                ids = ast.literal_eval(row["history_item_id"])
            except (ValueError, SyntaxError, KeyError) as e:
                raise RecordError(path, reader.line_num, "history_item_title/history_item_id", str(e)) from None
            if len(titles) != len(ids):
                raise RecordError(path, reader.line_num, "history_item_id", f"{len(ids)} ids for {len(titles)} titles")
            out.append(Window(row["user_id"], tuple(str(i) for i in ids), tuple(str(t) for t in titles), str(row["item_id"])))
    return out
