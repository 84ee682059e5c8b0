"""The shared training loop on a toy model: early stopping keeps the best weights, budgets stop at an epoch end,
and a run cut at any step resumes to the same weights as one that never stopped."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genads import training


def _fit(run_dir=None, resume=False, until_step=None, patience=3, epochs=8, scores=None, budgets=None):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state, stopper = training.start(run_dir, model, opt, resume, patience)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3

    def step(rows):
        loss = ((model(x[rows]).squeeze(1) - y[rows]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach()), 0.0

    def end_epoch(start):
        row = {"epoch": state.epoch + 1, "loss": state.epoch_loss / max(state.epoch_batches, 1)}
        figure = (lambda r: scores[state.epoch]) if scores else (lambda r: -float(((model(x).squeeze(1) - y) ** 2).mean().detach()))
        return stopper.end_epoch(state, row, epochs=epochs, eval_every=1, model=model, validate=figure)

    log = training.run_epochs(model, opt, state, stopper, batches=lambda e: np.arange(32).reshape(4, 8),
                              step=step, end_epoch=end_epoch, postfix=lambda r: {}, total=4 * epochs, desc="toy",
                              run_dir=run_dir, until_step=until_step, progress=False,
                              budgets=budgets or training.Budgets())
    return model, state, log


def test_patience_stops_and_the_best_weights_come_back():
    model, state, log = _fit(scores=[0.1, 0.5, 0.2, 0.3, 0.4, 0.9, 0.9, 0.9], patience=3)
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5] and state.best == 0.5 and state.best_epoch == 2
    assert [r.get("improved", False) for r in log] == [True, True, False, False, False]
    again, _, _ = _fit(scores=[0.1, 0.5, 0.2, 0.3, 0.4], patience=3, epochs=2)  # the same first two epochs
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)  # epoch 2's weights, not epoch 5's


def test_a_cpu_budget_stops_at_the_first_epoch_end():
    _, state, log = _fit(budgets=training.Budgets(cpu_s=1e-9))
    assert len(log) == 1 and log[0]["stopped_by_cpu_budget"] and not state.done  # this call ends, the run does not


def test_a_run_stopped_by_its_budget_resumes_where_it_stopped(tmp_path):
    """A budget ends the call with the best weights, not the run: resuming trains the remaining epochs and ends
    with the weights of an uninterrupted run."""
    whole, _, log = _fit()
    _, _, cut = _fit(run_dir=tmp_path, budgets=training.Budgets(cpu_s=1e-9))
    assert [r["epoch"] for r in cut] == [1] and cut[0]["stopped_by_cpu_budget"]
    rest, state, log2 = _fit(run_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in log2] == [r["epoch"] for r in log][1:] and state.done
    for a, b in zip(whole.parameters(), rest.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_a_cut_run_resumes_to_the_same_weights(tmp_path):
    whole, _, log = _fit()
    _fit(run_dir=tmp_path, until_step=7)  # cut inside epoch 2
    rest, _, log2 = _fit(run_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in log2] == [r["epoch"] for r in log][1:]
    for a, b in zip(whole.parameters(), rest.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)
