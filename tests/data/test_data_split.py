"""Leave-one-out split: last = test, second last = validation, history caps, short users, stable ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genads.data.dataset import Dataset, load_dataset
from genads.data.loaders import TabularSource
from genads.data.split import (
    SplitConfig,
    as_frame,
    leave_one_out,
    split_stats,
    training_events,
    user_sequences,
)
from tests.data.datahelpers import do_import, write


def _dataset(tmp_path, rows: list[tuple], catalogue: list[int] | None = None, name: str = "ds"):
    events = write(tmp_path / f"{name}.csv", "user_id,ad_id,timestamp,action\n" + "".join(f"{u},{a},{t},{x}\n" for u, a, t, x in rows))
    cat = None
    if catalogue is not None:
        cat = write(tmp_path / f"{name}-cat.csv", "ad_id\n" + "".join(f"{a}\n" for a in catalogue))
    return load_dataset(do_import(TabularSource(events, catalogue=cat), tmp_path / name).path)


def _ads(split, indices):
    return split.item_ids[np.asarray(indices)].tolist()


def test_last_is_test_second_last_is_validation(tmp_path):
    ds = _dataset(tmp_path, [(1, 10, 1, "click"), (1, 20, 2, "click"), (1, 30, 3, "click"), (1, 40, 4, "click")])
    split = leave_one_out(ds, SplitConfig(max_history=5))
    assert _ads(split, split.test.target) == [40]
    assert _ads(split, split.valid.target) == [30]
    assert _ads(split, split.train[0]) == [10, 20]
    assert split.test.history.tolist() == [[0, 0, *split.index_of(np.array([10, 20, 30])).tolist()]]
    assert split.valid.history.tolist() == [[0, 0, 0, *split.index_of(np.array([10, 20])).tolist()]]
    frame = as_frame(split.test, split)
    assert frame["history"].tolist() == [[10, 20, 30]] and frame["target"].tolist() == [40]


def test_events_are_ordered_by_time_not_by_file(tmp_path):
    ds = _dataset(tmp_path, [(1, 40, 9, "click"), (1, 10, 1, "click"), (1, 30, 5, "click"), (1, 20, 2, "click")])
    split = leave_one_out(ds)
    assert _ads(split, split.train[0]) == [10, 20]
    assert _ads(split, split.valid.target) == [30] and _ads(split, split.test.target) == [40]


def test_history_is_truncated_to_the_most_recent_items(tmp_path):
    rows = [(1, a, t, "click") for t, a in enumerate([11, 12, 13, 14, 15, 16, 17])]
    split = leave_one_out(_dataset(tmp_path, rows), SplitConfig(max_history=3))
    assert split.test.history.shape == (1, 3)
    assert _ads(split, split.test.history[0]) == [14, 15, 16]
    assert _ads(split, split.valid.history[0]) == [13, 14, 15]
    assert _ads(split, split.train[0]) == [11, 12, 13, 14, 15]  # training sequences are not cut


def test_users_with_fewer_than_three_events_only_train(tmp_path):
    rows = [(1, 10, 1, "click"), (1, 20, 2, "click"), (1, 30, 3, "click"),
            (2, 10, 1, "click"), (2, 20, 2, "click"), (3, 30, 1, "click")]
    split = leave_one_out(_dataset(tmp_path, rows))
    assert split.users.tolist() == [1, 2, 3]
    assert split.test.users.tolist() == [1] and split.valid.users.tolist() == [1]
    assert [_ads(split, t) for t in split.train] == [[10], [10, 20], [30]]
    stats = split_stats(split)
    assert stats["interactions"] == 6 and stats["eval_users"] == 1


def test_min_events_is_configurable(tmp_path):
    rows = [(1, a, t, "click") for t, a in enumerate([10, 20, 30, 40])] + [(2, a, t, "click") for t, a in enumerate([10, 20, 30])]
    split = leave_one_out(_dataset(tmp_path, rows), SplitConfig(min_events=4))
    assert split.test.users.tolist() == [1]


def test_equal_timestamps_keep_input_order(tmp_path):
    """Ties are broken by position in the input file (stable), never by ad id."""
    rows = [(1, 30, 5, "click"), (1, 10, 5, "click"), (1, 20, 5, "click"), (1, 5, 1, "click")]
    split = leave_one_out(_dataset(tmp_path, rows))
    assert _ads(split, split.train[0]) == [5, 30]
    assert _ads(split, split.valid.target) == [10] and _ads(split, split.test.target) == [20]


def test_tie_order_survives_a_spilling_sort(tmp_path, monkeypatch):
    from genads.data import duck_sort

    rows = [(u, a, 7, "click") for u in range(40) for a in (9, 3, 7, 1, 5)]
    one = leave_one_out(_dataset(tmp_path, rows, name="one"))
    real = duck_sort.DuckConfig
    monkeypatch.setattr(duck_sort, "DuckConfig", lambda: real(memory_limit="16MB", threads=1))
    many = leave_one_out(_dataset(tmp_path, rows, name="many"))
    assert all(_ads(one, t) == [9, 3, 7] for t in one.train)
    assert [t.tolist() for t in one.train] == [t.tolist() for t in many.train]
    assert one.test.target.tolist() == many.test.target.tolist()


def test_impressions_are_not_interactions_by_default(tmp_path):
    rows = [(1, 10, 1, "click"), (1, 20, 2, "impression"), (1, 30, 3, "conversion"), (1, 40, 4, "click")]
    ds = _dataset(tmp_path, rows)
    split = leave_one_out(ds)
    assert _ads(split, split.train[0]) == [10] and _ads(split, split.test.target) == [40]
    split = leave_one_out(ds, SplitConfig(positive_actions=("impression", "click", "conversion")))
    assert _ads(split, split.train[0]) == [10, 20]


def test_items_index_the_whole_catalogue(tmp_path):
    ds = _dataset(tmp_path, [(1, 30, 1, "click"), (1, 10, 2, "click"), (1, 30, 3, "click")], catalogue=[50, 10, 30, 20])
    split = leave_one_out(ds)
    assert split.item_ids.tolist()[1:] == [10, 20, 30, 50] and split.n_items == 4
    assert split.index_of(np.array([10, 50, 99])).tolist() == [1, 4, 0]


def test_no_interactions_is_an_error(tmp_path):
    ds = _dataset(tmp_path, [(1, 10, 1, "impression")])
    with pytest.raises(ValueError, match="nothing to split"):
        leave_one_out(ds)


@pytest.mark.parametrize("kwargs, field", [
    ({"max_history": 0}, "max_history"), ({"min_events": 2}, "min_events"), ({"positive_actions": ("like",)}, "positive_actions"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SplitConfig(**kwargs)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seqs=st.lists(st.lists(st.integers(1, 8), min_size=1, max_size=9), min_size=1, max_size=6),
       max_history=st.integers(1, 6))
def test_split_partitions_each_sequence(tmp_path_factory, seqs, max_history):
    """Per user: train + [valid] + [test] is the whole sequence; histories are suffixes of the right length."""
    tmp = tmp_path_factory.mktemp("split")
    rows = [(u, a, t, "click") for u, seq in enumerate(seqs) for t, a in enumerate(seq)]
    split = leave_one_out(_dataset(tmp, rows), SplitConfig(max_history=max_history))
    k = 0
    for u, seq in enumerate(seqs):
        train = _ads(split, split.train[u])
        if len(seq) < 3:
            assert train == seq
            continue
        assert split.test.users[k] == u
        assert train + _ads(split, [split.valid.target[k], split.test.target[k]]) == seq
        hist = split.test.history[k]
        assert _ads(split, hist[hist > 0]) == seq[:-1][-max_history:]
        hist = split.valid.history[k]
        assert _ads(split, hist[hist > 0]) == seq[:-2][-max_history:]
        k += 1
    assert k == len(split.test)


@st.composite
def _event_logs(draw) -> Dataset:
    """Up to 8 users, 6 ads, mixed actions (impression/click/conversion) and tied timestamps."""
    n = draw(st.integers(1, 40))
    col = lambda lo, hi: draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))  # noqa: E731
    events = pd.DataFrame({"user_id": col(1, 8), "ad_id": col(1, 6), "timestamp": col(0, 5), "action": col(0, 2)})
    return Dataset(catalogue=pd.DataFrame({"ad_id": np.arange(1, 7)}), events=events, meta={})


@settings(max_examples=60, deadline=None)
@given(ds=_event_logs(), min_events=st.integers(3, 4))
def test_training_events_are_exactly_the_training_sequences(ds, min_events):
    config = SplitConfig(min_events=min_events)
    split = leave_one_out(ds, config) if ds.events["action"].isin([1, 2]).any() else None
    kept = training_events(ds, config)
    assert set(kept.index) <= set(ds.events.index)
    if split is None:
        assert len(kept) == len(ds.events)
        return
    _, users, seqs = user_sequences(Dataset(ds.catalogue, kept, {}), config)
    train = {u: s for u, s in zip(split.users, split.train, strict=True) if len(s)}
    assert dict(zip(users.tolist(), map(list, seqs), strict=True)) == {u: list(s) for u, s in train.items()}
    for user, target_time in zip(split.valid.users, _valid_times(ds, split, config), strict=True):
        assert (kept.loc[kept["user_id"] == user, "timestamp"] <= target_time).all()  # nothing after validation


def _valid_times(ds: Dataset, split, config: SplitConfig) -> list[int]:
    """Per evaluated user, the timestamp of their validation event (second-last positive in time order)."""
    ev = ds.events[ds.events["action"].isin([1, 2])].sort_values(["user_id", "timestamp"], kind="stable")
    return [int(ev.loc[ev["user_id"] == u, "timestamp"].iloc[-2]) for u in split.valid.users]
