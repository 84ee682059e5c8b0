"""The generator families, in one registry: the only place that knows which family a run, a model or a bundle is.

Two families generate ads:

- ``"sid"``: Semantic IDs + trie-constrained (bid-aware) beam search (:class:`genads.slate.model.SlateModel`,
  :class:`genads.slate.recommender.SlateRecommender`).
- ``"parallel"``: parallel PQ codes + exact scoring of every live ad (:class:`genads.parallel.model.ParallelModel`,
  :class:`genads.parallel.recommender.ParallelRecommender`).

Every consumer (eval, recommend, export, serving, the reward pipeline) asks its :class:`Family` for what differs
(how a run loads, what its codes are, how candidates are decoded, which model class a bundle holds) instead of
branching on the family's name; ``tests/test_architecture.py`` checks that nothing outside this module does.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genads.decode.bidding import BidConfig
from genads.decode.candidates import Candidates, ExactCandidates, TrieCandidates
from genads.parallel.model import ParallelConfig, ParallelModel
from genads.parallel.recommender import ParallelRecommender
from genads.slate.model import SlateConfig, SlateModel
from genads.slate.recommender import SlateRecommender

CONFIG, WEIGHTS = "config.json", "model.safetensors"


@dataclass(frozen=True)
class Family(ABC):
    """What differs between the generator families (see the module docstring)."""

    name: str
    summary: str
    model_class: type
    config_class: type
    recommender_class: type
    codes_name: str
    """What the per-item code table holds ("semantic ids" or "pq codes"; a bundle's manifest says it)."""
    codes_from_tokenizer: bool
    """Whether training needs the codes of a ``genads tokenize`` folder (else the family makes its own)."""

    # --- runs --------------------------------------------------------------------------------------------------
    @abstractmethod
    def load_recommender(self, run: Path, cfg: dict, split) -> SlateRecommender | ParallelRecommender:
        """The run's recommender with its best weights (the final model.safetensors, else the best checkpoint)."""
        ...

    @abstractmethod
    def codes(self, rec) -> np.ndarray:
        """(n_items + 1, L) codes of every item of a recommender: its SIDs or its parallel codes."""
        ...

    def export_beam(self, rec, beam: int) -> int:
        """The beam width a bundle of ``rec`` records (at least ``beam``)."""
        return beam

    @abstractmethod
    def slate(self, rec, history: np.ndarray, k: int, users: np.ndarray | None = None):
        """The best ``k`` ads per history row (a :class:`genads.decode.beam.Slate`)."""
        ...

    @abstractmethod
    def logprob_of(self, rec, history: np.ndarray, items: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        ...

    def uses_users(self, rec) -> bool:
        """Whether the model reads a user token (then :meth:`slate` wants ``users``)."""
        return False

    # --- decoding ----------------------------------------------------------------------------------------------
    @abstractmethod
    def generator(self, rec):
        """``rec`` as the reward pipeline's :class:`genads.reward.pipeline.PoolGenerator` (pools and scores)."""
        ...

    @abstractmethod
    def candidates(self, model, codes: np.ndarray, *, beam: int, bid_alpha: float, bid_beta: float,
                   preselect=None, preselect_min_ads: int = 0) -> Candidates:
        """An empty live set of this family's candidates (ads are added as their campaigns go live)."""
        ...


class _Sid(Family):
    def load_recommender(self, run, cfg, split):
        from genads.runs import aligned_sids
        from genads.slate.train import TrainConfig

        sids = aligned_sids(Path(cfg["sids"]), split)
        weights = run / WEIGHTS if (run / WEIGHTS).is_file() else run / "checkpoint" / WEIGHTS
        return SlateRecommender.load(weights, SlateConfig(**cfg["model"]), TrainConfig(**cfg["train"]), sids)

    def codes(self, rec):
        return rec.sids

    def export_beam(self, rec, beam):
        return max(rec.train.beam, beam)

    def slate(self, rec, history, k, users=None):
        return rec.slate(history, k, users=users, beam=max(rec.train.beam, k))

    def logprob_of(self, rec, history, items, users=None):
        return rec.logprob_of(history, items, users=users)

    def uses_users(self, rec):
        return bool(rec.config.user_buckets)

    def generator(self, rec):
        from genads.reward.pipeline import BeamGenerator

        return BeamGenerator(rec.model, rec.trie, rec.sids)

    def candidates(self, model, codes, *, beam, bid_alpha, bid_beta, preselect=None, preselect_min_ads=0):
        return TrieCandidates(model, codes, beam, BidConfig(alpha=bid_alpha, beta=bid_beta))


class _Parallel(Family):
    def load_recommender(self, run, cfg, split):
        weights = run / WEIGHTS if (run / WEIGHTS).is_file() else run / "checkpoint" / "best.safetensors"
        return ParallelRecommender.load(run, weights=weights)

    def codes(self, rec):
        return rec.item_codes

    def slate(self, rec, history, k, users=None):
        return rec.slate(history, k)

    def logprob_of(self, rec, history, items, users=None):
        return rec.logprob_of(history, items)

    def generator(self, rec):
        return rec  # pools by exact scoring of every live ad (per-ad bids, no prefix aggregate)

    def candidates(self, model, codes, *, beam, bid_alpha, bid_beta, preselect=None, preselect_min_ads=0):
        bid = BidConfig(alpha=bid_alpha, beta=bid_beta) if bid_alpha > 0 else None
        return ExactCandidates(model, codes, bid, preselect=preselect, preselect_min_ads=preselect_min_ads)


FAMILIES: dict[str, Family] = {
    "sid": _Sid("sid", "Semantic IDs + trie-constrained beam search", SlateModel, SlateConfig, SlateRecommender,
                "semantic ids", codes_from_tokenizer=True),
    "parallel": _Parallel("parallel", "parallel PQ codes + exact scoring of every live ad", ParallelModel,
                          ParallelConfig, ParallelRecommender, "pq codes",
                          codes_from_tokenizer=False),
}
DEFAULT = "sid"
"""Runs and bundles from before the parallel family name none: they are SID ones."""


def family(name: str, where: str = "family") -> Family:
    """The family called ``name``; a ValueError naming ``where`` (a file, a flag) for any other name."""
    if name not in FAMILIES:
        raise ValueError(f"{where}: family {name!r} must be one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of(obj: object) -> Family:
    """The family of a model or a recommender."""
    for fam in FAMILIES.values():
        if isinstance(obj, (fam.model_class, fam.recommender_class)):
            return fam
    raise TypeError(f"{type(obj).__name__} is not a generator of any family ({sorted(FAMILIES)})")


def run_family(run: Path) -> Family:
    """The family of a run folder of ``genads train`` (its config.json)."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run} a run folder from `genads train`?")
    return family(json.loads(path.read_text()).get("family", DEFAULT), str(path))


def require(run: Path, name: str, flag: str) -> None:
    """A ValueError naming ``flag`` unless the run folder ``run`` is of the family ``name``."""
    found = run_family(run)
    if found is not family(name):
        raise ValueError(f"{flag} {run} is a {found.name} run: train with --family {found.name}")
