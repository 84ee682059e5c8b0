"""Leave-one-out splits, as in SASRec, S3-Rec and TIGER.

Per user, positive events (clicks and conversions by default) in time order: the last item is the
test target, the second last the validation target, the rest is training. The test history is
everything before the test item (the validation item included); histories keep only the last
``max_history`` items. Users with fewer than ``min_events`` positives only train.

Items are indexed 1..N in ad_id order over the whole catalogue (0 is padding), so models rank every
ad in the catalogue, not only the ones seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genads.data.dataset import Dataset
from genads.data.schema import ACTION_CODE

PAD = 0


@dataclass(frozen=True)
class SplitConfig:
    """How events become sequences."""

    max_history: int = 50
    """Histories keep only the last ``max_history`` items (DESIGN: 50)."""
    positive_actions: tuple[str, ...] = ("click", "conversion")
    """Actions that count as an interaction in a sequence."""
    min_events: int = 3
    """Users with fewer positive events appear only in training."""

    def __post_init__(self) -> None:
        if self.max_history < 1:
            raise ValueError(f"max_history={self.max_history} must be >= 1")
        unknown = set(self.positive_actions) - set(ACTION_CODE)
        if unknown:
            raise ValueError(f"positive_actions has unknown action(s) {sorted(unknown)}; known: {list(ACTION_CODE)}")
        if self.min_events < 3:
            raise ValueError(f"min_events={self.min_events} must be >= 3 (train + validation + test)")


@dataclass
class EvalSet:
    """Next-item prediction cases: ``history`` (n, L) left-padded item indices -> ``target`` (n,)."""

    users: np.ndarray
    history: np.ndarray
    target: np.ndarray
    target_action: np.ndarray | None = None
    """Action code (ACTIONS) of each target event, for action-weighted scores (TAAC); None if unknown."""

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class SequenceSplit:
    """Sequences of item indices; ``item_ids[i]`` is the ad_id of item index i (index 0 = padding)."""

    item_ids: np.ndarray
    users: np.ndarray
    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    config: SplitConfig

    @property
    def n_items(self) -> int:
        """Number of real items (indices 1..n_items)."""
        return len(self.item_ids) - 1

    def index_of(self, ad_ids: np.ndarray) -> np.ndarray:
        """ad_id -> item index (0 where unknown)."""
        pos = np.searchsorted(self.item_ids[1:], ad_ids)
        pos = np.clip(pos, 0, self.n_items - 1)
        return np.where(self.item_ids[1:][pos] == ad_ids, pos + 1, PAD)


def left_pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """Stack sequences into (n, length), keeping the last ``length`` items, padding on the left."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for i, seq in enumerate(sequences):
        tail = seq[-length:]
        if len(tail):
            out[i, length - len(tail):] = tail
    return out


def user_sequences(dataset: Dataset, config: SplitConfig) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(item_ids, users, per-user item-index sequences in time order)."""
    item_ids, users, seqs, _ = _sequences(dataset, config)
    return item_ids, users, seqs


def _sequences(dataset: Dataset, config: SplitConfig) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """user_sequences plus the action code of each event of each sequence."""
    item_ids = np.concatenate([[-1], np.sort(dataset.catalogue["ad_id"].to_numpy())]).astype(np.int64)
    codes = [ACTION_CODE[a] for a in config.positive_actions]
    ev = dataset.events[dataset.events["action"].isin(codes)]
    ev = ev.sort_values(["user_id", "timestamp"], kind="stable")  # stable: keeps input order on ties
    items = np.searchsorted(item_ids[1:], ev["ad_id"].to_numpy()) + 1
    actions = ev["action"].to_numpy()
    users, starts = np.unique(ev["user_id"].to_numpy(), return_index=True)
    bounds = np.append(starts, len(ev))
    seqs = [items[bounds[i]:bounds[i + 1]] for i in range(len(users))]
    acts = [actions[bounds[i]:bounds[i + 1]] for i in range(len(users))]
    return item_ids, users, seqs, acts


def training_events(dataset: Dataset, config: SplitConfig | None = None) -> pd.DataFrame:
    """The event log as far as training may see it under :func:`leave_one_out` with ``config``.

    For every user with a validation and a test case, the validation event, the test event and every
    later event of that user (impressions included) are dropped; users who only train keep all their
    events. Everything that enters a tokenizer, an encoder or a model (co-occurrence pairs,
    collaborative vectors, popularity) is built from this frame, never from ``dataset.events``.

    Returns:
        The kept rows of ``dataset.events``, in their original order.
    """
    config = config or SplitConfig()
    events = dataset.events.reset_index(drop=True)
    ordered = events.sort_values(["user_id", "timestamp"], kind="stable")  # the order of user_sequences
    codes = [ACTION_CODE[a] for a in config.positive_actions]
    positive = pd.Series(ordered["action"].isin(codes).to_numpy().astype(np.int64))
    users = ordered["user_id"].to_numpy()
    seen = positive.groupby(users).cumsum().to_numpy()  # positives up to and including this row
    total = positive.groupby(users).transform("sum").to_numpy()
    held_out = (total >= config.min_events) & (seen >= total - 1)  # the validation positive and after
    keep = np.ones(len(events), dtype=bool)
    keep[ordered.index.to_numpy()[held_out]] = False
    return dataset.events[keep]


def leave_one_out(dataset: Dataset, config: SplitConfig | None = None) -> SequenceSplit:
    """Split a dataset into train sequences and validation/test next-item cases."""
    config = config or SplitConfig()
    item_ids, users, seqs, acts = _sequences(dataset, config)
    if not seqs:
        raise ValueError(f"{dataset.name}: no events with actions {config.positive_actions}: nothing to split")
    eligible = np.array([len(s) >= config.min_events for s in seqs])
    train = [s[:-2] if ok else s for s, ok in zip(seqs, eligible, strict=True)]
    ev_users = users[eligible]
    ev_seqs = [s for s, ok in zip(seqs, eligible, strict=True) if ok]
    ev_acts = [a for a, ok in zip(acts, eligible, strict=True) if ok]
    valid = EvalSet(ev_users, left_pad([s[:-2] for s in ev_seqs], config.max_history),
                    np.array([s[-2] for s in ev_seqs], dtype=np.int64), np.array([a[-2] for a in ev_acts], dtype=np.int8))
    test = EvalSet(ev_users, left_pad([s[:-1] for s in ev_seqs], config.max_history),
                   np.array([s[-1] for s in ev_seqs], dtype=np.int64), np.array([a[-1] for a in ev_acts], dtype=np.int8))
    return SequenceSplit(item_ids, users, train, valid, test, config)


def split_stats(split: SequenceSplit) -> dict[str, float]:
    """Counts and lengths for reports."""
    lengths = np.array([len(s) for s in split.train]) + np.isin(split.users, split.test.users) * 2
    return {
        "users": len(split.users),
        "items": split.n_items,
        "eval_users": len(split.test),
        "interactions": int(lengths.sum()),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "density": float(lengths.sum() / (len(split.users) * max(split.n_items, 1))),
    }


def as_frame(eval_set: EvalSet, split: SequenceSplit) -> pd.DataFrame:
    """Eval cases as a table of ad ids (for inspection and export)."""
    return pd.DataFrame({
        "user_id": eval_set.users,
        "history": [split.item_ids[h[h > 0]].tolist() for h in eval_set.history],
        "target": split.item_ids[eval_set.target],
    })
