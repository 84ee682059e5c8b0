from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from genads.data.split import left_pad
from genads.market.e2e_parallel import build_joint
from genads.parallel.joint_value import JointConfig, item_logp, user_states
from tests.market.test_rl import TINY, market  # noqa: F401  (the shared tiny trained pipeline)


@pytest.fixture(scope="module")
def joint(market):  # noqa: F811
    world, logs, pipe, _ = market
    before = {k: v.clone() for k, v in pipe.model.state_dict().items()}
    warm = JointConfig(epochs=6, trunk_lr=1e-3, head_lr=1e-3, fresh_head=False, evals_per_epoch=1, patience=2)
    out, info = build_joint(pipe, world, logs, replace(TINY, joint=warm), seed=0)
    return pipe, before, out, info


def test_joint_training_lowers_held_out_click_logloss_and_moves_the_trunk(joint) -> None:
    pipe, before, out, info = joint
    # the trunk learned from clicks: its weights moved, and the kept epoch beats the frozen-trunk head held out
    assert info["best_epoch"] >= 1
    assert info["valid_logloss"] < info["valid_logloss_start"] - 1e-4
    moved = [k for k, v in out.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("blocks.") for k in moved)
    # the separately trained pipeline is untouched (joint training works on copies)
    assert all(torch.equal(v, before[k]) for k, v in pipe.model.state_dict().items())
    assert info["generator_valid_ndcg@10"] > 0
    assert (out.head.bias_info[1:] > 0).any() and (out.head.bias_sd[1:] > 0).all()


def test_a_fresh_joint_head_is_kept_after_training_and_beats_a_constant(market) -> None:  # noqa: F811
    world, logs, pipe, info0 = market
    out, info = build_joint(pipe, world, logs, replace(TINY, joint=JointConfig(epochs=3)), seed=0)
    assert info["best_epoch"] > 0  # the fresh head itself (epoch 0) is never kept
    assert info["valid_logloss"] < info["valid_logloss_start"]
    assert info["valid_logloss"] < info0["value_head"]["valid_logloss_constant"]
    assert not torch.equal(out.head.user.weight, pipe.head.user.weight)


def test_joint_states_match_what_the_pipeline_serves(joint, market) -> None:  # noqa: F811
    _, logs, _, _ = market
    _, _, out, _ = joint
    hist = left_pad(logs.histories, 12)[:40]
    h_serve, logp_serve, _ = out.user_state(hist)
    out.model.eval()
    with torch.no_grad():
        h, logp = user_states(out.model, out.item_codes, out.content, torch.as_tensor(hist))
        items = torch.arange(1, len(out.item_codes))
        pair = item_logp(logp.repeat_interleave(len(items), 0), out.item_codes, items.repeat(len(hist)))
    assert torch.allclose(h, h_serve, atol=1e-5)
    assert torch.allclose(pair.view(len(hist), -1), logp_serve, atol=1e-4)


def test_joint_pipeline_proposes_live_ads(joint, market) -> None:  # noqa: F811
    world, logs, _, _ = market
    _, _, out, _ = joint
    live = np.ones(world.config.n_ads, dtype=bool)
    live[::4] = False
    ads, pctr = out.propose(left_pad(logs.histories, 12)[:30], live, world.value)
    assert (ads >= 0).all() and live[ads].all() and ((pctr > 0) & (pctr < 1)).all()


def test_joint_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="click_weight"):
        JointConfig(click_weight=0.0)
    with pytest.raises(ValueError, match="epochs"):
        JointConfig(epochs=0)


def test_a_codes_plus_id_generator_serves_and_trains_jointly_on_its_item_softmax(market) -> None:  # noqa: F811
    from genads.market.e2e_parallel import build_parallel_e2e
    from genads.market.verdict import with_ids

    world, logs, _, _ = market
    cfg = replace(with_ids(TINY, 1.0), joint=JointConfig(epochs=2))
    # the ID part of the item logit has weight 1: scale * id_weight == 1
    scale = cfg.model.temperature / (cfg.codes.n_codes * cfg.train.item_temperature)
    assert cfg.model.id_weight * scale == pytest.approx(1.0)
    pipe, info = build_parallel_e2e(world, logs, cfg, seed=0)
    assert pipe.model.scores_ids and info["generator_valid_ndcg@10"] > 0
    hist = left_pad(logs.histories, 12)[:20]
    _, logp_serve, _ = pipe.user_state(hist)
    assert torch.allclose(logp_serve.exp().sum(1), torch.ones(len(hist)), atol=1e-4)  # a distribution over ads
    out, j_info = build_joint(pipe, world, logs, cfg, seed=0)
    out.model.eval()
    with torch.no_grad():
        _, logp = user_states(out.model, out.item_codes, out.content, torch.as_tensor(hist), cfg.train.item_temperature)
        items = torch.arange(1, len(out.item_codes))
        pair = item_logp(logp.repeat_interleave(len(items), 0), out.item_codes, items.repeat(len(hist)))
    _, logp_joint, _ = out.user_state(hist)
    assert logp.shape == (len(hist), len(items))
    assert torch.allclose(pair.view(len(hist), -1), logp_joint, atol=1e-4)
    assert j_info["valid_logloss"] <= j_info["valid_logloss_start"]
