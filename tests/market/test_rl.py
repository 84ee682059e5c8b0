from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from genads.data.split import left_pad
from genads.market.e2e_parallel import ParallelE2EConfig, build_parallel_e2e
from genads.market.logs import LogConfig, make_logs
from genads.market.rl import RLConfig, expected_list_value, finetune
from genads.market.value import ValueConfig
from genads.market.world import WorldConfig, make_world
from genads.parallel.model import ParallelConfig
from genads.parallel.policy_gradient import plackett_luce_logprob, plackett_luce_sample
from genads.parallel.train import ParallelTrainConfig
from genads.tokenize.pq import PQConfig

TINY = ParallelE2EConfig(
    candidates=4, codes=PQConfig(n_codes=4, nbits=2, dim=8),
    model=ParallelConfig(d_model=16, d_code=4, n_layer=1, max_items=12, n_items=1),
    train=ParallelTrainConfig(batch_size=64, epochs=3, warmup_steps=2, n_negatives=32, patience=2),
    value=ValueConfig(d_value=8, epochs=6, lr=5e-3))


@pytest.fixture(scope="module")
def market():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    world = make_world(WorldConfig(n_users=300, n_ads=160, n_advertisers=20, n_organic=40, dim=8, topics=4), rng)
    logs = make_logs(world, LogConfig(history_len=8, log_requests=3000, max_history=12), rng)
    pipe, info = build_parallel_e2e(world, logs, TINY, seed=0)
    return world, logs, pipe, info


def test_plackett_luce_logprob_is_a_distribution_over_ordered_lists() -> None:
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.0]], dtype=torch.float64)
    lists = torch.tensor(list(itertools.permutations(range(4), 2)))
    total = plackett_luce_logprob(scores.expand(len(lists), -1), lists).exp().sum()
    assert float(total) == pytest.approx(1.0, abs=1e-9)


def test_plackett_luce_sample_never_draws_masked_ads_and_follows_the_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.tensor([[3.0, 0.0, float("-inf"), 1.0]]).expand(4000, -1)
    lists = plackett_luce_sample(scores, 2, gen)
    assert not (lists == 2).any()
    first = np.bincount(lists[:, 0].numpy(), minlength=4) / 4000
    p = torch.softmax(scores[0], 0).numpy()
    assert np.allclose(first, p, atol=0.03)


def test_rl_raises_the_expected_reward_on_a_tiny_world(market) -> None:
    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)
    bids = world.value
    users = np.random.default_rng(9).integers(world.config.n_users, size=600)  # evaluation users, not RL's draws
    before = expected_list_value(pipe, world, hist, users, bids, revenue_weight=0.5)
    head_before = {k: v.clone() for k, v in pipe.head.state_dict().items()}
    log = finetune(pipe, world, hist, bids, RLConfig(steps=60, requests=64, group=8, lr=3e-3, kl=0.02), seed=1)
    after = expected_list_value(pipe, world, hist, users, bids, revenue_weight=0.5)
    assert len(log) == 60 and all(np.isfinite(r["kl"]) for r in log)
    assert after["reward"] > before["reward"]
    for k, v in pipe.head.state_dict().items():  # the auction's calibrated pCTR head is untouched
        assert torch.equal(v, head_before[k])
    assert pipe.policy_head is not pipe.head


def test_rl_is_reproducible_for_a_seed(market) -> None:
    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)
    cfg = RLConfig(steps=3, requests=16, group=4)
    a = finetune(pipe.with_config(), world, hist, world.value, cfg, seed=3)
    b = finetune(pipe.with_config(), world, hist, world.value, cfg, seed=3)
    assert a == b


def _share(pipe, world, hist, users, adv: int) -> float:
    ads, _ = pipe.propose(hist[users], world.value > 0, world.value)
    return float((world.owner[ads[ads >= 0]] == adv).mean())


def test_the_budget_aware_reward_lowers_a_paced_advertisers_share(market) -> None:
    from dataclasses import replace

    world, logs, pipe, _ = market
    hist = left_pad(logs.histories, 12)
    users = np.random.default_rng(9).integers(world.config.n_users, size=600)
    ads, _ = pipe.propose(hist[users], world.value > 0, world.value)
    top = int(np.bincount(world.owner[ads[ads >= 0]], minlength=world.config.n_advertisers).argmax())
    # the advertiser the supervised policy shows most gets a budget far below what it would spend; the rest plenty
    tight = replace(world, budget_rate=np.where(np.arange(world.config.n_advertisers) == top, 0.5, 1e6))
    cfg = RLConfig(steps=40, requests=64, group=8, lr=3e-3, kl=0.02, revenue_weight=1.0)
    plain, aware = pipe.with_config(), pipe.with_config()
    finetune(plain, tight, hist, world.value, cfg, seed=5)
    log = finetune(aware, tight, hist, world.value, replace(cfg, budget_aware=True), seed=5)
    assert log[-1]["shadow_max"] > 0
    assert _share(aware, world, hist, users, top) < _share(plain, world, hist, users, top)
