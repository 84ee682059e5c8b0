from pathlib import Path

import pytest

from genads.demo import DemoContext, run_demo


@pytest.mark.slow
def test_demo_step_fast(tmp_path):
    ctx = DemoContext(out=tmp_path, fast=True)
    run_demo(ctx, steps=(("data", "genads.data.demo_step:run"), ("creatives", "genads.creative.demo_step:run")),
             log=lambda _: None)
    m = ctx.metrics["creatives"]
    assert all(row["factuality"] == 1.0 for row in m["titles"][:2])
    assert all(row["repetition"] == 0.0 for row in m["titles"][:2])
    folders = list(Path(tmp_path, "creatives").iterdir())
    assert len(folders) == 4 and all((f / "ad.png").exists() and (f / "ad.svg").exists() for f in folders)
    report = (tmp_path / "report.html").read_text()
    assert "Creatives" in report and "personalisation on real user histories" in report
    assert report.count("<img") >= 12  # the 12 banner thumbnails


@pytest.mark.slow
def test_demo_step_lm_part_on_a_tiny_gemma(tmp_path, monkeypatch):
    """The demo's LM titles (adapter trained, cached, titles scored) run end to end on a tiny random Gemma 3."""
    import string

    from genads.creative import demo_step, lm

    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    tiny = lm.tiny_backbone(tmp_path / "tiny", [alphabet, "Selling points: Ad title: Titles this user clicked:"] * 8)
    monkeypatch.setattr(demo_step, "LM_IN_FAST", True)
    monkeypatch.setattr(demo_step, "LM_BACKBONE", str(tiny.path))
    monkeypatch.setattr(demo_step, "LM_TRAIN", 8)
    monkeypatch.setattr(demo_step, "LM_ADS", 4)
    ctx = DemoContext(out=tmp_path / "demo", fast=True)
    run_demo(ctx, steps=(("data", "genads.data.demo_step:run"), ("creatives", "genads.creative.demo_step:run")),
             log=lambda _: None)
    rows = ctx.metrics["creatives"]["lm"]["rows"]
    assert [r["generator"] for r in rows] == ["n-gram baseline", "Gemma 3 270M + LoRA"]
    assert all(r["users"] == 4 for r in rows) and rows[1]["hallucinated words"] <= 0.5
    assert any((tmp_path / "creative_lm").glob("adapter-demo-seed*/adapter_model.safetensors"))
    assert "pretrained LM titles" in (tmp_path / "demo" / "report.html").read_text()


def test_the_report_shows_the_benchmark_examples_with_the_judges_verdict(tmp_path, monkeypatch):
    """The demo's report lists the committed creative_titles.py examples per language, with the independent
    judge's verdict on the LM title (a degenerate one fails, a finished one passes)."""
    import json
    from types import SimpleNamespace

    from genads.creative import demo_step
    from genads.eval.report import Report

    lm = "gemma3-270m + LoRA"
    examples = [
        {"lang": "zh", "selling_points": ["连衣裙", "蕾丝", "简约"], "reference": "这款连衣裙简约大方", "brand": "",
         "selling points joined": "连衣裙，蕾丝，简约", lm: "这款简约的蕾丝连衣裙"},
        {"lang": "en", "selling_points": ["Duck", "duct tape", "high performance"], "reference": "Duck Duct Tape",
         "brand": "Duck", "selling points joined": "Duck, duct tape, high performance", lm: "Duck"},
    ]
    path = tmp_path / "creative_titles.json"
    path.write_text(json.dumps({"command": "python benchmarks/creative_titles.py", "git_sha": "abc1234",
                                "figures": {"examples": examples}}))
    monkeypatch.setattr(demo_step, "TITLES_RESULTS", path)
    ctx = SimpleNamespace(report=Report("t"))
    demo_step._titles_benchmark_section(ctx)
    (section,) = ctx.report.sections
    tables = dict(section.tables)
    zh, en = tables["Chinese: 1 held-out products"], tables["English: 1 held-out products"]
    assert zh[0]["judge (LM)"] == "pass" and zh[0]["reference"] == "这款连衣裙简约大方"
    assert en[0]["judge (LM)"].startswith("fail") and "too_short" in en[0]["judge (LM)"]
    monkeypatch.setattr(demo_step, "TITLES_RESULTS", tmp_path / "missing.json")
    ctx = SimpleNamespace(report=Report("t"))
    demo_step._titles_benchmark_section(ctx)
    assert not ctx.report.sections
