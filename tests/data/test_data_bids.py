"""Synthetic bids and budgets: seeded, per advertiser, stable under changes to other advertisers."""

from __future__ import annotations

import numpy as np
import pytest

from genads.data.bids import MarketParams, advertiser_keys, synthesize
from genads.data.dataset import load_dataset
from genads.data.loaders import TabularSource
from tests.data.datahelpers import EVENTS_CSV, do_import, write

CATALOGUE = """ad_id,title,brand,category
1,a,Acme,kitchen
2,b,Acme,kitchen
3,c,Lumo,office
4,d,,office
5,e,,
"""


def _import(tmp_path, catalogue: str, name: str, seed: int = 0, on_error: str = "stop"):
    source = TabularSource(write(tmp_path / f"{name}-events.csv", EVENTS_CSV),
                           catalogue=write(tmp_path / f"{name}-cat.csv", catalogue))
    return load_dataset(do_import(source, tmp_path / name, on_error, market=MarketParams(seed=seed)).path)


def test_seeded_and_reproducible(tmp_path):
    a, b = _import(tmp_path, CATALOGUE, "a"), _import(tmp_path, CATALOGUE, "b")
    assert a.catalogue["bid"].tolist() == b.catalogue["bid"].tolist()
    assert a.catalogue["budget"].tolist() == b.catalogue["budget"].tolist()
    c = _import(tmp_path, CATALOGUE, "c", seed=1)
    assert c.catalogue["bid"].tolist() != a.catalogue["bid"].tolist()


def test_flagged_synthetic_in_meta(tmp_path):
    ds = _import(tmp_path, CATALOGUE, "ds", seed=7)
    money = ds.meta["market"]
    for what in ("bid", "budget"):
        assert money[what]["synthetic"] is True
        assert money[what]["seed"] == 7
        assert money[what]["synthetic_rows"] == 5
    assert money["advertiser_rule"] == "brand, else category, else the ad itself"


def test_advertisers_by_brand_then_category_then_ad(tmp_path):
    cat = _import(tmp_path, CATALOGUE, "ds").catalogue.set_index("ad_id")
    adv = cat["advertiser_id"]
    assert adv[1] == adv[2]  # brand Acme
    assert len({adv[1], adv[3], adv[4], adv[5]}) == 4  # Lumo, category office, ad 5 alone
    assert cat.loc[1, "budget"] == cat.loc[2, "budget"]  # one budget per advertiser, repeated on its ads
    assert (cat["bid"] > 0).all() and (cat["budget"] > 0).all()


def test_other_advertisers_are_unaffected_by_one_advertisers_changes(tmp_path):
    base = _import(tmp_path, CATALOGUE, "base").catalogue.set_index("ad_id")
    # Acme loses ad 2 and gains ad 9; a new brand "Aaa" (sorts first, shifting dense ids) appears
    changed = CATALOGUE.replace("2,b,Acme,kitchen\n", "") + "9,z,Acme,kitchen\n6,f,Aaa,x\n"
    new = _import(tmp_path, changed, "new", on_error="skip").catalogue.set_index("ad_id")  # ad 2's events go
    for ad in (3, 4, 5):  # Lumo, category office, ad 5: their events did not change either
        assert new.loc[ad, "bid"] == base.loc[ad, "bid"]
        assert new.loc[ad, "budget"] == base.loc[ad, "budget"]
    assert new.loc[1, "bid"] == base.loc[1, "bid"]  # an ad's bid does not depend on its neighbours
    assert new.loc[1, "budget"] != base.loc[1, "budget"]  # Acme's budget follows its (fewer) clicks


def test_synthesize_structure():
    keys = np.array(["brand:A"] * 4 + ["brand:B"] * 2 + [f"ad:{i}" for i in range(500)], dtype=object)
    clicks = np.ones(len(keys))
    ids = np.arange(len(keys))
    flat_bid, budget = synthesize(keys, clicks, MarketParams(ad_sigma=0.0), ad_id=ids)
    assert len(set(flat_bid[:4])) == 1 and len(set(flat_bid[4:6])) == 1  # no jitter: the advertiser's base bid
    assert len(set(budget[:4])) == 1
    bid, _ = synthesize(keys, clicks, MarketParams(), ad_id=ids)
    assert len(set(bid[:4])) == 4
    assert np.all(np.abs(np.log(bid[:4] / flat_bid[:4])) < 1.0)
    # 500 single-ad advertisers: base bids are lognormal around bid_median
    assert 0.8 < np.median(flat_bid[6:]) < 1.25
    assert 0.5 < np.std(np.log(flat_bid[6:])) < 0.7  # bid_sigma = 0.6
    _, budget = synthesize(keys, clicks * 10, MarketParams(budget_low=1.0, budget_high=1.0, ad_sigma=0.0), ad_id=ids)
    assert np.allclose(budget[6:], np.round(flat_bid[6:] * 10, 2), atol=0.011)  # base x clicks x 1


def test_given_advertiser_ids_are_kept():
    import pandas as pd

    cat = pd.DataFrame({"ad_id": [1, 2], "advertiser_id": [5, -1], "brand": ["", "X"], "category": ["", ""]})
    assert advertiser_keys(cat).tolist() == ["advertiser:5", "brand:X"]


@pytest.mark.parametrize("kwargs, field", [
    ({"bid_median": 0}, "bid_median"), ({"budget_low": 2.0, "budget_high": 1.0}, "budget_low"), ({"ad_sigma": -1}, "ad_sigma"),
])
def test_market_params_validate(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MarketParams(**kwargs)
