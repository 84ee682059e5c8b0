import json

import numpy as np
import torch

from genads.cli import main
from genads.commands.tokenize import write_sids
from genads.data.split import leave_one_out
from genads.reward import load_reward_model


def test_reward_train_and_slate(cycle_dataset, tmp_path, capsys):
    torch.set_num_threads(1)
    split = leave_one_out(cycle_dataset)
    rng = np.random.default_rng(0)
    i = rng.permutation(split.n_items)
    sids = np.stack([i // 9, (i // 3) % 3, i % 3], axis=1)  # 30 distinct SIDs
    (tmp_path / "sids").mkdir()
    write_sids(tmp_path / "sids" / "sids.parquet", split.item_ids[1:], sids[:, :-1], sids)
    run = tmp_path / "run"
    assert main(["train", str(cycle_dataset.path), "--sids", str(tmp_path / "sids"), "--preset", "tiny",
                 "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    rm = tmp_path / "rm"
    assert main(["reward", "train", str(run), "--out", str(rm), "--requests", "40", "--slate-size", "5",
                 "--pool", "8", "--epochs", "1", "--d-model", "8", "--layers", "1"]) == 0
    model, record = load_reward_model(rm)
    assert model.config.use_history and record["fit"]["impressions"] == 80
    assert json.loads((rm / "reward_config.json").read_text())["simulation"]["slate_size"] == 5
    capsys.readouterr()
    user = int(split.users[0])
    assert main(["reward", "slate", str(run), "--reward", str(rm), "--user", str(user), "-k", "5",
                 "--pool", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"user {user}:") and len(out) == 6
    assert all("bid" in line and "pCTR" in line and "Item " in line for line in out[1:])
    assert main(["reward", "slate", str(run), "--reward", str(rm), "--user", "99999", "-k", "5"]) == 2


def test_reward_train_and_slate_on_a_parallel_run(cycle_dataset, tmp_path, capsys):
    """The reward pipeline over the parallel family: pools from exact (bid-aware) scoring, codes as descriptors."""
    torch.set_num_threads(1)
    split = leave_one_out(cycle_dataset)
    run = tmp_path / "run"
    assert main(["train", str(cycle_dataset.path), "--family", "parallel", "--preset", "tiny", "--sources",
                 "attributes,collab", "--out", str(run), "--quiet", "--epochs", "1"]) == 0
    rm = tmp_path / "rm"
    assert main(["reward", "train", str(run), "--out", str(rm), "--requests", "40", "--slate-size", "5",
                 "--pool", "8", "--epochs", "1", "--d-model", "8", "--layers", "1"]) == 0
    model, record = load_reward_model(rm)
    codes = np.load(run / "codes.npy")
    assert model.config.levels == codes.shape[1] and record["fit"]["impressions"] == 80
    capsys.readouterr()
    user = int(split.users[0])
    assert main(["reward", "slate", str(run), "--reward", str(rm), "--user", str(user), "-k", "5",
                 "--pool", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"user {user}:") and len(out) == 6
    ads = [int(line.split()[2]) for line in out[1:]]
    assert len(set(ads)) == 5 and set(ads) <= set(split.item_ids[1:].tolist())
