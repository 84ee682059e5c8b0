"""IVF pre-selection + exact scoring: exact when every list is probed, in step with the live set's changes,
and its recall of the exact top k grows with nprobe (issue 29 item 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.decode.bidding import BidConfig
from genads.parallel import LiveAds, ParallelConfig, ParallelModel
from genads.parallel.preselect import IVFPreselect, PreselectConfig

M, K, N = 6, 16, 600
BIDS = BidConfig(alpha=1.0, beta=0.1)


@pytest.fixture(scope="module")
def model() -> ParallelModel:
    torch.manual_seed(0)
    cfg = ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=8, n_items=0, n_codes=M, codebook_size=K,
                         dropout=0.0)
    return ParallelModel(cfg).eval()


def _codes(seed: int = 0) -> np.ndarray:
    """Clustered codes (ads of one topic share most codes), as PQ codes of topical items are."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, K, size=(12, M))
    topic = rng.integers(0, 12, size=N)
    codes = np.where(rng.random((N, M)) < 0.7, centres[topic], rng.integers(0, K, size=(N, M)))
    return np.vstack([np.zeros((1, M), dtype=np.int64), codes])


def _query(model: ParallelModel, codes: np.ndarray, seed: int, b: int = 4):
    rng = np.random.default_rng(seed)
    items = torch.from_numpy(rng.integers(1, N + 1, size=(b, 5)))
    with torch.no_grad():
        h = model(items, torch.from_numpy(codes)[items])[:, -1]
        return model.code_queries(h), model.code_logprobs(h).double()


def _live(codes: np.ndarray, seed: int = 1) -> LiveAds:
    rng = np.random.default_rng(seed)
    return LiveAds(codes, bids={i: float(rng.lognormal(0, 0.7)) for i in range(1, N + 1)})


def test_exhaustive_probe_equals_exact_scoring(model):
    codes = _codes()
    live = _live(codes)
    for bid in (None, BIDS):
        pre = IVFPreselect(model, live, bid, PreselectConfig(nlist=10, shortlist=40))
        q, logp = _query(model, codes, seed=2)
        got, want = pre.topk(q, logp, 10, nprobe=10), live.topk(logp, 10, bid_config=bid)
        np.testing.assert_array_equal(got.ads, want.ads)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_the_index_follows_adds_removes_and_bids(model):
    codes = _codes(3)
    live = _live(codes, 4)
    pre = IVFPreselect(model, live, BIDS, PreselectConfig(nlist=8, shortlist=50))
    q, logp = _query(model, codes, seed=5, b=1)

    def same_as_exact() -> np.ndarray:
        got, want = pre.topk(q, logp, 5, nprobe=8), live.topk(logp, 5, bid_config=BIDS)
        np.testing.assert_array_equal(got.ads, want.ads)
        return got.ads[0]

    top = int(same_as_exact()[0])
    live.remove(top)
    pre.remove(top)
    assert top not in same_as_exact()
    ranked = live.topk(logp, N, bid_config=BIDS).ads[0]
    low = int(ranked[ranked > 0][-1])  # the worst live ad, then a bid that lifts it to the top
    gap = float(live.topk(logp, 1, bid_config=BIDS).scores[0, 0] - live.topk(logp, N, bid_config=BIDS).scores[0][
        ranked > 0][-1])
    bid = float(np.exp(gap + 1.0)) * live.bid(low)
    live.set_bid(low, bid)
    pre.set_bid(low, bid)
    assert int(same_as_exact()[0]) == low
    live.add(top, codes[top], bid=bid * np.e**2)  # back, above everyone
    pre.add(top, codes[top], bid=bid * np.e**2)
    assert list(same_as_exact()[:2]) == [top, low] and len(pre) == len(live)


def test_recall_grows_with_nprobe(model):
    codes = _codes(6)
    live = _live(codes, 7)
    pre = IVFPreselect(model, live, BIDS, PreselectConfig(nlist=24, shortlist=20))
    q, logp = _query(model, codes, seed=8, b=32)
    exact = live.topk(logp, 10, bid_config=BIDS).ads

    def recall(nprobe: int) -> float:
        got = pre.topk(q, logp, 10, nprobe=nprobe).ads
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)]))

    r1, r4, r24 = recall(1), recall(4), recall(24)
    assert r1 <= r4 <= r24 == 1.0 and r1 < 1.0
