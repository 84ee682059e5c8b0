"""User/context tokens, training windows that cover every target, label smoothing."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.data.split import EvalSet, SequenceSplit, SplitConfig
from genads.decode.beam import generate_slate, live_trie
from genads.eval.harness import rank_all
from genads.slate.model import (
    PRESETS,
    SlateConfig,
    SlateModel,
    WithPrefix,
    history_tokens,
    sized_for,
    user_bucket,
)
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TrainConfig, training_windows

SIDS = np.array([[0, 0], [1, 2], [3, 0], [2, 2], [0, 1]])


def split_of(seqs: list[list[int]]) -> SequenceSplit:
    empty = EvalSet(np.zeros(0, np.int64), np.zeros((0, 1), np.int64), np.zeros(0, np.int64))
    return SequenceSplit(np.arange(6), np.arange(len(seqs)), [np.asarray(s, np.int64) for s in seqs], empty, empty,
                         SplitConfig())


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=6), max_items=st.integers(1, 6))
def test_windows_make_every_item_a_target(lengths, max_items):
    seqs = [list(range(100 * u + 1, 100 * u + 1 + n)) for u, n in enumerate(lengths)]
    windows, owners = training_windows(split_of(seqs), max_items)
    assert windows.shape[1] == max_items + 1
    for u, seq in enumerate(seqs):
        mine = [w[w > 0].tolist() for w in windows[owners == u]]
        assert (len(mine) > 0) == (len(seq) > 0)
        targets = set()
        for w in mine:  # contiguous slices of the sequence; every item after a window's first is a target
            start = seq.index(w[0])
            assert seq[start:start + len(w)] == w
            targets.update(range(start + 1, start + len(w)))
        assert targets == set(range(1, len(seq)))
        if seq:
            assert mine[0] == seq[-max_items - 1:]  # the most recent window comes first
            assert len(mine) == max(1, -(-(len(seq) - 1) // max_items))  # no more windows than needed


def test_user_bucket_is_stable_and_in_range():
    a = user_bucket(np.array([3, 17, 123456789]), 10)
    assert a.tolist() == user_bucket(np.array(["3", "17", "123456789"]), 10).tolist()
    assert ((a >= 0) & (a < 10)).all()
    with pytest.raises(ValueError, match="buckets=0"):
        user_bucket(np.array([1]), 0)


def test_config_validates_prefix_fields_and_label_smoothing():
    with pytest.raises(ValueError, match="user_buckets=-1"):
        SlateConfig(user_buckets=-1)
    with pytest.raises(ValueError, match=r"label_smoothing=1\.0"):
        TrainConfig(label_smoothing=1.0)


def test_user_and_context_tokens_sit_at_bos():
    cfg = replace(sized_for(PRESETS["tiny"], SIDS), user_buckets=7, context_size=3)
    torch.manual_seed(0)
    model = SlateModel(cfg).eval()
    tok, pos = history_tokens(np.array([[0, 1, 2], [3, 4, 1]]), SIDS, cfg.codebook_size, 7)
    plain = model(tok, pos)
    users, ctx = torch.tensor([1, 5]), torch.tensor([0, 2])
    with_user = model(tok, pos, users=users)
    both = model(tok, pos, users=users, context=ctx)
    assert not torch.allclose(plain[:, -1], with_user[:, -1])
    assert not torch.allclose(with_user[:, -1], both[:, -1])
    swapped = model(tok.flip(0), pos.flip(0), users=users.flip(0), context=ctx.flip(0))
    torch.testing.assert_close(swapped.flip(0), both)  # each row reads its own ids
    with pytest.raises(ValueError, match=r"user ids must be in \[0, 7\)"):
        model(tok, pos, users=torch.tensor([0, 7]))
    bare = SlateModel(sized_for(PRESETS["tiny"], SIDS))
    with pytest.raises(ValueError, match="no context token"):
        bare(tok, pos, context=ctx)


def test_beam_search_reads_each_requests_user():
    cfg = replace(sized_for(PRESETS["tiny"], SIDS), user_buckets=5)
    torch.manual_seed(1)
    model = SlateModel(cfg).eval()
    with torch.no_grad():
        model.user.weight.mul_(50)  # make the user token matter
    history = np.array([[0, 1, 2], [3, 4, 1], [3, 4, 1]])
    users = torch.tensor([4, 0, 2])
    trie = live_trie(SIDS)
    batch = generate_slate(WithPrefix(model, users, None), trie, SIDS, history, beam=4, slate_size=3)
    assert ((batch.ads >= 1) & (batch.ads <= 4)).all()
    for b in range(3):  # a batch row equals that request decoded alone with its own user
        alone = generate_slate(WithPrefix(model, users[b:b + 1], None), trie, SIDS, history[b:b + 1], beam=4,
                               slate_size=3)
        assert alone.ads[0].tolist() == batch.ads[b].tolist()
        np.testing.assert_allclose(alone.scores[0], batch.scores[b], atol=1e-5)
    plain = generate_slate(model, trie, SIDS, history, beam=4, slate_size=3)
    assert not np.allclose(plain.scores[1:], batch.scores[1:])


def test_training_with_user_tokens_and_label_smoothing(cycle_split, cycle_sids):
    rec = SlateRecommender(cycle_sids, replace(PRESETS["tiny"], user_buckets=16),
                           TrainConfig(batch_size=16, lr=5e-3, warmup_steps=2, epochs=2, eval_every=2,
                                       label_smoothing=0.1))
    log = rec.fit(cycle_split, seed=0, progress=False)
    assert len(log) == 2 and np.isfinite(log[-1]["loss"])
    assert rec.model.user.weight.grad is not None or rec.model.user.weight.abs().sum() > 0
    slate = rec.slate(cycle_split.test.history[:4], 3, users=cycle_split.test.users[:4])
    assert slate.ads.shape == (4, 3) and (slate.ads > 0).all()


def test_harness_scores_a_user_token_model_with_its_users(cycle_split, cycle_sids):
    """``genads eval`` (evaluate_split) ranks as trained: with the user token, never silently without it."""
    rec = SlateRecommender(cycle_sids, replace(PRESETS["tiny"], user_buckets=8),
                           TrainConfig(batch_size=16, lr=5e-3, warmup_steps=2, epochs=1, eval_every=1))
    rec.fit(cycle_split, seed=0, progress=False)
    with torch.no_grad():
        rec.model.user.weight.mul_(50)  # make the user token decide the ranking
    cases = cycle_split.test
    with_users = rec.recommend(cases.history, 5, users=cases.users)
    assert rec.uses_users and np.array_equal(rank_all(rec, cases, 5), with_users)
    plain = generate_slate(rec.model, rec.trie, rec.sids, cases.history, beam=rec.train.beam, slate_size=5).ads
    assert not np.array_equal(plain, with_users)  # the token matters, so dropping it would show
    with pytest.raises(ValueError, match="user_buckets=8"):
        rec.recommend(cases.history, 5)


def test_a_beam_below_the_slate_size_is_an_error_not_a_wider_beam(cycle_split, cycle_sids):
    rec = SlateRecommender(cycle_sids, PRESETS["tiny"], TrainConfig(batch_size=16, epochs=1, eval_every=1, beam=5))
    rec.fit(cycle_split, seed=0, progress=False)
    history = cycle_split.test.history[:3]
    assert rec.recommend(history, 5).shape == (3, 5)
    with pytest.raises(ValueError, match=r"beam width 5 .* below the slate size k=10"):
        rec.recommend(history, 10)
    assert rec.slate(history, 10, beam=10).ads.shape == (3, 10)  # a wider beam only when asked for
