import json

import pandas as pd

from genads.cli import main
from genads.data.split import leave_one_out


def write_sids(folder, ad_ids, sids) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"ad_id": ad_ids, "sid": list(sids), "codes": list(sids[:, :-1])}).to_parquet(folder / "sids.parquet")


def test_train_eval_recommend_resume(cycle_dataset, cycle_sids, tmp_path, capsys):
    split = leave_one_out(cycle_dataset)
    write_sids(tmp_path / "sids", split.item_ids[1:], cycle_sids[1:])
    run = tmp_path / "run"
    assert main(["train", str(cycle_dataset.path), "--sids", str(tmp_path / "sids"), "--preset", "tiny",
                 "--out", str(run), "--quiet"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all("valid_ndcg@10" in r for r in rows)
    assert (run / "model.safetensors").is_file() and (run / "checkpoint" / "state.pt").is_file()

    assert main(["eval", str(run), "--quiet"]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert set(results) == {"generative-slate", "popularity"}
    assert 0.0 <= results["generative-slate"]["test"]["ndcg@10"] <= results["generative-slate"]["test"]["recall@10"]

    capsys.readouterr()
    user = int(split.users[0])
    assert main(["recommend", str(run), "--user", str(user), "-k", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"user {user}:")
    ads = [int(line.split()[2]) for line in out[1:]]
    assert len(ads) == len(set(ads)) == 5 and all(line.split("logp")[1].split(maxsplit=1)[1].startswith("Item ")
                                                  for line in out[1:])
    assert set(ads) <= set(split.item_ids[1:].tolist())

    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0  # finished run: nothing more to do
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_train_explains_missing_sids(cycle_dataset, tmp_path, capsys):
    assert main(["train", str(cycle_dataset.path), "--sids", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "sids.parquet not found" in capsys.readouterr().err


def test_train_refuses_sids_that_miss_catalogue_ads(cycle_dataset, cycle_sids, tmp_path, capsys):
    split = leave_one_out(cycle_dataset)
    write_sids(tmp_path / "sids", split.item_ids[2:], cycle_sids[2:])  # the first ad has no SID
    code = main(["train", str(cycle_dataset.path), "--sids", str(tmp_path / "sids"), "--out", str(tmp_path / "r")])
    assert code == 2 and "1 catalogue ads have no SID" in capsys.readouterr().err


def test_train_refuses_sids_made_from_all_events(cycle_dataset, cycle_sids, tmp_path, capsys):
    split = leave_one_out(cycle_dataset)
    write_sids(tmp_path / "sids", split.item_ids[1:], cycle_sids[1:])
    (tmp_path / "sids" / "metrics.json").write_text(json.dumps({"method": "rq-kmeans"}))  # before issue 20's fix
    code = main(["train", str(cycle_dataset.path), "--sids", str(tmp_path / "sids"), "--out", str(tmp_path / "r")])
    assert code == 2 and "run `genads tokenize` again" in capsys.readouterr().err
