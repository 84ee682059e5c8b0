from __future__ import annotations

import numpy as np
import torch

from genads.auction.mechanisms import gsp
from genads.auction.payment_net import PaymentNet, PaymentNetConfig
from genads.market.audit import AuditConfig, AuditedAuction, gsp_price, psi

SLOT = np.array([1.0, 0.6, 0.4])


def test_torch_gsp_prices_match_the_mechanism() -> None:
    rng = np.random.default_rng(0)
    bids, q = rng.uniform(0, 2, (64, 5)), rng.uniform(0.01, 0.2, (64, 5))
    bids[:, 4] = bids[:, 3]  # ties
    q[:, 4] = q[:, 3]
    alloc = gsp(bids, q, 3, slot_ctr=SLOT)
    fast = gsp_price(torch.tensor(bids), torch.tensor(q)).numpy()
    for b in range(64):
        for j, w in enumerate(alloc.winners[b]):
            np.testing.assert_allclose(fast[b, w], alloc.prices[b, j], rtol=1e-9, atol=1e-12)


def test_audited_auction_uses_true_ctr_and_charges_at_most_the_bid() -> None:
    rng = np.random.default_rng(1)
    bids = torch.tensor(rng.uniform(0.1, 2, (32, 5, 1)))
    ctx = torch.tensor(np.stack([rng.uniform(0.01, 0.2, (32, 5)), rng.uniform(0.01, 0.2, (32, 5))], -1))
    click, pay = AuditedAuction(SLOT)(bids, ctx)
    alloc = gsp(bids[..., 0].numpy(), ctx[..., 0].numpy(), 3, slot_ctr=SLOT)
    np.testing.assert_allclose(click[..., 0].numpy(), alloc.click_rates(ctx[..., 1].numpy(), SLOT))
    assert (pay <= click[..., 0] * bids[..., 0] + 1e-9).all()


def test_psi_of_gsp_is_positive_and_learned_net_is_audited() -> None:
    rng = np.random.default_rng(2)
    values, q = rng.uniform(0.2, 2, (16, 5)), rng.uniform(0.02, 0.2, (16, 5))
    cfg = AuditConfig(restarts=8, steps=5)
    out = psi(AuditedAuction(SLOT), values, q, q, cfg, seed=0)
    assert out["psi"] >= out["psi_grid"] > 0  # GSP with 3 slots rewards shading
    torch.manual_seed(0)
    net = PaymentNet(PaymentNetConfig(n_bidders=5, slot_ctr=tuple(SLOT), hidden=8))
    learned = psi(AuditedAuction(SLOT, net), values, q, q, cfg, seed=0)
    assert learned["psi"] >= 0 and np.isfinite(learned["psi_ascent"])


def test_generation_audit_finds_regret_when_a_bid_changes_the_candidate_set() -> None:
    """A pipeline that shows only the top-bid ads: shading the bid can get an ad in cheaper, and a first
    price auction rewards shading; a truthful second-price-like rule on a fixed set does not."""
    from genads.auction.mechanisms import first_price, gsp
    from genads.market.audit import generation_psi
    from genads.market.world import WorldConfig, make_world

    world = make_world(WorldConfig(n_users=20, n_ads=12, n_advertisers=4, n_organic=6, dim=4, topics=2),
                       np.random.default_rng(0))

    class TopBid:
        def __init__(self, mech) -> None:
            self.mech = mech

        def propose(self, history, live, bids):
            ads = np.argsort(-bids, kind="stable")[:4]
            return np.tile(ads, (len(history), 1)), np.full((len(history), 4), 0.1)

        def auction(self, bids, quality):
            return self.mech(bids, quality, 3, slot_ctr=world.slot_ctr)

    users = np.arange(10)
    hist = np.zeros((10, 3), dtype=np.int64)
    fp = generation_psi(world, TopBid(first_price), hist, users, np.arange(4))
    assert fp["psi_generation"] > 0 and fp["generation_advertisers"] == 4
    gs = generation_psi(world, TopBid(gsp), hist, users, np.arange(4))
    assert gs["generation_truthful_utility"] > 0 and gs["psi_generation"] < fp["psi_generation"]
