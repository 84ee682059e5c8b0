"""The demo's serve step on a tiny trained-nothing pipeline: it writes a bundle that loads and serves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.auction.payment_net import PaymentNet, PaymentNetConfig
from genads.data.split import leave_one_out
from genads.demo import DemoContext
from genads.serve import demo_step
from genads.serve.bundle import load_bundle
from genads.slate.model import PRESETS, SlateModel
from genads.slate.recommender import SlateRecommender
from genads.slate.train import TRAIN_PRESETS
from genads.tokenize import disambiguate


def fake_ctx(tmp_path, dataset, reward: bool = False, use_score: bool = False) -> DemoContext:
    split = leave_one_out(dataset)
    rng = np.random.default_rng(0)
    sids = np.zeros((split.n_items + 1, 3), dtype=np.int64)
    sids[1:] = disambiguate(rng.integers(0, 4, size=(split.n_items, 2)))
    torch.manual_seed(0)
    rec = SlateRecommender(sids, PRESETS["tiny"], TRAIN_PRESETS["tiny"])
    rec.model = SlateModel(rec.config).eval()
    ctx = DemoContext(out=tmp_path / "run", fast=True)
    ctx.dataset, ctx.split = dataset, split
    ctx.artifacts.update({"sids": sids, "slate_model": rec,
                          "payment_net": PaymentNet(PaymentNetConfig(n_bidders=5, slot_ctr=(1.0, 0.6, 0.3), hidden=8))})
    if reward:
        model = pytest.importorskip("genads.reward.model")
        ctx.artifacts["reward_model"] = model.SlateRewardModel(model.RewardConfig(
            levels=3, codebook_size=int(sids.max()) + 1, max_slate=5, use_history=True, use_score=use_score)).eval()
    return ctx


def test_serve_step_writes_a_bundle_that_serves(tmp_path, cycle_dataset, capsys):
    ctx = fake_ctx(tmp_path, cycle_dataset)
    demo_step.run(ctx)
    out = capsys.readouterr().out
    assert "make serve" in out and "curl -s localhost:8000/v1/ads" in out and "localhost:8000/console" in out
    bundle = load_bundle(ctx.out / "serve")
    assert len(bundle.ads) == ctx.split.n_items and bundle.payment_net is not None
    assert np.array_equal(bundle.codes, ctx.artifacts["sids"]) and bundle.histories
    example = ctx.metrics["serve"]["example"]
    assert example["mechanism"] == "learned" and len(example["slate"]) == 3
    assert all(0 <= s["price"] <= s["bid"] for s in example["slate"])
    assert any(sec.title == "Serving" for sec in ctx.report.sections)


@pytest.mark.parametrize("use_score", [False, True], ids=["bids-history", "generator-score"])
def test_serve_step_bundles_the_reward_model(tmp_path, cycle_dataset, use_score):
    """A reward model that reads the slate model's log-probabilities gets them from the decoder's slate."""
    ctx = fake_ctx(tmp_path, cycle_dataset, reward=True, use_score=use_score)
    demo_step.run(ctx)
    assert ctx.metrics["serve"]["reward_model"] and load_bundle(ctx.out / "serve").reward is not None
    assert len(ctx.metrics["serve"]["example"]["slate"]) == 3
