"""The rerank demo step on the bundled demo data (fast mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genads.demo import STEPS, DemoContext, load_step
from genads.slate.model import PRESETS, SlateModel
from genads.slate.recommender import SlateRecommender


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> DemoContext:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    context = DemoContext(out=tmp_path_factory.mktemp("demo"), fast=True)
    load_step("genads.data.demo_step:run")(context)
    n = context.split.n_items  # stand-ins for the tokenize and slate steps: random unique SIDs, untrained model
    code = np.random.default_rng(0).permutation(16**3)[:n]
    sids = np.zeros((n + 1, 3), dtype=np.int64)
    sids[1:] = np.stack([code // 256, (code // 16) % 16, code % 16], axis=1)
    rec = SlateRecommender(sids, PRESETS["tiny"])
    torch.manual_seed(0)
    rec.model = SlateModel(rec.config).eval()
    context.artifacts.update(sids=sids, slate_model=rec)
    load_step("genads.reward.demo_step:run")(context)
    torch.set_num_threads(before)
    return context


def test_step_is_registered_after_auction() -> None:
    names = [name for name, _ in STEPS]
    assert names.index("rerank") == names.index("auction") + 1


def test_step_reports_decoders(ctx: DemoContext) -> None:
    m = ctx.metrics["rerank"]
    rows = {r["decoder"]: r for r in m["decoders"]}
    assert len(rows) == 5 and "plain beam" in rows and "bid-aware (max)" in rows
    assert rows["bid-aware (max)"]["mean_bid"] > rows["plain beam"]["mean_bid"]
    assert m["fit"]["slot_ctr"][0] > m["fit"]["slot_ctr"][-1]  # the simulated log is position-biased
    section = ctx.report.section("Slate reward model and bid-aware decoding")
    assert section.tables and section.images and "reward_model" in ctx.artifacts
