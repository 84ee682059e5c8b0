import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.creative import transformer as tt
from genads.creative.metrics import factuality, repetition_rate

WORDS = ["red", "blue", "cotton", "wool", "shirt", "coat", "slim", "warm", "soft", "light"]


def _examples(n, seed=0):
    """The reference says the selling points in alphabetical order, first three only."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sps = tuple(rng.choice(WORDS, size=5, replace=False))
        out.append(tt.TitleExample(sps, "a product", (), " ".join(sorted(sps)[:3])))
    return out


TINY = dict(n_layer=1, d_model=32, n_head=2, max_len=48, max_title_words=4)


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster on a busy machine
    data = _examples(120)
    vocab = tt.Vocab.build(data)
    cfg = tt.TitleModelConfig(vocab_size=len(vocab), dropout=0.0, **TINY)
    model, vocab, losses = tt.fit(data, cfg, tt.TrainConfig(epochs=16, batch_size=24, lr=1e-2), vocab)
    yield model, vocab, losses
    torch.set_num_threads(threads)


def test_training_learns_the_rule(trained):
    model, vocab, losses = trained
    assert losses[-1] < 0.5 * losses[0]
    gen = tt.TransformerTitleGenerator(model, vocab)
    test = _examples(30, seed=1)
    exact = np.mean([gen(list(e.selling_points), e.description) == e.target.split() for e in test])
    assert exact > 0.5


@settings(max_examples=25, deadline=None)
@given(sps=st.lists(st.sampled_from([*WORDS, "unseen word", "red coat"]), min_size=1, max_size=7),
       max_words=st.integers(1, 4))
def test_constrained_decoding(trained, sps, max_words):
    model, vocab, _ = trained
    words = tt.TransformerTitleGenerator(model, vocab, max_words=max_words)(sps, "x", ["red shirt", "warm coat"])
    assert len(words) <= max_words
    assert factuality(words, sps) == 1.0 and repetition_rate(words) == 0.0
    assert words or not any(w in vocab.stoi for s in sps for w in s.split())


def test_save_load_round_trip(trained, tmp_path):
    model, vocab, _ = trained
    loaded = tt.load(tt.save(tmp_path / "m", model, vocab))
    x = torch.tensor([[tt.BOS, 8, 9, tt.SEP, tt.TITLE]])
    assert torch.equal(model(x), loaded.model(x))
    sps = ["red", "coat", "wool", "slim"]
    assert loaded(sps) == tt.TransformerTitleGenerator(model, vocab)(sps)


def test_prefix_is_bounded():
    vocab = tt.Vocab(WORDS)
    cfg = tt.TitleModelConfig(vocab_size=len(vocab), **TINY)
    ex = tt.TitleExample(tuple(WORDS), "word " * 100, tuple(["red blue cotton wool"] * 50))
    prefix = tt.encode_prefix(ex, vocab, cfg)
    assert prefix[-1] == tt.TITLE and len(prefix) + cfg.max_title_words + 1 <= cfg.max_len


def test_config_validation():
    with pytest.raises(ValueError, match="n_head"):
        tt.TitleModelConfig(vocab_size=50, d_model=30, n_head=4)
    with pytest.raises(ValueError, match="vocab_size"):
        tt.TitleModelConfig(vocab_size=3)
