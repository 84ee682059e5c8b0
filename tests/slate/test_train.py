import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from genads.baselines import Popularity
from genads.data.dataset import load_dataset
from genads.data.split import leave_one_out
from genads.decode.beam import generate_slate, live_trie
from genads.eval.metrics import ranking_metrics
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.slate.train import TrainConfig, fit, lr_at

TINY = TrainConfig(batch_size=16, lr=5e-3, warmup_steps=2, epochs=3, eval_every=1, patience=5)


def build(sids: np.ndarray, seed: int = 0, **overrides) -> SlateModel:
    torch.manual_seed(seed)
    return SlateModel(replace(sized_for(PRESETS["tiny"], sids), **overrides))


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[100] == pytest.approx(0.1)


def test_learns_the_cycle_and_beats_popularity(cycle_split, cycle_sids):
    model = build(cycle_sids, d_model=64)
    cfg = TrainConfig(batch_size=16, lr=1e-2, warmup_steps=3, epochs=50, eval_every=10, patience=3, mtp_weight=0.1)
    log = fit(model, cycle_sids, cycle_split, cfg, seed=0, progress=False)
    assert log[-1]["loss"] < log[0]["loss"]
    slate = generate_slate(model, live_trie(cycle_sids), cycle_sids, cycle_split.test.history, beam=20, slate_size=20)
    ours = ranking_metrics(slate.ads, cycle_split.test.target, ks=(10,))["recall@10"]
    pop = Popularity()
    pop.fit(cycle_split)
    base = ranking_metrics(pop.recommend(cycle_split.test.history, 10), cycle_split.test.target, ks=(10,))["recall@10"]
    assert ours > 0.6
    assert ours > base + 0.3


def test_resume_is_exact(cycle_split, cycle_sids, tmp_path):
    cfg = replace(TINY, epochs=4)
    straight = build(cycle_sids, dropout=0.1)
    fit(straight, cycle_sids, cycle_split, cfg, seed=1, run_dir=tmp_path / "a", until_step=10, progress=False)
    half = build(cycle_sids, dropout=0.1)
    fit(half, cycle_sids, cycle_split, cfg, seed=1, run_dir=tmp_path / "b", until_step=5, progress=False)
    resumed = build(cycle_sids, seed=99, dropout=0.1)  # weights must come from the checkpoint
    fit(resumed, cycle_sids, cycle_split, cfg, seed=1, run_dir=tmp_path / "b", resume=True, until_step=10,
        progress=False)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    rows = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in ("a", "b")]
    assert rows[0] == rows[1] and len(rows[0]) == 2  # 4 steps per epoch: two epochs finished by step 10
    assert "valid_ndcg@10" in rows[0][0]


def test_resume_without_checkpoint_says_so(cycle_split, cycle_sids, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(build(cycle_sids), cycle_sids, cycle_split, TINY, run_dir=tmp_path, resume=True, progress=False)


def _ddp_worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        split = leave_one_out(load_dataset(f"{folder}/ds"))
        sids = np.load(f"{folder}/sids.npy")
        model = build(sids)
        fit(model, sids, split, TINY, seed=2, until_step=6, progress=False)
        if rank == 0:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{folder}/ddp.safetensors")
    finally:
        dist.destroy_process_group()


def test_two_ddp_processes_match_one(cycle_dataset, cycle_sids, tmp_path):
    np.save(tmp_path / "sids.npy", cycle_sids)
    mp.spawn(_ddp_worker, args=(2, str(cycle_dataset.path.parent)), nprocs=2, join=True)
    single = build(cycle_sids)
    fit(single, cycle_sids, leave_one_out(cycle_dataset), TINY, seed=2, until_step=6, progress=False)
    ddp = load_file(str(cycle_dataset.path.parent / "ddp.safetensors"))
    moved = 0.0
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ddp[k], v, atol=2e-5, rtol=1e-4)
        moved = max(moved, float((v - build(cycle_sids).state_dict()[k]).abs().max()))
    assert moved > 1e-3  # training did change the weights


def test_time_budget_stops_at_the_first_epoch_end_with_best_weights(cycle_split, cycle_sids):
    model = build(cycle_sids)
    log = fit(model, cycle_sids, cycle_split, replace(TINY, epochs=5, time_budget_s=1e-6), seed=0, progress=False)
    assert len(log) == 1 and log[0]["stopped_by_time_budget"] and "valid_ndcg@10" in log[0]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="min_lr_ratio=2"):
        TrainConfig(min_lr_ratio=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trains_on_the_gpu_and_serves_on_the_cpu(cycle_split, cycle_sids):
    model = build(cycle_sids)
    log = fit(model, cycle_sids, cycle_split, TINY, seed=0, progress=False)
    assert len(log) == TINY.epochs and next(model.parameters()).device.type == "cpu"
    slate = generate_slate(model, live_trie(cycle_sids), cycle_sids, cycle_split.test.history, beam=10, slate_size=10)
    assert (slate.ads > 0).all()
