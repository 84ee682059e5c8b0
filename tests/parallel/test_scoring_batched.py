"""LiveAds scores a batch by one flat embedding_bag sum (issue 29): every row gets exactly the scores it gets alone
(m gathers), also after ads are added, removed and the table grows, and the sums are the exact per-ad sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.parallel import LiveAds, score_items


def _logp(b: int, m: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, m, k, generator=g), -1)


def _rows_alone(live: LiveAds, logp: torch.Tensor) -> torch.Tensor:
    return torch.cat([live.scores(logp[b:b + 1])[1] for b in range(len(logp))])


def test_a_batch_scores_each_row_exactly_as_alone_through_changes():
    rng = np.random.default_rng(0)
    m, k = 6, 16
    codes = rng.integers(0, k, size=(80, m))
    live = LiveAds(codes, live=range(1, 20))  # capacity 19: adding more grows the table
    logp = _logp(5, m, k, seed=1)
    keys, batched = live.scores(logp)  # the flat index is made here
    assert torch.equal(batched, _rows_alone(live, logp))
    for step in range(40):
        if step % 3 == 2:
            live.remove(int(rng.choice(live.keys)))
        else:
            live.add(20 + step, codes[20 + step])
        keys, batched = live.scores(logp)
        assert torch.equal(batched, _rows_alone(live, logp)), step
    live.add(5, codes[6])  # new codes for a live key
    keys, batched = live.scores(logp)
    assert torch.equal(batched, _rows_alone(live, logp))
    reference = score_items(logp, torch.from_numpy(codes[keys.numpy()]))
    reference[:, keys.numpy() == 5] = score_items(logp, torch.from_numpy(codes[[6]]))
    torch.testing.assert_close(batched, reference, rtol=0, atol=1e-5)


def test_codes_beyond_the_codebook_still_fail_in_a_batch():
    live = LiveAds(np.array([[0, 0], [1, 2], [3, 1]]))
    live.scores(_logp(3, 2, 4, seed=0))
    live.add(3, np.array([9, 0]))  # code 9 >= K = 4: it must not read another head's row
    with pytest.raises((IndexError, RuntimeError), match="out of"):  # torch's index error, as with one row
        live.scores(_logp(3, 2, 4, seed=0))
