"""A synthetic data set in the TencentGR / TAAC 2025 layout, of any size (the real one cannot be downloaded here).

Writes, into one folder:

* ``seq.jsonl``: one user per line, a JSON array of records ``[user_id, item_id, user_feat, item_feat,
  action_type, timestamp]``; each line starts with a user-profile record (``item_id`` null, ``user_feat``
  set), then the user's events in time order (``action_type`` 0/1/2 = impression/click/conversion,
  ``item_feat`` the item's features as in the item table);
* ``item_feat_dict.json``: ``{item_id: {feature_id: value}}`` (feature ``"101"`` is the advertiser);
* ``creative_emb/emb_{feature}_{dim}/part-00000.json``: the multimodal embeddings, JSON lines
  ``{"anonymous_cid": item_id, "emb": [floats]}``, one folder per embedding feature id.

Users prefer a latent topic; an item's topic drives its category feature and its embedding (topic
centre + noise), so embeddings carry signal a tokenizer can use. Written in blocks: memory does not
grow with the number of users. Seeded: the same arguments write the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ADVERTISER_FEATURE = "101"


@dataclass(frozen=True)
class SynthConfig:
    users: int = 1000
    items: int = 500
    advertisers: int = 40
    topics: int = 12
    events_per_user: tuple[int, int] = (5, 30)
    emb_features: tuple[tuple[str, int], ...] = (("81", 32),)
    """(feature id, dimension) of each multimodal embedding file."""
    click_rate: float = 0.3
    conversion_rate: float = 0.05
    seed: int = 0


def write_tencentgr(out: str | Path, config: SynthConfig | None = None, block: int = 10_000) -> Path:
    """Write the data set into ``out``; returns the path of seq.jsonl."""
    cfg = config or SynthConfig()
    lo, hi = cfg.events_per_user
    if cfg.users < 1 or cfg.items < cfg.topics or not 1 <= lo <= hi:
        raise ValueError(f"{cfg}: need users >= 1, items >= topics, 1 <= events_per_user[0] <= [1]")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    item_ids = np.sort(rng.choice(np.arange(1, 20 * cfg.items), size=cfg.items, replace=False))
    topic = rng.integers(cfg.topics, size=cfg.items)
    advertiser = rng.integers(cfg.advertisers, size=cfg.items)
    feats = {int(i): {"100": int(t), ADVERTISER_FEATURE: int(a), "102": int(rng.integers(50))}
             for i, t, a in zip(item_ids, topic, advertiser, strict=True)}
    _atomic_json(out / "item_feat_dict.json", {str(k): v for k, v in feats.items()})
    for fid, dim in cfg.emb_features:
        centres = rng.normal(size=(cfg.topics, dim))
        emb = centres[topic] + 0.3 * rng.normal(size=(cfg.items, dim))
        folder = out / "creative_emb" / f"emb_{fid}_{dim}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"anonymous_cid": int(i), "emb": [round(float(x), 5) for x in e]})
                 for i, e in zip(item_ids, emb, strict=True)]
        _atomic_text(folder / "part-00000.json", "\n".join(lines) + "\n")
    by_topic = [np.flatnonzero(topic == t) for t in range(cfg.topics)]
    popularity = 1.0 / np.arange(1, cfg.items + 1) ** 0.7
    seq = out / "seq.jsonl"
    tmp = seq.with_name(f".{seq.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, cfg.users, block):
            lines = []
            for u in range(start + 1, min(cfg.users, start + block) + 1):
                own = by_topic[int(rng.integers(cfg.topics))]
                n = int(rng.integers(lo, hi + 1))
                mine = rng.random(n) < 0.8
                picks = np.where(mine, own[rng.integers(len(own), size=n)] if len(own) else 0,
                                 rng.choice(cfg.items, size=n, p=popularity / popularity.sum()))
                ts = 1_746_000_000 + np.cumsum(rng.integers(5, 3600, size=n))
                r = rng.random(n)
                action = np.where(r < cfg.conversion_rate, 2, np.where(r < cfg.click_rate, 1, 0))
                records = [[u, None, {"103": int(rng.integers(2)), "104": int(rng.integers(8))}, None, None, None]]
                records += [[u, int(item_ids[p]), None, feats[int(item_ids[p])], int(a), int(t)]
                            for p, a, t in zip(picks, action, ts, strict=True)]
                lines.append(json.dumps(records, separators=(",", ":")))
            f.write("\n".join(lines) + "\n")
    tmp.replace(seq)
    return seq


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _atomic_json(path: Path, obj) -> None:
    _atomic_text(path, json.dumps(obj, separators=(",", ":")))
