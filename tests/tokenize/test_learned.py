"""RQ-VAE and the end-to-end (UniSID) tokenizer on tiny data: shapes, seeds, save/load, learning."""

import numpy as np
import pytest

from genads.tokenize import (
    ItemFeatures,
    RQVAEConfig,
    RQVAETokenizer,
    UniSIDConfig,
    UniSIDTokenizer,
    load_tokenizer,
    save_tokenizer,
)
from genads.tokenize.metrics import level_stats, quantisation_error


def _data(n=256, d=16, groups=8, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, groups, n)
    centers = rng.normal(size=(groups, d)) * 3
    x = (centers[label] + rng.normal(size=(n, d)) * 0.3).astype(np.float32)
    tokens = np.stack([label + 1, (label % 2) + groups + 1], axis=1).astype(np.int64)
    return x, label, ItemFeatures(tokens=tokens, vocab_size=groups + 3)


RQVAE_TINY = RQVAEConfig(levels=2, codebook_size=8, latent_dim=8, hidden=(32,), epochs=4, batch_size=64)
E2E_TINY = UniSIDConfig(levels=2, codebook_size=8, d_model=16, n_layers=1, n_heads=2, vector_tokens=2,
                        epochs=6, batch_size=64)


def test_rq_vae_fit_is_seeded_and_round_trips(tmp_path):
    x, _, _ = _data()
    tok = RQVAETokenizer(RQVAE_TINY)
    codes = tok.fit(x, seed=1)
    assert codes.shape == (256, 2) and codes.min() >= 0 and codes.max() < 8
    assert np.array_equal(codes, RQVAETokenizer(RQVAE_TINY).fit(x, seed=1))
    assert len(tok.history) == 4 and tok.history[-1]["loss"] < tok.history[0]["loss"]
    assert quantisation_error(x, tok.reconstruct(codes)) < 1.0
    save_tokenizer(tok, tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, RQVAETokenizer) and back.config == RQVAE_TINY
    assert np.array_equal(back.encode(x), codes)
    assert np.allclose(back.reconstruct(codes), tok.reconstruct(codes), atol=1e-6)


def test_rq_vae_restarts_dead_codes():
    x, _, _ = _data()
    tok = RQVAETokenizer(RQVAE_TINY)
    tok.fit(x, seed=0)
    used = np.zeros((2, 8), dtype=bool)
    used[:, :2] = True  # pretend only two codes per level were used
    import torch

    before = tok.model.codebooks.detach().clone()
    restarted = tok._restart(torch.from_numpy(used), [torch.from_numpy(x[:, :8]).float()] * 2,
                             torch.Generator().manual_seed(0))
    assert restarted == 12
    assert torch.equal(tok.model.codebooks[:, :2], before[:, :2])
    assert not torch.equal(tok.model.codebooks[:, 2:], before[:, 2:])


def test_e2e_fit_is_seeded_learns_groups_and_round_trips(tmp_path):
    x, label, feats = _data()
    rng = np.random.default_rng(0)
    same = rng.integers(0, 256, 400)
    partner = np.array([rng.choice(np.flatnonzero(label == label[i])) for i in same])
    feats.pairs = np.stack([same, partner], axis=1)
    tok = UniSIDTokenizer(E2E_TINY)
    codes = tok.fit(x, seed=2, features=feats)
    assert codes.shape == (256, 2) and codes.min() >= 0 and codes.max() < 8
    assert np.array_equal(codes, UniSIDTokenizer(E2E_TINY).fit(x, seed=2, features=feats))
    assert set(tok.history[0]) == {"contrastive", "reconstruction", "balance", "collaborative"}
    # codes carry the group: items of one group mostly share their first level
    purity = np.mean([np.bincount(codes[label == g, 0]).max() / (label == g).sum() for g in range(8)])
    assert purity > 0.6
    assert level_stats(codes, 8)[0]["used"] >= 4  # the balance term prevents collapse
    save_tokenizer(tok, tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, UniSIDTokenizer)
    assert np.array_equal(back.encode(x, feats), codes)
    assert back.embed(x, feats).shape == (256, 16)


def test_e2e_feature_errors_name_the_field():
    x, _, feats = _data(n=32)
    with pytest.raises(ValueError, match=r"features\.tokens"):
        UniSIDTokenizer(E2E_TINY).fit(x, features=ItemFeatures(tokens=feats.tokens, vocab_size=3))
    with pytest.raises(ValueError, match=r"features\.pairs"):
        UniSIDTokenizer(E2E_TINY).fit(x, features=ItemFeatures(pairs=np.array([[0, 99]])))
    with pytest.raises(ValueError, match="d_model"):
        UniSIDConfig(d_model=10, n_heads=4)
