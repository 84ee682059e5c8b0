"""A dataset folder on disk: catalogue.parquet, events.parquet, meta.json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genads.data.schema import ACTIONS, CATALOGUE_FILE, EVENTS_FILE, META_FILE, USERS_FILE


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_mode(path: Path, directory: bool = False) -> None:
    """Give a temp file/folder (created 0600/0700 by tempfile) the usual umask-based permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        default_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def action_name(code: int) -> str:
    return ACTIONS[code]


def replace_dir(new: Path, target: Path) -> None:
    """Move folder ``new`` to ``target``; an existing target is swapped out, then deleted.

    If the final rename fails, the old target is put back, so a failed write loses nothing stored.
    """
    if not target.exists():
        new.rename(target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    target.rename(trash / "old")
    try:
        new.rename(target)
    except BaseException:
        (trash / "old").rename(target)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
