"""PAd1M-style creative records and their loaders (JSONL, CSV, AdvertiseGen).

A record is one (product, user) pair: the product (id, title, description, selling points,
optional RGBA cut-out path), the user's clicked ads (title, optional image path) and, when known,
the title the user actually clicked (the generation target). Malformed rows are reported by file,
line and field; the caller chooses to stop at the first one or to skip them with a count.

JSONL, one object per line::

    {"product": {"id": "p1", "title": "...", "description": "...", "selling_points": ["..."],
                 "image": "img/p1.png"},
     "history": [{"title": "...", "image": "img/h1.png"}, ...],
     "target_title": "...", "target_image": "img/t1.png"}

``target_title`` and ``target_image`` (the ad the user clicked) are optional, for evaluation.
CSV columns: ``id, title, description, selling_points, image, history_titles, history_images,
target_title, target_image``; list cells are separated by ``|``. Relative image paths resolve against the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LIST_SEP = "|"


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    description: str
    selling_points: tuple[str, ...]
    image: Path | None = None
    """RGBA cut-out (transparent background), or None."""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("product.id must be non-empty")
        if not self.selling_points or not all(isinstance(s, str) and s.strip() for s in self.selling_points):
            raise ValueError("product.selling_points must be a non-empty list of non-empty strings")


@dataclass(frozen=True)
class HistoryItem:
    title: str
    image: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError("history.title must be a non-empty string")


@dataclass(frozen=True)
class CreativeRecord:
    product: Product
    history: tuple[HistoryItem, ...] = ()
    target_title: str | None = None
    """The clicked ad's title (for evaluation); None when unknown."""
    target_image: Path | None = None
    """The clicked ad's image (for PBS), or None."""
    meta: dict = field(default_factory=dict, compare=False)


class RecordError(ValueError):
    """A malformed row: names the file, the line and the field."""

    def __init__(self, path: Path | str, line: int, field_name: str, message: str) -> None:
        super().__init__(f"{path}:{line}: field '{field_name}': {message}")
        self.path, self.line, self.field = str(path), line, field_name


@dataclass
class LoadReport:
    records: list[CreativeRecord]
    errors: list[RecordError]

    def summary(self) -> str:
        return f"{len(self.records)} records, {len(self.errors)} malformed rows skipped"


def _path(value: object, base: Path | None) -> Path | None:
    if value in (None, ""):
        return None
    p = Path(str(value))
    return p if p.is_absolute() or base is None else base / p


def _str_list(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(LIST_SEP) if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(value)


def _field(obj: dict, name: str, kind: type = str, required: bool = True) -> object:
    if name not in obj or obj[name] is None:
        if required:
            raise KeyError(name)
        return None
    if not isinstance(obj[name], kind):
        raise TypeError(f"{name} must be {kind.__name__}, got {type(obj[name]).__name__}")
    return obj[name]


def record_from_dict(obj: dict, base: Path | None = None) -> CreativeRecord:
    """Build a record from one parsed JSON object; raises KeyError/TypeError/ValueError naming the field."""
    p = _field(obj, "product", dict)
    try:
        sps = _str_list(_field(p, "selling_points", (list, str)), "selling_points")
    except KeyError:
        raise KeyError("product.selling_points") from None
    product = Product(id=str(_field(p, "id", (str, int))), title=str(_field(p, "title")),
                      description=str(_field(p, "description", required=False) or ""),
                      selling_points=sps, image=_path(p.get("image"), base))
    hist = _field(obj, "history", list, required=False) or []
    history = []
    for i, h in enumerate(hist):
        if not isinstance(h, dict) or not isinstance(h.get("title"), str):
            raise TypeError(f"history[{i}].title must be a string")
        history.append(HistoryItem(title=h["title"], image=_path(h.get("image"), base)))
    target = _field(obj, "target_title", required=False)
    return CreativeRecord(product, tuple(history), target, _path(_field(obj, "target_image", required=False), base))


def _csv_row_to_dict(row: dict) -> dict:
    titles = _str_list(row.get("history_titles") or "", "history_titles")
    images = list(_str_list(row.get("history_images") or "", "history_images"))
    if images and len(images) != len(titles):
        raise ValueError(f"history_images has {len(images)} entries for {len(titles)} history_titles")
    images += [""] * (len(titles) - len(images))
    return {"product": {"id": row.get("id") or None, "title": row.get("title"), "description": row.get("description"),
                        "selling_points": row.get("selling_points") or None, "image": row.get("image")},
            "history": [{"title": t, "image": im} for t, im in zip(titles, images, strict=True)],
            "target_title": row.get("target_title") or None, "target_image": row.get("target_image") or None}


def _rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, parsed object or raw text that failed to parse)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, row
        return
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as e:
                    yield line_no, f"invalid JSON: {e.msg} at column {e.colno}"


def load_records(path: str | Path, on_error: str = "stop") -> LoadReport:
    """Load a JSONL (or ``.csv``) file of records.

    Args:
        on_error: "stop" raises the first :class:`RecordError`; "skip" collects them in the report.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error={on_error!r} must be 'stop' or 'skip'")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"records file {path} does not exist")
    records, errors = [], []
    for line_no, obj in _rows(path):
        try:
            if isinstance(obj, str):
                raise RecordError(path, line_no, "<row>", obj)
            if not isinstance(obj, dict):
                raise RecordError(path, line_no, "<row>", "a record must be a JSON object")
            if path.suffix.lower() == ".csv":
                obj = _csv_row_to_dict(obj)
            records.append(record_from_dict(obj, path.parent))
        except RecordError as e:
            errors.append(e)
        except KeyError as e:
            errors.append(RecordError(path, line_no, str(e.args[0]), "missing"))
        except (TypeError, ValueError) as e:
            name = str(e).split(" ", 1)[0]
            errors.append(RecordError(path, line_no, name, str(e)))
        if errors and on_error == "stop":
            raise errors[0]
    return LoadReport(records, errors)


def record_to_dict(rec: CreativeRecord, base: Path | None = None) -> dict:
    """The JSONL form of a record (image paths relative to ``base`` when given)."""
    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        return str(p.relative_to(base)) if base is not None and p.is_relative_to(base) else str(p)

    def drop_none(d: dict) -> dict:
        return {k: v for k, v in d.items() if v is not None}

    p = rec.product
    return drop_none({"product": drop_none({"id": p.id, "title": p.title, "description": p.description,
                                            "selling_points": list(p.selling_points), "image": rel(p.image)}),
                      "history": [drop_none({"title": h.title, "image": rel(h.image)}) for h in rec.history],
                      "target_title": rec.target_title, "target_image": rel(rec.target_image)})


def parse_attributes(content: str) -> list[tuple[str, str]]:
    """AdvertiseGen ``content`` "k#v*k#v" -> [(key, value)]; raises ValueError on a pair without '#'."""
    pairs = []
    for part in content.split("*"):
        if not part:
            continue
        key, sep, value = part.partition("#")
        if not sep or not value:
            raise ValueError(f"content attribute {part!r} is not 'key#value'")
        pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class CopyExample:
    """One AdvertiseGen line: selling points (attribute values, in order, de-duplicated) -> ad copy."""

    line: int
    attributes: tuple[tuple[str, str], ...]
    selling_points: tuple[str, ...]
    copy: str


def load_advertisegen(path: str | Path, on_error: str = "stop") -> tuple[list[CopyExample], list[RecordError]]:
    """Read AdvertiseGen JSON lines ``{"content": "k#v*k#v", "summary": copy}``."""
    path = Path(path)
    out, errors = [], []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                for name in ("content", "summary"):
                    if not isinstance(obj.get(name), str) or not obj[name].strip():
                        raise RecordError(path, line_no, name, "missing or not a non-empty string")
                attrs = parse_attributes(obj["content"])
                sps = tuple(dict.fromkeys(v for _, v in attrs))
                out.append(CopyExample(line_no, tuple(attrs), sps, obj["summary"].strip()))
            except json.JSONDecodeError as e:
                errors.append(RecordError(path, line_no, "<row>", f"invalid JSON: {e.msg}"))
            except RecordError as e:
                errors.append(e)
            except ValueError as e:
                errors.append(RecordError(path, line_no, "content", str(e)))
            if errors and on_error == "stop":
                raise errors[0]
    return out, errors
