"""Runs of ``genads train`` as a library: the run format, and ``genads.load(run)`` for notebooks.

A run folder holds config.json (family, dataset, codes, architecture, training settings, seed), metrics.jsonl,
checkpoint/ and model.safetensors; a parallel run also its codes and codebook (see :mod:`genads.parallel.recommender`).
:func:`load_recommender` reads one back (either family); :func:`load` wraps it in a :class:`Run` that speaks
the user's own ids::

    import genads
    run = genads.load("runs/shop")
    run.recommend(user="u0003", k=5)                  # a DataFrame: rank, ad, score, title
    run.recommend(history=["ad-001", "ad-007"], k=5)  # any history, in the dataset's ad ids
    run.score(["ad-002", "ad-009"], user="u0003")     # exact log P(ad | history) of given ads

The CLI (``genads recommend``) and the serving export call these functions, never the reverse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genads import families
from genads.data.dataset import Dataset, load_dataset
from genads.data.paths import resolve_in_run
from genads.data.split import SequenceSplit, SplitConfig, leave_one_out, user_sequences
from genads.parallel import ParallelRecommender
from genads.slate.recommender import SlateRecommender

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def aligned_sids(sids_dir: Path, split: SequenceSplit) -> np.ndarray:
    """(n_items + 1, L) SIDs by item index from ``sids_dir/sids.parquet`` (``genads tokenize``)."""
    path = Path(sids_dir) / "sids.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: make it with `genads tokenize DATASET --out {sids_dir}`")
    made = Path(sids_dir) / "metrics.json"
    if made.is_file() and "features_from" not in json.loads(made.read_text()):
        raise ValueError(f"{made}: these SIDs were made before tokenizer features came from training events only "
                         "(their co-occurrence features saw validation and test events); run `genads tokenize` again")
    table = pd.read_parquet(path)
    index = split.index_of(table["ad_id"].to_numpy())
    sids = np.stack(table["sid"].to_numpy()).astype(np.int64)
    missing = np.setdiff1d(np.arange(1, split.n_items + 1), index)
    if len(missing):
        raise ValueError(f"{path}: {len(missing)} catalogue ads have no SID (e.g. ad {split.item_ids[missing[0]]})")
    out = np.zeros((split.n_items + 1, sids.shape[1]), dtype=np.int64)
    out[index[index > 0]] = sids[index > 0]
    return out


def read_config(run: Path) -> dict:
    """A run's config.json with its dataset and SID paths resolved (stored relative to the run folder)."""
    cfg = json.loads((run / CONFIG).read_text())
    for key in ("dataset", "sids"):
        if cfg.get(key):
            cfg[key] = str(resolve_in_run(cfg[key], run))
    return cfg


def split_config(cfg: dict) -> SplitConfig:
    """The split a run was trained on: its history cap and the actions that count as positives (runs from
    before ``--positive-actions`` used clicks and conversions)."""
    actions = tuple(cfg.get("positive_actions", SplitConfig().positive_actions))
    return SplitConfig(max_history=cfg["max_history"], positive_actions=actions)


def parse_positive_actions(text: str) -> tuple[str, ...]:
    """``"click,conversion"`` -> ("click", "conversion"); unknown actions are an error naming them."""
    actions = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    SplitConfig(positive_actions=actions)  # validates
    if not actions:
        raise ValueError("--positive-actions: give at least one of impression, click, conversion")
    return actions


def load_run(run: Path) -> tuple[dict, SequenceSplit, np.ndarray]:
    if not (run / CONFIG).is_file():
        raise FileNotFoundError(f"{run / CONFIG} not found: is {run} a run folder from `genads train`?")
    cfg = read_config(run)
    dataset = load_dataset(cfg["dataset"])
    split = leave_one_out(dataset, split_config(cfg))
    return cfg, split, aligned_sids(Path(cfg["sids"]), split)


def load_recommender(run: Path) -> tuple[dict, SequenceSplit, SlateRecommender | ParallelRecommender]:
    """The run's config, split and recommender (either family), with the run's best weights."""
    fam = families.run_family(run)
    cfg = read_config(run)
    split = leave_one_out(load_dataset(cfg["dataset"]), split_config(cfg))
    return cfg, split, fam.load_recommender(run, cfg, split)


def run_family(run: Path) -> str:
    """The name of a run folder's family ("sid" or "parallel")."""
    return families.run_family(run).name


@dataclass
class Run:
    """A trained run, loaded with its dataset: recommendations and scores in the dataset's own ids."""

    path: Path
    config: dict
    dataset: Dataset
    split: SequenceSplit
    recommender: SlateRecommender | ParallelRecommender

    @property
    def family(self) -> str:
        """"sid" (Semantic IDs + beam search) or "parallel" (parallel codes + exact scoring)."""
        return families.family_of(self.recommender).name

    @property
    def codes(self) -> np.ndarray:
        """(n_items + 1, L) the codes of every item: SIDs or parallel codes."""
        return families.family_of(self.recommender).codes(self.recommender)

    def __post_init__(self) -> None:
        _, self._users, self._seqs = user_sequences(self.dataset, self.split.config)
        self._titles = self.dataset.titles()

    # --- ids ----------------------------------------------------------------------------------------------
    def users(self) -> list[int | str]:
        """Every user with events, in the dataset's ids."""
        return self.dataset.vocab.labels("user", self._users)

    def history(self, user: int | str) -> list[int | str]:
        """A user's positive events (oldest first), in the dataset's ad ids; KeyError for an unknown user."""
        return self.dataset.vocab.labels("ad", self.split.item_ids[self._user_items(user)])

    def _user_items(self, user: int | str) -> np.ndarray:
        index = self.dataset.vocab.index_of("user", user)
        pos = np.searchsorted(self._users, index) if index is not None else len(self._users)
        if pos >= len(self._users) or self._users[pos] != index:
            raise KeyError(f"user {user!r} has no events in {self.config['dataset']}: pass history=[...] "
                           "(ads in the dataset's ids) to recommend for a new user")
        return self._seqs[pos]

    def _history_items(self, history: list[int | str]) -> np.ndarray:
        out = []
        for i, ad in enumerate(history):
            index = self.dataset.vocab.index_of("ad", ad)
            item = self.split.index_of(np.array([index if index is not None else -2], dtype=np.int64))[0]
            if item <= 0:
                raise KeyError(f"history[{i}] = {ad!r} is not an ad of {self.config['dataset']}")
            out.append(int(item))
        return np.asarray(out, dtype=np.int64)

    def _context(self, user: int | str | None, history: list[int | str] | None) -> tuple[np.ndarray, np.ndarray | None]:
        if (user is None) == (history is None):
            raise ValueError("give exactly one of user= (a user of the dataset) or history= (a list of ad ids)")
        items = self._user_items(user) if user is not None else self._history_items(list(history))
        m = self.recommender.config.max_items
        row = np.zeros((1, m), dtype=np.int64)
        tail = items[-m:]
        if len(tail):
            row[0, m - len(tail):] = tail
        users = None
        if families.family_of(self.recommender).uses_users(self.recommender):
            users = np.array([self.dataset.vocab.index_of("user", user) if user is not None else -1])
        return row, users

    # --- the model ----------------------------------------------------------------------------------------
    def recommend(self, user: int | str | None = None, history: list[int | str] | None = None, k: int = 10,
                  exclude_history: bool = False) -> pd.DataFrame:
        """The best ``k`` ads for a user of the dataset or for a history of ads, best first.

        Returns a DataFrame with columns rank, ad (the dataset's id), score (the model's log-probability of
        the ad; beam search for the SID family, exact over every ad for the parallel family) and title.
        ``exclude_history`` rules out the ads already in the history (the "history ruled out" protocol).
        """
        if k < 1:
            raise ValueError(f"k={k} must be >= 1")
        row, users = self._context(user, history)
        seen = set(row[row > 0].tolist()) if exclude_history else set()
        want = k + len(seen)
        slate = families.family_of(self.recommender).slate(self.recommender, row, want, users=users)
        rows = []
        for item, score in zip(slate.ads[0].tolist(), slate.scores[0].tolist(), strict=True):
            if item <= 0 or item in seen:
                continue
            ad = int(self.split.item_ids[item])
            rows.append({"rank": len(rows) + 1, "ad": self.dataset.vocab.label("ad", ad), "score": float(score),
                         "title": self._titles.get(ad, "")})
            if len(rows) == k:
                break
        return pd.DataFrame(rows, columns=["rank", "ad", "score", "title"])

    def score(self, ads: list[int | str], user: int | str | None = None,
              history: list[int | str] | None = None) -> pd.Series:
        """The model's log P(ad | history) of each given ad (the dataset's ids), for a user or a history."""
        row, users = self._context(user, history)
        items = self._history_items(list(ads))[None]
        logp = families.family_of(self.recommender).logprob_of(self.recommender, row, items, users=users)[0]
        return pd.Series(logp.astype(float), index=pd.Index(list(ads), name="ad"), name="logprob")


def load(run: str | Path) -> Run:
    """``genads.load(run)``: a run folder of ``genads train`` (either family) with its dataset, ready to use."""
    run = Path(run)
    cfg, split, rec = load_recommender(run)
    return Run(run, cfg, load_dataset(cfg["dataset"]), split, rec)
