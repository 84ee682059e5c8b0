"""The simulation's configuration: one typed tree of frozen dataclasses, stored as plain YAML values.

``from_dict(SimConfig, data)`` builds it from nested dicts (what ``yaml.safe_load`` returns) and
names the offending key on error; ``to_dict`` is its inverse, so ``from_dict(SimConfig,
to_dict(cfg)) == cfg``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genads.baselines.sasrec import SASRecConfig
from genads.decode.bidding import BidConfig
from genads.market.audit import AuditConfig
from genads.market.bidders import BidderConfig
from genads.market.cascade import CascadeConfig
from genads.market.e2e import EndToEndConfig
from genads.market.engine import EpisodeConfig
from genads.market.logs import LogConfig
from genads.market.ranker import RankerConfig
from genads.market.world import WorldConfig
from genads.market.world2 import World2Config
from genads.slate.model import SlateConfig
from genads.slate.train import TrainConfig
from genads.tokenize.rq_kmeans import RQKMeansConfig

VARIANTS = ("cascade", "e2e", "e2e_mean_bid", "e2e_gsp", "e2e_no_bid", "e2e_din_pctr", "gen_retrieval",
            "cascade_oracle", "e2e_oracle")
"""Pipelines a run can compare (:data:`genads.market.variants.REGISTRY`): the cascade, genads end to end
(max token bid, learned payments) and its ablations: mean token bid, GSP prices on the same allocation,
no token-level bidding (alpha = 0), the end-to-end candidates ranked by the cascade's DIN pCTR with GSP
prices; the ladder's generated retrieval rung; and the oracle rows (true CTR as pCTR)."""
MARKET_NAMES = ("budget_bound", "unconstrained")


@dataclass(frozen=True)
class SimConfig:
    """Everything ``genads simulate`` runs."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """One market, log, training run and episode per seed; figures get confidence intervals over seeds."""
    variants: tuple[str, ...] = VARIANTS
    world: WorldConfig = field(default_factory=WorldConfig)
    logs: LogConfig = field(default_factory=LogConfig)
    bidders: BidderConfig = field(default_factory=BidderConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    e2e: EndToEndConfig = field(default_factory=EndToEndConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    markets: tuple[str, ...] = ("budget_bound",)
    """Markets served with the same trained pipelines: "budget_bound" (budgets as drawn) and/or
    "unconstrained" (budgets x100)."""
    impression_holdout: float = 0.1
    """Share of the logged requests (the last ones) held out of pCTR training, where both pCTR models are scored."""
    audit_user_share: float = 0.2
    """Share of users whose auctions form the held-out payment audit set (the network trains on the others')."""
    page_world: World2Config | None = None
    """The second world's page model (MNL page choice, creatives; :class:`genads.market.world2.PageChoiceWorld`)
    instead of ``world.click_model``; None (default): the first worlds, unchanged."""

    def __post_init__(self) -> None:
        if not self.markets or set(self.markets) - set(MARKET_NAMES) or len(set(self.markets)) != len(self.markets):
            raise ValueError(f"markets={list(self.markets)} must list distinct names from {list(MARKET_NAMES)}")
        if not 0 < self.impression_holdout < 1 or not 0 < self.audit_user_share < 1:
            raise ValueError(f"impression_holdout={self.impression_holdout} and audit_user_share="
                             f"{self.audit_user_share} must be in (0, 1)")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown or "cascade" not in self.variants or "e2e" not in self.variants:
            raise ValueError(f"variants={list(self.variants)} must include 'cascade' and 'e2e' and only {list(VARIANTS)}")
        if self.cascade.candidates != self.e2e.candidates:
            raise ValueError(f"cascade.candidates={self.cascade.candidates} must equal e2e.candidates="
                             f"{self.e2e.candidates} (both auctions see the same number of bidders)")
        if self.page_world is not None:
            self.page_world.check(self.world)
        if self.e2e.candidates <= self.world.ad_load:
            raise ValueError(f"e2e.candidates={self.e2e.candidates} must exceed world.ad_load={self.world.ad_load}")


NESTED = (SimConfig, WorldConfig, LogConfig, BidderConfig, EpisodeConfig, CascadeConfig, EndToEndConfig, AuditConfig,
          SASRecConfig, RankerConfig, RQKMeansConfig, SlateConfig, TrainConfig, BidConfig)


def to_dict(cfg: Any) -> Any:
    """Plain values (dicts, lists, numbers, strings) of a config tree."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple):
        return [to_dict(v) for v in cfg]
    return cfg


def _convert(tp: Any, value: Any, path: str) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        return tuple(_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType) and value is not None:
        return _convert(next(a for a in typing.get_args(tp) if a is not type(None)), value, path)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type, data: Any, path: str = "config") -> Any:
    """Build dataclass ``cls`` from nested dicts; unknown keys and bad values raise ValueError naming the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


def load_config(path: str | Path, seeds: str | None = None) -> SimConfig:
    """A :class:`SimConfig` from a YAML file (keys left out keep their defaults); ``configs/NAME.yaml`` falls
    back to the packaged config of that name (:func:`genads.bundled.config_path`). ``seeds``: "1,2,3" overrides
    the file's seeds."""
    import yaml

    from genads.bundled import config_path

    try:
        path = config_path(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--config: {e}") from None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from e
    cfg = from_dict(SimConfig, data, path=str(path))
    if seeds:
        cfg = dataclasses.replace(cfg, seeds=tuple(int(s) for s in seeds.split(",") if s))
    return cfg
