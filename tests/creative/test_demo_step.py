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
