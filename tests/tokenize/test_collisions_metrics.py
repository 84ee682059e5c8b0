import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genads.tokenize.collisions import disambiguate
from genads.tokenize.metrics import collision_rate, level_stats, max_bucket, quantisation_error, sid_summary


@given(arrays(np.int64, st.tuples(st.integers(0, 40), st.integers(1, 3)), elements=st.integers(0, 3)))
def test_disambiguate_makes_every_sid_unique_and_keeps_the_prefix(codes):
    out = disambiguate(codes)
    assert out.shape == (len(codes), codes.shape[1] + 1)
    assert np.array_equal(out[:, :-1], codes)
    assert len(np.unique(out, axis=0)) == len(codes)
    if len(codes):
        assert out[:, -1].max() == max_bucket(codes) - 1


def test_collision_rate_and_levels():
    codes = np.array([[0, 1], [0, 1], [1, 2], [3, 3]])
    assert collision_rate(codes) == pytest.approx(0.25)
    assert max_bucket(codes) == 2
    l1 = level_stats(codes, 4)[0]
    assert l1["used"] == 3 and l1["utilisation"] == 0.75
    p = np.array([2, 1, 1]) / 4
    assert l1["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    uniform = level_stats(np.arange(8)[:, None], 8)[0]
    assert uniform["perplexity"] == pytest.approx(8.0)


def test_quantisation_error_and_summary():
    x = np.ones((3, 2))
    assert quantisation_error(x, x) == 0.0
    assert quantisation_error(x, np.zeros_like(x)) == 1.0
    row = sid_summary(np.array([[0], [1]]), 2, x[:2], x[:2])
    assert row["collision_rate"] == 0.0 and row["quant_error"] == 0.0 and row["util_l1"] == 1.0
