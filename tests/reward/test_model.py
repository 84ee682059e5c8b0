import numpy as np
import pytest
import torch

from genads.reward import (
    ClickModel,
    RewardConfig,
    RewardTrainConfig,
    SlateRewardModel,
    fit,
    load_reward_model,
    popularity_pools,
    save_reward_model,
    simulate_log,
)
from genads.reward.model import slate_inputs

S = 5


def trained(market, decay: float, **cfg) -> tuple[SlateRewardModel, dict]:
    sids, bids, pop = market
    pools = popularity_pools(pop, 3000, 10, np.random.default_rng(1))
    log = simulate_log(pools, np.zeros(3000, dtype=int), pop, ClickModel(position_decay=decay, base_ctr=0.2),
                       slate_size=S, include_prob=0.0, repeats=1, seed=1)
    torch.manual_seed(0)
    model = SlateRewardModel(RewardConfig(levels=2, codebook_size=8, max_slate=S, d_model=16, n_layer=1, n_head=2,
                                          **cfg))
    return model, fit(model, log, sids, bids, RewardTrainConfig(epochs=6, batch_size=64, lr=1e-2), seed=0)


def first_and_last(model, market) -> np.ndarray:
    """pCTR of ad 1 at the top and of the same ad at the bottom of the reversed slate; same for ad 5."""
    sids, bids, _ = market
    p = model.predict(*slate_inputs(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]]), sids, bids))[..., 0].numpy()
    return np.array([[p[0, 0], p[1, 4]], [p[1, 0], p[0, 4]]])


def test_learns_position_effects_from_position_biased_clicks(market):
    model, report = trained(market, decay=1.0)
    top, bottom = first_and_last(model, market).T
    assert (top / bottom > 2.0).all()  # examination 1 vs 1/5: the same ad, reordered, gets another pCTR
    assert report["valid_logloss"] < 0.3


def test_control_without_position_bias_predictions_barely_move(market):
    model, _ = trained(market, decay=0.0)
    top, bottom = first_and_last(model, market).T
    assert np.abs(top / bottom - 1.0).max() < 0.25


def test_save_load_roundtrip(market, tmp_path):
    model, _ = trained(market, decay=1.0, use_history=False)
    save_reward_model(model, tmp_path / "rm", extra={"note": "x"})
    loaded, record = load_reward_model(tmp_path / "rm")
    assert record["note"] == "x" and loaded.config == model.config
    np.testing.assert_allclose(first_and_last(loaded, market), first_and_last(model, market), rtol=1e-6)


def test_history_and_cvr_heads(market):
    sids, bids, pop = market
    rng = np.random.default_rng(0)
    history = rng.integers(0, 41, (200, 6))
    pools = popularity_pools(pop, 200, 10, rng)
    log = simulate_log(pools, history[:, -1], pop, ClickModel(conversion_rate=0.3), slate_size=S, include_prob=0.8,
                       repeats=2, seed=0)
    assert log.conversions is not None and (log.conversions <= log.clicks).all()
    model = SlateRewardModel(RewardConfig(levels=2, codebook_size=8, max_slate=S, d_model=8, n_layer=1, n_head=1,
                                          use_history=True, cvr=True))
    report = fit(model, log, sids, bids, RewardTrainConfig(epochs=1), seed=0, history=history)
    assert np.isfinite(report["train_loss"]).all()
    s, b, v = slate_inputs(log.slates[:3], sids, bids)
    h = torch.as_tensor(sids[history[:3]])
    out = model.predict(s, b, v, h, torch.as_tensor(history[:3] > 0))
    assert out.shape == (3, S, 2) and ((out >= 0) & (out <= 1)).all()
    with pytest.raises(ValueError, match="history"):
        model.predict(s, b, v)


def test_padding_positions_and_config_errors(market):
    sids, bids, _ = market
    model = SlateRewardModel(RewardConfig(levels=2, codebook_size=8, max_slate=S, d_model=8, n_layer=1, n_head=1))
    p = model.predict(*slate_inputs(np.array([[3, 4, -1, -1, -1], [-1] * 5]), sids, bids))
    assert torch.isfinite(p).all() and (p[0, 2:] == 0).all() and (p[1] == 0).all()
    with pytest.raises(ValueError, match="max_slate"):
        model.predict(*slate_inputs(np.ones((1, S + 1), dtype=int), sids, bids))
    with pytest.raises(ValueError, match="d_model"):
        RewardConfig(levels=2, codebook_size=8, d_model=10, n_head=4)
    with pytest.raises(ValueError, match="levels"):
        RewardConfig(levels=0, codebook_size=8)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"reward_config\.json"):
        load_reward_model(tmp_path)
