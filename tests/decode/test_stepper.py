"""BeamStepper (history KV shared by a request's beams) against full re-reads of each beam's sequence."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genads.decode.stepper import BeamStepper
from genads.slate.model import N_SPECIAL, history_tokens

from .test_beam import SIDS, histories, model_for


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 100), k=st.integers(1, 5))
def test_steps_equal_full_forward_of_each_beam(seed, k):
    model = model_for(SIDS, seed % 3)
    cfg = model.config
    hist = histories(seed, n=3)
    tokens, positions = history_tokens(hist, SIDS, cfg.codebook_size, cfg.max_items - 1)
    rng = np.random.default_rng(seed)
    stepper = BeamStepper(model, tokens, positions)
    B = len(hist)
    beams = [[[] for _ in range(k)] for _ in range(B)]  # codes generated so far per beam
    for level in range(cfg.levels - 1):
        parent = torch.from_numpy(rng.integers(0, k if level else 1, size=(B, k)))
        codes = torch.from_numpy(rng.integers(0, cfg.codebook_size, size=(B, k)))
        stepper.reorder(parent)
        h = stepper.step(codes, level)  # (B, k, D)
        beams = [[beams[b][int(parent[b, j])] + [int(codes[b, j])] for j in range(k)] for b in range(B)]
        for b in range(B):
            for j in range(k):
                extra = torch.tensor([[N_SPECIAL + lv * cfg.codebook_size + c for lv, c in enumerate(beams[b][j])]])
                seq = torch.cat([tokens[b:b + 1], extra], dim=1)
                pos = torch.cat([positions[b:b + 1], torch.full((1, level + 1), cfg.max_items)], dim=1)
                with torch.no_grad():
                    want = model(seq, pos)[0, -1]
                torch.testing.assert_close(h[b, j], want, rtol=1e-5, atol=1e-5)
