from __future__ import annotations

import numpy as np

from genads.auction.mechanisms import first_price, vcg
from genads.market.bidders import PACED, STRATEGIC, TRUTHFUL, AuctionBatch, BidderConfig, Bidders
from genads.market.world import WorldConfig, make_world

WORLD = make_world(WorldConfig(n_users=20, n_ads=30, n_advertisers=10, n_organic=10, dim=4, topics=2),
                   np.random.default_rng(0))
SLOT = WORLD.slot_ctr


def _batch(rng: np.random.Generator, bidders: Bidders, n: int = 6, rows: int = 64) -> AuctionBatch:
    ads = np.stack([rng.choice(WORLD.config.n_ads, n, replace=False) for _ in range(rows)])
    return AuctionBatch(ads, bidders.bids()[ads], rng.uniform(0.02, 0.1, ads.shape), rng.uniform(0.02, 0.1, ads.shape))


def test_mix_of_bidder_kinds() -> None:
    b = Bidders(WORLD, BidderConfig(paced_share=0.5, strategic_share=0.2), 1000, 100, np.random.default_rng(0))
    assert (b.kind == STRATEGIC).sum() == 2 and (b.kind == PACED).sum() == 5 and (b.kind == TRUTHFUL).sum() == 3
    truthful_ads = b.kind[WORLD.owner] == TRUTHFUL
    np.testing.assert_allclose(b.bids()[truthful_ads], WORLD.value[truthful_ads])
    paced = b.kind[WORLD.owner] != TRUTHFUL
    assert (b.bids()[paced] <= WORLD.value[paced] / WORLD.roi_target[WORLD.owner][paced] + 1e-12).all()


def test_pacing_lowers_bids_after_overspending_and_never_below_roi_floor() -> None:
    b = Bidders(WORLD, BidderConfig(paced_share=1.0, strategic_share=0.0), 1000, 100, np.random.default_rng(0))
    before = b.bids().copy()
    empty = AuctionBatch(np.full((1, 6), -1), np.zeros((1, 6)), np.ones((1, 6)), np.zeros((1, 6)))
    b.update(3 * b.target, empty, lambda bi, q: vcg(bi, q, len(SLOT), slot_ctr=SLOT), SLOT)
    assert (b.bids() < before).all()
    for _ in range(50):
        b.update(np.zeros(10), empty, lambda bi, q: vcg(bi, q, len(SLOT), slot_ctr=SLOT), SLOT)
    np.testing.assert_allclose(b.mu, b.mu_min)


def test_best_response_shades_under_first_price() -> None:
    cfg = BidderConfig(paced_share=0.0, strategic_share=1.0)
    b = Bidders(WORLD, cfg, 1000, 100, np.random.default_rng(0))
    b.update(b.target, _batch(np.random.default_rng(0), b), lambda bi, q: first_price(bi, q, len(SLOT), slot_ctr=SLOT),
             SLOT)
    assert b.gamma.mean() < 0.8  # paying your bid: shading pays off


def test_no_multiplier_beats_the_value_under_vcg_with_true_ctr() -> None:
    # one ad per advertiser (an advertiser with two ads in one auction can gain by shading one of them)
    world = make_world(WorldConfig(n_users=20, n_ads=30, n_advertisers=30, n_organic=10, dim=4, topics=2,
                                   roi_target_max=1.0), np.random.default_rng(0))
    b = Bidders(world, BidderConfig(paced_share=0.0, strategic_share=1.0), 1000, 100, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    ads = np.stack([rng.choice(30, 6, replace=False) for _ in range(64)])
    q = rng.uniform(0.02, 0.1, ads.shape)
    batch = AuctionBatch(ads, b.bids()[ads], q, q)  # pCTR = true CTR: VCG is truthful
    auction = lambda bi, qq: vcg(bi, qq, len(SLOT), slot_ctr=SLOT)  # noqa: E731
    at_value = b.cfg.gammas.index(1.0)
    for adv in range(30):
        totals = b.replay_utilities(adv, batch, auction, SLOT)
        if totals is not None:
            assert totals[at_value] >= totals.max() - 1e-9
