import numpy as np
import pytest
import torch

from genads.slate.model import (
    BOS,
    N_SPECIAL,
    PAD,
    PRESETS,
    SlateConfig,
    SlateModel,
    history_tokens,
    sized_for,
)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="d_model=30 must be divisible by n_head=4"):
        SlateConfig(d_model=30, n_head=4)
    with pytest.raises(ValueError, match="mtp_heads=-1"):
        SlateConfig(mtp_heads=-1)
    with pytest.raises(ValueError, match="sids must be"):
        sized_for(PRESETS["tiny"], np.zeros(3))


def test_history_tokens_layout():
    sids = np.array([[0, 0], [1, 2], [3, 0], [2, 2]])
    tokens, positions = history_tokens(np.array([[0, 1, 3], [0, 0, 2]]), sids, codebook_size=4, last_pos=7)
    W = 4
    assert tokens.tolist() == [
        [BOS, N_SPECIAL + 1, N_SPECIAL + W + 2, N_SPECIAL + 2, N_SPECIAL + W + 2],
        [PAD, PAD, BOS, N_SPECIAL + 3, N_SPECIAL + W + 0],
    ]
    assert positions.tolist() == [[0, 6, 6, 7, 7], [0, 0, 0, 7, 7]]


def test_causal_and_padding_invariant():
    cfg = sized_for(PRESETS["tiny"], np.array([[0, 0], [1, 2], [3, 0], [2, 2]]))
    torch.manual_seed(0)
    model = SlateModel(cfg).eval()
    sids = np.array([[0, 0], [1, 2], [3, 0], [2, 2]])
    a_tok, a_pos = history_tokens(np.array([[1, 2, 3]]), sids, 4, 7)
    b_tok, b_pos = history_tokens(np.array([[0, 0, 1, 2, 3], [3, 3, 3, 3, 3]]), sids, 4, 7)
    a, b = model(a_tok, a_pos), model(b_tok, b_pos)
    torch.testing.assert_close(a[0], b[0, -a.shape[1]:], atol=1e-5, rtol=1e-5)  # left padding changes nothing
    changed = a_tok.clone()
    changed[0, -1] = N_SPECIAL + cfg.codebook_size + 1
    c = model(changed, a_pos)
    torch.testing.assert_close(a[0, :-1], c[0, :-1])  # the future never leaks into the past
    assert not torch.allclose(a[0, -1], c[0, -1])


def test_multi_token_heads_and_level_logits():
    cfg = sized_for(PRESETS["tiny"], np.array([[0, 0, 0], [1, 2, 0], [3, 0, 1]]))
    model = SlateModel(cfg)
    assert len(model.mtp) == cfg.mtp_heads == 1
    h = torch.randn(5, cfg.d_model)
    assert model.level_logits(h, 2).shape == (5, cfg.codebook_size)
    assert model.mtp_hidden(h, 0).shape == h.shape
