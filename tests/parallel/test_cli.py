import json

from genads.cli import main
from genads.data.split import leave_one_out


def test_train_eval_recommend_resume_parallel(cycle_dataset, tmp_path, capsys):
    split = leave_one_out(cycle_dataset)
    run = tmp_path / "run"
    assert main(["train", str(cycle_dataset.path), "--family", "parallel", "--preset", "tiny",
                 "--sources", "attributes,collab", "--out", str(run), "--quiet"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all("valid_ndcg@10" in r for r in rows)
    for name in ("model.safetensors", "codes.npy", "parallel.json", "codebook.json", "codebook.safetensors"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["family"] == "parallel"

    assert main(["eval", str(run), "--quiet"]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert set(results) == {"generative-parallel", "popularity"}
    assert 0.0 <= results["generative-parallel"]["test"]["ndcg@10"] <= results["generative-parallel"]["test"]["recall@10"]

    capsys.readouterr()
    user = int(split.users[0])
    assert main(["recommend", str(run), "--user", str(user), "-k", "25"]) == 0  # k above any beam: exact scoring
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"user {user}:")
    ads = [int(line.split()[2]) for line in out[1:]]
    assert len(ads) == len(set(ads)) == 25 and set(ads) <= set(split.item_ids[1:].tolist())

    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0  # finished run: nothing more to do
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
