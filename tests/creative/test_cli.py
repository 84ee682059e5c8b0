import json

import pytest
from PIL import Image

from genads.cli import build_parser, main
from genads.creative.fixtures import write_fixtures

FILES = ["title.txt", "ad.svg", "ad.png", "layout.json", "metrics.json"]


def test_help_lists_creative():
    assert "creative" in build_parser().format_help()


def test_generate_batch(tmp_path, capsys):
    records = write_fixtures(tmp_path / "fx", n_users=2, seed=2, n_history=12)
    out = tmp_path / "out"
    rc = main(["creative", "generate", "--records", str(records), "--out", str(out), "--sizes", "300x250,120x100",
               "--masks", str(tmp_path / "fx" / "masks.npz"), "--quiet"])
    assert rc == 0
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        assert all((folder / f).stat().st_size > 0 for f in FILES)
        assert Image.open(folder / "ad.png").size == (300, 250) and Image.open(folder / "ad_120x100.png").size == (120, 100)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["factuality"] == 1.0 and metrics["repetition"] == 0.0 and "pbs" in metrics
        layout = json.loads((folder / "layout.json").read_text())
        assert set(layout["sizes"]) == {"300x250", "120x100"}
        assert layout["title"] == (folder / "title.txt").read_text().strip()
    assert json.loads((out / "summary.json").read_text())["records"] == 2


def test_generate_csv_without_images_and_malformed_rows(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("id,title,description,selling_points,image,history_titles,history_images,target_title\n"
                    "p1,Trail shoe,desc,waterproof|light sole|grip,,Grip trail shoe|Light sole runner,,\n"
                    "p2,Cap,desc,,,,,\n")
    args = ["creative", "generate", "--records", str(path), "--out", str(tmp_path / "o"), "--sizes", "300x250", "--quiet"]
    assert main(args) == 2  # stop at the malformed row: a clear error, exit code 2
    assert "r.csv:3" in capsys.readouterr().err
    assert main([*args, "--on-error", "skip"]) == 0
    folder = next(p for p in (tmp_path / "o").iterdir() if p.is_dir())
    assert all((folder / f).exists() for f in FILES)


@pytest.mark.parametrize("bad", ["300", "10x10", "axb"])
def test_bad_sizes(tmp_path, bad, capsys):
    records = write_fixtures(tmp_path, n_users=1, n_history=2)
    assert main(["creative", "generate", "--records", str(records), "--out", str(tmp_path / "o"), "--sizes", bad]) == 2
    assert "--sizes" in capsys.readouterr().err


def test_train_then_generate_with_transformer(tmp_path):
    records = write_fixtures(tmp_path / "fx", n_users=3, seed=4, n_history=6)
    model = tmp_path / "model"
    assert main(["creative", "train", "--records", str(records), "--out", str(model), "--epochs", "2"]) == 0
    assert (model / "model.safetensors").exists() and (model / "config.json").exists()
    out = tmp_path / "out"
    assert main(["creative", "generate", "--records", str(records), "--out", str(out), "--generator", "transformer",
                 "--model", str(model), "--sizes", "300x250", "--quiet"]) == 0
    for folder in (p for p in out.iterdir() if p.is_dir()):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["factuality"] == 1.0 and metrics["repetition"] == 0.0


def test_transformer_needs_model(tmp_path, capsys):
    records = write_fixtures(tmp_path, n_users=1, n_history=2)
    assert main(["creative", "generate", "--records", str(records), "--out", str(tmp_path / "o"),
                 "--generator", "transformer"]) == 2
    assert "--model" in capsys.readouterr().err


def test_lm_train_and_generate_on_a_tiny_gemma(tmp_path, capsys):
    """`creative train --backbone FOLDER` writes a safetensors LoRA adapter; `generate --generator lm` uses it."""
    from genads.creative import lm
    from genads.creative.constraint import content_support
    from genads.creative.lm_titles import prompt
    from genads.creative.records import load_records

    records = write_fixtures(tmp_path / "fx", n_users=3, seed=3, n_history=6)
    recs = load_records(records).records
    texts = [prompt(r.product.selling_points, [h.title for h in r.history]) + " " + r.target_title for r in recs]
    tiny = lm.tiny_backbone(tmp_path / "tiny", texts * 4, seed=0)
    adapter = tmp_path / "adapter"
    assert main(["creative", "train", "--backbone", str(tiny.path), "--records", str(records), "--out", str(adapter),
                 "--epochs", "1", "--batch-size", "2"]) == 0
    assert (adapter / "adapter_model.safetensors").exists()
    out = tmp_path / "out"
    assert main(["creative", "generate", "--records", str(records), "--out", str(out), "--generator", "lm",
                 "--adapter", str(adapter), "--sizes", "300x250", "--candidates", "2", "--rank-by", "coverage",
                 "--quiet"]) == 0
    for folder, rec in zip(sorted(p for p in out.iterdir() if p.is_dir()), recs, strict=True):
        title = (folder / "title.txt").read_text().strip()
        assert content_support(title, list(rec.product.selling_points))[0] == 0


def test_lm_generate_without_adapter_is_a_clear_error(tmp_path, capsys):
    records = write_fixtures(tmp_path / "fx", n_users=1, seed=3, n_history=2)
    rc = main(["creative", "generate", "--records", str(records), "--out", str(tmp_path / "o"), "--generator", "lm"])
    assert rc != 0 and "--generator lm needs --adapter" in capsys.readouterr().err


def test_lm_examples_from_amazon_items_take_type_points_on_request():
    """`creative train --amazon FILE --type-points`: the product noun phrase of each description is a selling point."""
    from pathlib import Path

    from genads.commands.creative import lm_examples

    items = Path(__file__).resolve().parents[1] / "fixtures" / "creative" / "amazon18_items.json"
    args = ["creative", "train", "--amazon", str(items), "--out", "unused", "--backbone", "gemma3-270m"]
    plain = lm_examples(build_parser().parse_args(args))
    typed = lm_examples(build_parser().parse_args([*args, "--type-points", "--type-min-count", "1"]))
    assert [e.target for e in plain] == [e.target for e in typed]
    assert any(a.selling_points != b.selling_points for a, b in zip(plain, typed, strict=True))
