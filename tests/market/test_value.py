from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.eval.ctr_metrics import mean_request_auc
from genads.market.value import ValueConfig, ValueHead, fit_value_head


def test_value_head_recovers_a_known_position_free_ctr() -> None:
    """Clicks drawn from slot_ctr[slot] x sigmoid(<U h, V x> + b_ad - 2): the fitted head's pCTR tracks the true
    one and is calibrated (mean pCTR / mean true CTR near 1), on rows it was not fitted on."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    n_items, d, f, k, n_req = 40, 6, 5, 3, 12000
    feats = torch.from_numpy(rng.standard_normal((n_items + 1, f)).astype(np.float32))
    u_true, v_true = rng.standard_normal((d, 4)), rng.standard_normal((f, 4))
    bias = 0.5 * rng.standard_normal(n_items + 1)
    states = rng.standard_normal((n_req, d)).astype(np.float32)
    items = np.stack([rng.choice(np.arange(1, n_items + 1), k, replace=False) for _ in range(n_req)]).reshape(-1)
    request = np.repeat(np.arange(n_req), k)
    slot = np.tile(np.arange(k), n_req)
    slot_ctr = np.array([1.0, 0.6, 0.4])
    h = states[request]
    logit = (h @ u_true * (feats.numpy()[items] @ v_true)).sum(1) / 2 + bias[items] - 2.0
    true_ctr = 1 / (1 + np.exp(-logit))
    click = (rng.random(len(items)) < slot_ctr[slot] * true_ctr).astype(np.float32)
    cfg = ValueConfig(d_value=8, epochs=30, lr=1e-2, patience=4, calibrate=True)
    head = ValueHead(d, feats, cfg)
    info = fit_value_head(head, torch.from_numpy(h), torch.zeros(len(items)), torch.from_numpy(items), slot, click,
                          request, slot_ctr, cfg, seed=0)
    held = request >= round(n_req * 0.8)
    with torch.no_grad():
        p = torch.sigmoid(head.pair_logits(torch.from_numpy(h[held]), torch.zeros(int(held.sum())),
                                           torch.from_numpy(items[held]))).numpy()
    assert np.corrcoef(p, true_ctr[held])[0, 1] > 0.8
    assert 0.85 < p.mean() / true_ctr[held].mean() < 1.15
    assert info["valid_logloss"] < info["valid_logloss_constant"]
    assert info["valid_auc_within_request"] > 0.6


def test_platt_ablation_reads_only_the_generator_score() -> None:
    head = ValueHead(4, torch.randn(6, 3), ValueConfig(factors=False))
    h = torch.randn(2, 4)
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0, -5.0]])
    out = head.logits(h, logp.expand(2, -1))
    assert torch.allclose(out[0], out[1])  # the state does not enter
    assert (out[0, :-1] > out[0, 1:]).all()  # monotone in log P (rel starts positive)


def test_within_request_auc() -> None:
    score = np.array([0.9, 0.1, 0.5, 0.2, 0.8, 0.3])
    click = np.array([1, 0, 0, 0, 1, 1])
    request = np.array([0, 0, 1, 1, 2, 2])  # request 1 has no click, request 2 no non-click: both skipped
    assert mean_request_auc(score, click, request) == 1.0
    assert mean_request_auc(-score, click, request) == 0.0


def test_target_attention_reads_the_history() -> None:
    torch.manual_seed(0)
    feats = torch.randn(7, 3)
    head = ValueHead(4, feats, ValueConfig(attention=True))
    h, logp = torch.randn(2, 4), torch.zeros(2, 6)
    hist = torch.tensor([[0, 1, 2], [0, 1, 2]])
    same = head.logits(h[:1].expand(2, -1), logp, torch.arange(1, 7), hist)
    assert torch.allclose(same[0], same[1])
    other = head.logits(h[:1].expand(2, -1), logp, torch.arange(1, 7), torch.tensor([[0, 1, 2], [0, 5, 6]]))
    assert torch.allclose(other[0], same[0]) and not torch.allclose(other[1], same[1])
    pair = head.pair_logits(h[:1].expand(2, -1), logp[:, 0], torch.tensor([3, 3]), torch.tensor([[0, 1, 2], [0, 5, 6]]))
    assert torch.allclose(pair, other[:, 2], atol=1e-5)
    with pytest.raises(ValueError, match="history"):
        head.logits(h, logp, torch.arange(1, 7))
