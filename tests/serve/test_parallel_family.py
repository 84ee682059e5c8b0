"""Serving a parallel-family bundle: POST /v1/ads scores every live ad exactly (no trie, no beam)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.decode.bidding import BidConfig
from genads.decode.candidates import ExactCandidates
from genads.serve.bundle import load_bundle
from genads.serve.synthetic import synthetic_bundle
from tests.serve.conftest import ADMIN


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Overrides conftest's SID bundle, so its ``engine`` and ``client`` fixtures serve a parallel bundle."""
    path = synthetic_bundle(tmp_path_factory.mktemp("pbundle") / "serve", 200, n_advertisers=4, budget=50.0,
                            family="parallel")  # 32 x 256 codes: the Beauty shape
    return load_bundle(path)


def test_bundle_knows_its_family(bundle, engine):
    assert bundle.family == "parallel" and bundle.manifest["family"] == "parallel"
    assert bundle.codes.shape == (201, 32)
    assert isinstance(engine.candidates, ExactCandidates)  # no trie: 32 codes of 256 values cannot be a prefix trie's keys (256**33 overflows)


def test_candidates_equal_the_naive_exact_reference(engine):
    hist = np.zeros((1, engine.bundle.model.config.max_items), dtype=np.int64)
    hist[0, -3:] = [5, 17, 42]
    slate = engine.candidates.score(hist, 12)
    items = torch.from_numpy(hist[:, -3:])
    logp = engine.bundle.model.next_logprobs(items, torch.from_numpy(engine.bundle.codes)[items])
    ref = engine.candidates.live.topk_reference(logp.double(), 12, bid_config=BidConfig(alpha=1.0, beta=0.0))
    np.testing.assert_array_equal(slate.ads, ref.ads)
    np.testing.assert_allclose(slate.scores, ref.scores, rtol=1e-4)


def test_only_live_ads_and_prices_under_bids_then_pause_stops_at_once(client, engine):
    admin = {"X-API-Key": ADMIN}
    campaigns = client.get("/v1/campaigns", headers=admin).json()
    bids = {c["campaign_id"]: c["bid"] for c in campaigns}
    for body in ({"user_id": 3, "slots": 3}, {"history": [1001, 1005], "slots": 8}):
        slate = client.post("/v1/ads", json=body).json()["slate"]
        assert len(slate) == body["slots"] and len({s["ad_id"] for s in slate}) == len(slate)
        for s in slate:
            assert engine.item_of[s["ad_id"]] in engine.live and 0 <= s["price"] <= bids[s["campaign_id"]] + 1e-9
    target = campaigns[0]
    r = client.post(f"/v1/campaigns/{target['campaign_id']}/pause", headers=admin)
    assert r.status_code == 200
    for user in range(1, 30):
        slate = client.post("/v1/ads", json={"user_id": user, "slots": 8}).json()["slate"]
        assert target["campaign_id"] not in {s["campaign_id"] for s in slate}


def test_a_higher_bid_moves_an_ad_up(engine):
    hist = np.zeros((1, engine.bundle.model.config.max_items), dtype=np.int64)
    hist[0, -2:] = [7, 9]
    base = engine.candidates.score(hist, 200).ads[0].tolist()
    item = base[-1]
    engine.candidates.live.set_bid(item, engine.candidates.live.bid(item) * 1e6)
    assert engine.candidates.score(hist, 200).ads[0].tolist().index(item) < len(base) - 1

