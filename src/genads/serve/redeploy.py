"""Redeploying over a served bundle: its ``state/`` belongs to the deployment and survives the new model.

A bundle is an immutable model + catalogue; ``state/`` beside it holds what the deployment has lived through:
the spend ledger (``ledger.sqlite``), the admin and advertiser keys, the token secret and ``served.jsonl``
(the very file the next retrain reads). ``genads export RUN --out BUNDLE`` over a bundle with a ``state/``
therefore refuses unless told what to do with it:

* ``keep``: the state folder moves into the new bundle (a rename, never a copy, so nothing is lost or doubled),
  and the new bundle's ids are *aligned* to the old one's: every string id the old bundle knew keeps its
  internal index, so the ledger's campaigns, events and keys, and slot tokens already handed out, still name
  the same ads and advertisers; ids new in this catalogue get fresh indices after the old ones. Advertisers
  new in the catalogue get their campaign when the server starts (:func:`genads.serve.engine.seed_campaigns`);
  ads new for an advertiser that already has campaigns are listed in the migration record, not enrolled
  behind the advertiser's back; ads gone from the catalogue stay in their campaigns and are simply not served.
* ``discard``: the old state is deleted with the old bundle (an explicit choice, for a fresh deployment).

Every keep appends one line to ``state/migrations.jsonl`` (when, which model replaced which, id and catalogue
changes), so an operator can see what a redeploy changed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genads.data.vocab import ID_KINDS, MAX_ID, IdVocabulary

STATE_DIR = "state"
MIGRATIONS = "migrations.jsonl"
STATE_POLICIES = ("refuse", "keep", "discard")


class StateExistsError(FileExistsError):
    """The export target is a bundle with deployment state and no policy for it was given."""


def has_state(bundle: str | Path) -> bool:
    """True when ``bundle/state`` exists and holds anything."""
    state = Path(bundle) / STATE_DIR
    return state.is_dir() and any(state.iterdir())


def check_state_policy(out: str | Path, policy: str) -> None:
    """Refuse (before any work) to overwrite a bundle whose ``state/`` would otherwise be lost.

    Raises:
        ValueError: an unknown policy.
        StateExistsError: ``out`` has a non-empty ``state/`` and ``policy`` is "refuse".
    """
    if policy not in STATE_POLICIES:
        raise ValueError(f"state policy {policy!r} must be one of {STATE_POLICIES}")
    if policy == "refuse" and has_state(out):
        state = Path(out) / STATE_DIR
        held = ", ".join(sorted(p.name for p in state.iterdir()))
        raise StateExistsError(
            f"{state} holds this deployment's state ({held}): the spend ledger, keys, token secret and served log. "
            "Pass --keep-state to carry it into the new bundle (ids are aligned so campaigns, spend and keys still "
            "apply), or --discard-state to delete it with the old bundle.")


@dataclass
class IdAlignment:
    """The new bundle's vocabulary re-indexed so the old bundle's ids keep their indices."""

    vocab: IdVocabulary
    remap: dict[str, dict[int, int]] = field(default_factory=dict)
    """kind -> {index in the new dataset's vocabulary: index in the aligned one}, only where they differ."""

    def apply(self, kind: str, values: np.ndarray) -> np.ndarray:
        """Indices of ``kind`` as the new dataset numbered them -> the aligned indices (integer ids unchanged)."""
        table = self.remap.get(kind)
        values = np.asarray(values, dtype=np.int64)
        if not table:
            return values
        return np.fromiter((table.get(int(v), int(v)) for v in values), dtype=np.int64, count=len(values))


def align_ids(new: IdVocabulary, old: IdVocabulary) -> IdAlignment:
    """Keep every id of ``old`` at its index; append the ids only ``new`` has, in ``new``'s order."""
    aligned = IdVocabulary()
    remap: dict[str, dict[int, int]] = {}
    for kind in ID_KINDS:
        old_ids = [str(old.label(kind, MAX_ID + k)) for k in range(old.size(kind))]
        aligned.encode(kind, old_ids)
        new_ids = [str(new.label(kind, MAX_ID + k)) for k in range(new.size(kind))]
        target = aligned.encode(kind, new_ids)
        moved = {MAX_ID + k: int(t) for k, t in enumerate(target.tolist()) if MAX_ID + k != int(t)}
        if moved:
            remap[kind] = moved
    return IdAlignment(aligned, remap)


def catalogue_changes(old_ads: pd.DataFrame, new_ads: pd.DataFrame, vocab: IdVocabulary) -> dict:
    """What a redeploy changes in the served catalogue, in the user's ids (``new_ads`` already aligned)."""
    old_set, new_set = set(old_ads["ad_id"].astype(np.int64).tolist()), set(new_ads["ad_id"].astype(np.int64).tolist())
    old_adv = set(old_ads["advertiser_id"].astype(np.int64).tolist())
    added = new_ads[new_ads["ad_id"].isin(sorted(new_set - old_set))]
    new_of_known = added[added["advertiser_id"].isin(sorted(old_adv))]
    label = lambda kind, xs: [vocab.label(kind, int(x)) for x in xs]  # noqa: E731
    return {
        "ads_added": len(new_set - old_set),
        "ads_removed": len(old_set - new_set),
        "advertisers_added": label("advertiser", sorted(set(new_ads["advertiser_id"].astype(np.int64)) - old_adv)),
        "ads_added_to_known_advertisers": label("ad", new_of_known["ad_id"].tolist()[:1000]),
        "ads_removed_list": label("ad", sorted(old_set - new_set)[:1000]),
    }


def read_old_bundle(out: Path) -> tuple[IdVocabulary, pd.DataFrame | None]:
    """The vocabulary and ads of the bundle being replaced (empty / None where it has none)."""
    vocab = IdVocabulary.load(out) if out.is_dir() else IdVocabulary()
    ads = pd.read_parquet(out / "ads.parquet", columns=["ad_id", "advertiser_id"]) if (out / "ads.parquet").is_file() else None
    return vocab, ads


def record_migration(state: Path, record: dict) -> None:
    """Append one line to ``state/migrations.jsonl`` (flushed and synced: the operator's audit trail)."""
    line = json.dumps({"at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **record}, default=str)
    fd = os.open(state / MIGRATIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def move_state(old_bundle: Path, new_folder: Path) -> Path | None:
    """Rename ``old_bundle/state`` to ``new_folder/state`` (same file system: atomic, nothing copied)."""
    src = old_bundle / STATE_DIR
    if not src.is_dir():
        return None
    dst = new_folder / STATE_DIR
    src.rename(dst)
    return dst


def restore_state(new_folder: Path, old_bundle: Path) -> None:
    """Undo :func:`move_state` after a failed swap, so a failed export loses nothing stored."""
    src = new_folder / STATE_DIR
    if src.is_dir() and not (old_bundle / STATE_DIR).exists() and old_bundle.is_dir():
        src.rename(old_bundle / STATE_DIR)
