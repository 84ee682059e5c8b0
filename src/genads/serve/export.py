"""Export a trained run as a serving bundle: ``genads export RUN --out BUNDLE`` and the demo's serve step.

:func:`export_bundle` turns loaded parts (a model of either family, its codes, the split it was
trained on, the dataset's catalogue and id vocabulary, an optional payment network and reward
model) into a bundle folder; :func:`export_run` loads those parts from a run folder made by
``genads train`` (``--family sid`` or ``parallel``) and calls it. The bundle is self-contained: the
dataset's id vocabulary (``ids.parquet``) travels with it, so the service answers in the user's ids.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genads.auction.simulate import popularity_pctr
from genads.data.split import SequenceSplit, left_pad
from genads.data.vocab import IdVocabulary
from genads.serve.bundle import write_bundle
from genads.serve.creatives import creative_titles
from genads.serve.redeploy import align_ids, catalogue_changes, check_state_policy, has_state, read_old_bundle

TITLE_SOURCES = ("catalogue", "generated")


@dataclass(frozen=True)
class ExportConfig:
    """What goes into a bundle beside the model."""

    beam: int = 10
    """Decoding beam width of SID bundles (at least the run's validation beam)."""
    pctr_low: float = 0.01
    pctr_high: float = 0.1
    """Range of the prior pCTR, growing with log(1 + training clicks) (genads.auction.simulate.popularity_pctr)."""
    titles: str = "catalogue"
    """The served title of each ad: "catalogue" (the advertiser's own; the default, as on every ad platform) or
    "generated" (opt-in: the creative part's selling-point title, the catalogue's where it writes nothing).
    An ad with an empty catalogue title gets the generated one either way."""

    def __post_init__(self) -> None:
        if self.titles not in TITLE_SOURCES:
            raise ValueError(f"titles {self.titles!r} must be one of {TITLE_SOURCES}")


def ads_table(catalogue: pd.DataFrame, split: SequenceSplit, pctr: np.ndarray, titles: str = "catalogue") -> pd.DataFrame:
    """The bundle's ads.parquet rows: catalogue ads that have an item index in the split.

    ``titles``: "catalogue" serves the advertiser's own title (generated only where it is empty), "generated"
    the creative part's title for every ad (see :class:`ExportConfig`).
    """
    cat = catalogue.reset_index(drop=True)
    item = split.index_of(cat["ad_id"].to_numpy())
    keep = item > 0
    cat = cat[keep].copy()
    cat["item"] = item[keep]
    cat["pctr"] = pctr[cat["item"].to_numpy()]
    own = cat["title"].fillna("").astype(str)
    blank = own.str.strip() == ""
    if titles == "generated":
        cat["creative_title"] = creative_titles(cat)
    else:
        cat["creative_title"] = own.to_numpy()
        if blank.any():  # nothing of the advertiser's to show: a generated title rather than an empty slot
            cat.loc[blank, "creative_title"] = creative_titles(cat[blank])
    return cat


def export_bundle(out: str | Path, *, model, codes: np.ndarray, split: SequenceSplit, catalogue: pd.DataFrame,
                  config: ExportConfig | None = None, payment_net=None, reward_dir: str | Path | None = None,
                  vocab: IdVocabulary | None = None, extra: dict | None = None, state: str = "refuse") -> Path:
    """Write a serving bundle at ``out`` (atomically) from a trained generator of either family.

    ``state``: what happens to ``out/state`` when ``out`` is a bundle that has served ("refuse", "keep",
    "discard"; see :mod:`genads.serve.redeploy`). With "keep" the new bundle's string ids are aligned to the
    old bundle's, so the kept ledger, keys and outstanding tokens still name the same ads and advertisers.

    Args:
        model: a SlateModel ("sid" family) or ParallelModel ("parallel").
        codes: (n_items + 1, L) SIDs or parallel codes by item index of ``split``.
        catalogue: the dataset's catalogue (bids, budgets, advertisers, titles).
        reward_dir: a saved slate reward model folder (genads.reward.model.save_reward_model) to include.
        vocab: the dataset's id vocabulary; the bundle answers in the user's ids with it.
    """
    config = config or ExportConfig()
    out = Path(out)
    check_state_policy(out, state)
    counts = np.bincount(np.concatenate(split.train) if len(split.train) else np.zeros(0, np.int64),
                         minlength=split.n_items + 1).astype(float)
    ads = ads_table(catalogue, split, popularity_pctr(counts, config.pctr_low, config.pctr_high), config.titles)
    users = np.asarray(split.users, dtype=np.int64)
    migration = None
    if state == "keep" and has_state(out):
        old_vocab, old_ads = read_old_bundle(out)
        aligned = align_ids(vocab or IdVocabulary(), old_vocab)
        ads["ad_id"] = aligned.apply("ad", ads["ad_id"].to_numpy())
        ads["advertiser_id"] = aligned.apply("advertiser", ads["advertiser_id"].to_numpy())
        users = aligned.apply("user", users)
        vocab = aligned.vocab
        migration = {"ids_realigned": {k: len(v) for k, v in aligned.remap.items()}}
        if old_ads is not None:
            migration["catalogue"] = catalogue_changes(old_ads, ads, vocab)
    histories = (users, left_pad(list(split.train), model.config.max_items))
    return write_bundle(out, model=model, codes=codes, ads=ads, beam=config.beam, payment_net=payment_net,
                        histories=histories, reward_dir=reward_dir, vocab=vocab, extra=extra, state=state,
                        migration=migration)


def export_run(run: str | Path, out: str | Path, *, payment: str | Path | None = None,
               reward: str | Path | None = None, config: ExportConfig | None = None, state: str = "refuse") -> Path:
    """``genads export``: the bundle of a run folder made by ``genads train`` (either family).

    Args:
        state: "refuse" / "keep" / "discard" an existing ``out/state`` (see :func:`export_bundle`); checked
            before the run is loaded.
        payment: a folder from ``genads auction train-payments`` (model.safetensors + config.json).
        reward: a folder from ``genads reward train``.
    """
    from genads.data.dataset import load_dataset
    from genads.families import family_of
    from genads.runs import load_recommender

    run = Path(run)
    check_state_policy(out, state)
    cfg, split, rec = load_recommender(run)
    dataset = load_dataset(cfg["dataset"])
    fam = family_of(rec)
    codes, beam = fam.codes(rec), fam.export_beam(rec, (config or ExportConfig()).beam)
    net = None
    if payment is not None:
        from genads.auction.payment_net import load_payment_net

        if not (Path(payment) / "config.json").is_file():
            raise FileNotFoundError(f"{Path(payment) / 'config.json'} not found: --payment takes a folder from "
                                    "`genads auction train-payments --out DIR`")
        net = load_payment_net(Path(payment))
        net.eval()
    if reward is not None and not Path(reward).is_dir():
        raise FileNotFoundError(f"--reward {reward}: not a folder (made by `genads reward train --out DIR`)")
    cfg_out = ExportConfig(**{**(config or ExportConfig()).__dict__, "beam": beam})
    with tempfile.TemporaryDirectory() as tmp:
        reward_dir = None
        if reward is not None:
            reward_dir = shutil.copytree(reward, Path(tmp) / "reward")
        return export_bundle(out, model=rec.model, codes=codes, split=split, catalogue=dataset.catalogue,
                             config=cfg_out, payment_net=net, reward_dir=reward_dir, vocab=dataset.vocab,
                             extra={"source": {"run": run.name, "dataset": Path(cfg["dataset"]).name}}, state=state)
