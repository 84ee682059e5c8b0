import json

from genads.demo import DemoContext, run_demo


def test_fast_demo_writes_metrics_and_report(tmp_path):
    ctx = run_demo(DemoContext(out=tmp_path / "run", fast=True), log=lambda _: None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    html = (tmp_path / "run" / "report.html").read_text()
    assert metrics["data"]["events"] > 20_000
    assert metrics["data"]["rejected"] == 0
    test = metrics["baselines"]["popularity"]["test"]
    assert 0.0 <= test["ndcg@10"] <= test["recall@10"] <= 1.0
    assert "<h2" in html and "Baselines" in html and "data:image/png;base64," in html
    assert set(metrics["seconds"]) == {name for name, _ in ctx_steps()}
    assert ctx.split is not None


def ctx_steps():
    from genads.demo import STEPS

    return STEPS
