"""A dataset folder on disk: catalogue.parquet, events.parquet, meta.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genads.data.schema import ACTIONS, CATALOGUE_FILE, EVENTS_FILE, META_FILE, USERS_FILE
from genads.io import atomic_write_text, default_mode, replace_dir  # noqa: F401 (their old home: re-exported)


@dataclass
class Dataset:
    """An imported dataset, loaded in memory.

    Attributes:
        catalogue: one row per ad (CATALOGUE_SCHEMA), sorted by ad_id.
        events: one row per event (EVENT_SCHEMA), grouped by user, each user's events in time order.
        meta: what meta.json says (format, counts, rejected rows, synthetic-money flags).
    """

    catalogue: pd.DataFrame
    events: pd.DataFrame
    meta: dict
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path else "dataset"

    @property
    def vocab(self):
        """The dataset's id vocabulary (genads.data.vocab.IdVocabulary; empty for integer ids)."""
        from genads.data.vocab import IdVocabulary

        if getattr(self, "_vocab", None) is None:
            self._vocab = IdVocabulary.load(self.path) if self.path is not None else IdVocabulary()
        return self._vocab

    @property
    def users(self) -> pd.DataFrame | None:
        """User profiles (user_id, features: list of "feature=value") when the source had them (TencentGR
        ``user_feat``), else None; read from ``users.parquet`` on first use."""
        if getattr(self, "_users", None) is None and self.path is not None and (self.path / USERS_FILE).is_file():
            self._users = pd.read_parquet(self.path / USERS_FILE)
        return getattr(self, "_users", None)

    def titles(self) -> dict[int, str]:
        """ad_id -> title (empty string where the input had none)."""
        return dict(zip(self.catalogue["ad_id"].tolist(), self.catalogue["title"].tolist(), strict=True))


def load_dataset(path: str | Path, columns: list[str] | None = None) -> Dataset:
    """Read a dataset folder written by ``genads data import``.

    Raises:
        FileNotFoundError: naming the missing file, if ``path`` is not a dataset folder.
    """
    path = Path(path)
    for name in (CATALOGUE_FILE, EVENTS_FILE, META_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: is {path} a dataset made by `genads data import`?")
    catalogue = pd.read_parquet(path / CATALOGUE_FILE, columns=columns)
    events = pd.read_parquet(path / EVENTS_FILE)
    meta = json.loads((path / META_FILE).read_text())
    return Dataset(catalogue=catalogue, events=events, meta=meta, path=path)


def content_sha256(path: str | Path) -> str:
    """sha256 over the bytes of a dataset folder's catalogue and event files: changes when the data do."""
    digest = hashlib.sha256()
    for name in (CATALOGUE_FILE, EVENTS_FILE):
        digest.update(name.encode())
        with open(Path(path) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_meta(folder: Path, meta: dict) -> None:
    """Write meta.json atomically (temp file + rename)."""
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def action_name(code: int) -> str:
    return ACTIONS[code]
