"""String ids (u1, ad-8f3a, hashed device ids) round-trip through import via the dataset's id vocabulary."""

from __future__ import annotations

import pytest

from genads.data.dataset import load_dataset
from genads.data.loaders import TabularSource
from genads.data.validate import ImportValidationError, parse_action_map
from genads.data.vocab import MAX_ID, VOCAB_FILE, IdVocabulary
from tests.data.datahelpers import do_import, rejected, write

EVENTS = """user,item,ts,kind
u1,ad-a,1,view
u1,ad-b,2,purchase
dev-9f8e,ad-a,3,click
7,ad-c,4,click
u1,ad-a,1,view
"""
CATALOGUE = "ad_id,title,advertiser_id\nad-a,A,acme\nad-b,B,acme\nad-c,C,zz\n"
MAP = {"user_id": "user", "ad_id": "item", "timestamp": "ts", "action": "kind"}


def _import(tmp_path, events=EVENTS, catalogue=CATALOGUE, **kw):
    source = TabularSource(write(tmp_path / "e.csv", events),
                           catalogue=write(tmp_path / "c.csv", catalogue) if catalogue else None, column_map=MAP)
    return do_import(source, tmp_path / "ds", **kw)


def test_string_ids_round_trip(tmp_path):
    _import(tmp_path, on_error="skip", action_map={"purchase": "conversion"})
    ds = load_dataset(tmp_path / "ds")
    vocab = ds.vocab
    users = vocab.labels("user", ds.events["user_id"])
    ads = vocab.labels("ad", ds.events["ad_id"])
    # sorted by internal user index: the integer user 7 first, then u1, dev-9f8e in order of first sight
    assert list(zip(users, ads, ds.events["action"].tolist(), strict=True)) == [
        (7, "ad-c", 1), ("u1", "ad-a", 0), ("u1", "ad-b", 2), ("dev-9f8e", "ad-a", 1)]
    assert vocab.labels("ad", ds.catalogue["ad_id"]) == ["ad-a", "ad-b", "ad-c"]
    assert vocab.labels("advertiser", ds.catalogue["advertiser_id"]) == ["acme", "acme", "zz"]
    assert ds.meta["string_ids"] == {"user": 2, "ad": 3, "advertiser": 2}
    assert ds.meta["action_map"] == {"purchase": "conversion"}
    assert [r["kind"] for r in rejected(tmp_path / "ds")] == ["duplicate"]
    assert vocab.index_of("user", "u1") == MAX_ID and vocab.index_of("user", 7) == 7
    assert vocab.index_of("user", "nobody") is None


def test_same_input_same_bytes(tmp_path):
    _import(tmp_path / "a", on_error="skip")
    _import(tmp_path / "b", on_error="skip")
    for name in ("events.parquet", "catalogue.parquet", VOCAB_FILE):
        assert (tmp_path / "a" / "ds" / name).read_bytes() == (tmp_path / "b" / "ds" / name).read_bytes()


def test_string_ad_not_in_catalogue_is_unknown_and_stop_writes_nothing(tmp_path):
    with pytest.raises(ImportValidationError, match=r"e\.csv:3: field 'item': unknown_ad"):
        _import(tmp_path, events="user,item,ts,kind\nu1,ad-a,1,click\nu1,ad-zz,2,click\n")
    assert not (tmp_path / "ds").exists()


def test_integer_ids_write_no_vocabulary_and_numbers_stay_errors(tmp_path):
    _import(tmp_path, events="user,item,ts,kind\n1,5,1,click\n", catalogue=None)
    assert not (tmp_path / "ds" / VOCAB_FILE).exists()
    with pytest.raises(ImportValidationError, match=r"e\.csv:2: field 'user': bad_id"):
        _import(tmp_path, events="user,item,ts,kind\n-1,5,1,click\n", catalogue=None)


def test_integer_ids_only_rejects_strings(tmp_path):
    with pytest.raises(ImportValidationError, match=r"e\.csv:2: field 'user': bad_id"):
        _import(tmp_path, events="user,item,ts,kind\nu1,5,1,click\n", catalogue=None, string_ids=False)


def test_unknown_action_names_point_at_the_map(tmp_path):
    with pytest.raises(ImportValidationError, match="--action-map"):
        _import(tmp_path, events="user,item,ts,kind\nu1,ad-a,1,wishlist\n")
    _import(tmp_path, events="user,item,ts,kind\nu1,ad-a,1,wishlist\n", action_map={"wishlist": "click"})
    assert load_dataset(tmp_path / "ds").events["action"].tolist() == [1]


def test_action_map_errors_are_clear():
    assert parse_action_map("Purchase=conversion") == {"purchase": "conversion"}
    with pytest.raises(ValueError, match="must be one of"):
        parse_action_map("purchase=buy")
    with pytest.raises(ValueError, match="input_name=action"):
        parse_action_map("purchase")


def test_vocabulary_file_is_checked(tmp_path):
    vocab = IdVocabulary()
    vocab.encode("user", ["a", "b"])
    vocab.save(tmp_path)
    assert IdVocabulary.load(tmp_path).labels("user", [MAX_ID + 1, 3]) == ["b", 3]
    with pytest.raises(KeyError, match="not in the dataset's id vocabulary"):
        vocab.label("user", MAX_ID + 5)
