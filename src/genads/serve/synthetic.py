"""A synthetic serving bundle of any size (random SIDs or parallel codes, an untrained model): for tests and
load benchmarks.

Latency depends on the model's size, the number of live ads and the trie, not on trained weights,
so the load benchmark measures 12k and 100k ads this way; the tests use a tiny one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genads import families
from genads.auction.payment_net import PaymentNet, PaymentNetConfig
from genads.parallel.model import ParallelConfig, ParallelModel
from genads.serve.bundle import write_bundle
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.tokenize import disambiguate


def _random_sids(rng: np.random.Generator, n_ads: int, levels: int, codebook: int, preset: str):
    codes = rng.integers(0, codebook, size=(n_ads, levels))
    sids = np.zeros((n_ads + 1, levels + 1), dtype=np.int64)
    sids[1:] = disambiguate(codes)
    return sids, SlateModel(sized_for(PRESETS[preset], sids)).eval()


def _random_codes(rng: np.random.Generator, n_ads: int, n_codes: int, code_size: int, _preset: None):
    codes = np.zeros((n_ads + 1, n_codes), dtype=np.int64)
    codes[1:] = rng.integers(0, code_size, size=(n_ads, n_codes))
    return codes, ParallelModel(ParallelConfig(n_codes=n_codes, codebook_size=code_size, n_items=n_ads)).eval()


_RANDOM = {"sid": _random_sids, "parallel": _random_codes}
"""Random codes and an untrained model of each family (``genads.families`` names them)."""


def synthetic_bundle(out: str | Path, n_ads: int, *, n_advertisers: int = 20, levels: int = 3, codebook: int = 32,
                     preset: str = "tiny", beam: int = 10, n_users: int = 50, budget: float = 1000.0,
                     seed: int = 0, family: str = "sid", n_codes: int = 32, code_size: int = 256,
                     first_ad_id: int = 1001) -> Path:
    """Write a bundle with ``n_ads`` ads (ids ``first_ad_id``.., 1001 by default) over ``n_advertisers``
    advertisers (ids 1..).

    ``family="parallel"``: ``n_codes`` random codes of ``code_size`` values per ad and a parallel-code model
    (d 64, 2 layers, histories of 50: the Beauty preset's shape) instead of SIDs and the slate model.
    """
    families.family(family, "family")
    if n_ads < 1 or n_advertisers < 1:
        raise ValueError(f"need n_ads={n_ads} >= 1 and n_advertisers={n_advertisers} >= 1")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    shape = {"sid": (levels, codebook, preset), "parallel": (n_codes, code_size, None)}[family]
    sids, model = _RANDOM[family](rng, n_ads, *shape)
    net = PaymentNet(PaymentNetConfig(n_bidders=5, slot_ctr=(1.0, 0.6, 0.3), hidden=16, bid_scale=1.0,
                                      quality_scale=0.05)).eval()
    ad_ids = np.arange(first_ad_id, first_ad_id + n_ads)
    advertiser = rng.integers(1, n_advertisers + 1, size=n_ads)
    ads = pd.DataFrame({"item": np.arange(1, n_ads + 1), "ad_id": ad_ids, "advertiser_id": advertiser,
                        "title": [f"Product {a}" for a in ad_ids], "brand": [f"brand {b}" for b in advertiser],
                        "bid": np.round(np.exp(rng.normal(0.0, 0.5, n_ads)), 4), "budget": budget,
                        "pctr": rng.uniform(0.01, 0.1, n_ads), "creative_title": [f"Great product {a}" for a in ad_ids]})
    m = model.config.max_items
    items = rng.integers(1, n_ads + 1, size=(n_users, m))
    items[:, : m // 2] *= rng.random((n_users, 1)) < 0.5  # some users have shorter histories (left padding)
    return write_bundle(out, model=model, codes=sids, ads=ads, beam=beam, payment_net=net,
                        histories=(np.arange(1, n_users + 1), items))
