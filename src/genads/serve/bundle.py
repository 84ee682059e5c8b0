"""The serving bundle: everything ``genads serve`` loads, in one folder, no pickles.

::

    manifest.json          format + version, model family ("sid" or "parallel"), slate config and beam
                           (sid) or parallel config (parallel), payment-net config (or null),
                           reward model (or null), creative settings, counts
    ads.parquet            one row per ad: item (row of the codes), ad_id, advertiser_id, title, brand,
                           bid, budget, pctr (prior click rate), creative_title
    sids.safetensors       "sids": (n_items + 1, L) int64 codes by item index (row 0 = padding): Semantic IDs,
                           or for the parallel family the (n_items + 1, m) PQ codes (manifest "codes" says which;
                           the file keeps its name so that older servers read newer bundles)
    slate.safetensors      the generator's weights (SlateModel, or ParallelModel for the parallel family)
    payment.safetensors    the learned payment network's weights (optional)
    histories.safetensors  "users": (U,) int64 user ids, "items": (U, max_items) left-padded histories
    reward/                the slate reward model, in genads.reward's own format (optional)
    ids.parquet            the dataset's id vocabulary (string user/ad/advertiser ids; absent for integer ids)

``manifest.json`` also holds ``model_version``: the first 16 hex digits of the sha256 of
slate.safetensors, which the served log records with every slate.

The catalogue columns (bid, budget, advertiser) seed the ledger's campaigns on first start;
after that the ledger is the truth. :func:`write_bundle` writes atomically (a temporary folder
renamed into place).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from genads.auction.payment_net import SAVED_DEFAULTS as PAYMENT_SAVED_DEFAULTS
from genads.auction.payment_net import PaymentNet, PaymentNetConfig
from genads.data.dataset import replace_dir
from genads.data.vocab import IdVocabulary
from genads.families import DEFAULT as DEFAULT_FAMILY
from genads.families import family, family_of
from genads.parallel.model import ParallelModel
from genads.serve.redeploy import (
    STATE_DIR,
    check_state_policy,
    has_state,
    move_state,
    record_migration,
    restore_state,
)
from genads.slate.checkpoint import load_weights, save_weights
from genads.slate.model import SlateModel

FORMAT, VERSION = "genads-serve-bundle", 1
AD_COLUMNS = ("item", "ad_id", "advertiser_id", "title", "brand", "bid", "budget", "pctr", "creative_title")


@dataclass
class Bundle:
    """A loaded bundle (see the module docstring)."""

    path: Path
    model: SlateModel | ParallelModel
    codes: np.ndarray
    """(n_items + 1, L) int64 by item index: Semantic IDs (family "sid") or parallel PQ codes ("parallel");
    ``manifest["codes"]`` says which (bundles from before it: the family's)."""
    ads: pd.DataFrame
    """AD_COLUMNS, one row per ad, ``item`` in 1..n_items."""
    beam: int
    payment_net: PaymentNet | None = None
    reward: Any | None = None
    """A slate reward model (genads.reward), when the bundle has one."""
    histories: dict[int, np.ndarray] | None = None
    """user_id -> (max_items,) left-padded item history."""
    manifest: dict | None = None
    vocab: IdVocabulary | None = None
    """The dataset's id vocabulary (empty for integer ids): requests and responses speak the user's ids."""

    @property
    def model_version(self) -> str:
        return str((self.manifest or {}).get("model_version", "unknown"))

    @property
    def family(self) -> str:
        """"sid" (trie + beam search) or "parallel" (exact scoring over the live ads)."""
        return family_of(self.model).name


def _config(cls, data: dict, where: str):  # a frozen dataclass from JSON, naming the bad field
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} for {cls.__name__}")
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**data)


def write_bundle(out: str | Path, *, model: SlateModel | ParallelModel, codes: np.ndarray, ads: pd.DataFrame, beam: int,
                 payment_net: PaymentNet | None = None, histories: tuple[np.ndarray, np.ndarray] | None = None,
                 reward_dir: str | Path | None = None, vocab: IdVocabulary | None = None,
                 extra: dict | None = None, state: str = "refuse", migration: dict | None = None) -> Path:
    """Write a bundle folder (replacing ``out`` atomically).

    ``out/state`` (the deployment's ledger, keys, token secret and served log) is never lost silently:
    ``state="refuse"`` raises :class:`~genads.serve.redeploy.StateExistsError` before any work when ``out`` has
    one, ``"keep"`` moves it into the new bundle (``migration`` is appended to its ``migrations.jsonl``), and
    ``"discard"`` deletes it with the old bundle. A failed write puts the old bundle and its state back.

    Args:
        ads: AD_COLUMNS; ``item`` indexes ``codes`` rows.
        histories: (user ids (U,), item histories (U, m) left-padded) for requests by user_id.
        reward_dir: a saved reward model folder to copy in.
        vocab: the dataset's id vocabulary (written as ids.parquet when it holds string ids).
    """
    out = Path(out)
    check_state_policy(out, state)
    missing = [c for c in AD_COLUMNS if c not in ads.columns]
    if missing:
        raise ValueError(f"ads table lacks column(s) {missing}")
    codes = np.asarray(codes, dtype=np.int64)
    if ads["item"].min() < 1 or ads["item"].max() >= len(codes):
        raise ValueError(f"ads.item must be in 1..{len(codes) - 1} (rows of codes)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_weights(model, tmp / "slate.safetensors")
        save_file({"sids": torch.from_numpy(codes)}, str(tmp / "sids.safetensors"))
        ads[list(AD_COLUMNS)].to_parquet(tmp / "ads.parquet", index=False)
        if payment_net is not None:
            save_weights(payment_net, tmp / "payment.safetensors")
        if histories is not None:
            users, items = (np.asarray(a, dtype=np.int64) for a in histories)
            save_file({"users": torch.from_numpy(users), "items": torch.from_numpy(items)}, str(tmp / "histories.safetensors"))
        if reward_dir is not None:
            shutil.copytree(reward_dir, tmp / "reward")
        if vocab is not None:
            vocab.save(tmp)
        manifest = {"format": FORMAT, "version": VERSION, "family": family_of(model).name,
                    "codes": {"kind": family_of(model).codes_name, "file": "sids.safetensors", "shape": list(codes.shape)},
                    "slate": {"config": asdict(model.config), "beam": int(beam)},
                    "payment": None if payment_net is None else {"config": asdict(payment_net.config)},
                    "reward": None if reward_dir is None else {"folder": "reward"},
                    "n_ads": len(ads), "n_users": 0 if histories is None else len(histories[0]),
                    "model_version": _sha256(tmp / "slate.safetensors")[:16], **(extra or {})}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o755)
        kept = state == "keep" and has_state(out)
        replaced = _old_version(out) if kept else None
        if kept:
            move_state(out, tmp)
        replace_dir(tmp, out)
        if kept:  # after the swap: the audit line says what happened, never what was only tried
            record_migration(out / STATE_DIR, {"model_version": manifest["model_version"],
                                               "replaced_model_version": replaced, **(migration or {})})
    except BaseException:
        restore_state(tmp, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_bundle(path: str | Path) -> Bundle:
    """Read a bundle written by :func:`write_bundle`; errors name the file and field."""
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise FileNotFoundError(f"{mf} not found: is {path} a serving bundle? (`make demo` writes runs/demo/serve)")
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{mf}: format/version {manifest.get('format')}/{manifest.get('version')}, "
                         f"expected {FORMAT}/{VERSION}")
    torch.manual_seed(0)
    fam = family(manifest.get("family", DEFAULT_FAMILY), f"{mf}")  # bundles from before the parallel family: SID
    model = fam.model_class(_config(fam.config_class, manifest["slate"]["config"], f"{mf}: slate.config"))
    load_weights(model, path / "slate.safetensors")
    model.eval()
    codes = load_file(str(path / "sids.safetensors"))["sids"].numpy()
    ads = pd.read_parquet(path / "ads.parquet")
    missing = [c for c in AD_COLUMNS if c not in ads.columns]
    if missing:
        raise ValueError(f"{path / 'ads.parquet'}: missing column(s) {missing}")
    net = None
    if manifest.get("payment"):
        net = PaymentNet(_config(PaymentNetConfig, {**PAYMENT_SAVED_DEFAULTS, **manifest["payment"]["config"]},
                                 f"{mf}: payment.config"))
        load_weights(net, path / "payment.safetensors")
        net.eval()
    histories = None
    if (path / "histories.safetensors").is_file():
        h = load_file(str(path / "histories.safetensors"))
        histories = dict(zip(h["users"].tolist(), h["items"].numpy(), strict=True))
    reward = _load_reward(path / "reward") if manifest.get("reward") else None
    manifest.setdefault("model_version", _sha256(path / "slate.safetensors")[:16])  # bundles from before it
    return Bundle(path, model, codes, ads, int(manifest["slate"]["beam"]), net, reward, histories, manifest,
                  IdVocabulary.load(path))


def _old_version(folder: Path) -> str | None:
    try:
        return json.loads((folder / "manifest.json").read_text()).get("model_version")
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_reward(folder: Path) -> Any:
    """The reward model in genads.reward's format (imported lazily: the bundle works without it)."""
    from genads.reward.model import load_reward_model  # optional part

    return load_reward_model(folder)[0]
