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
    assert "Creatives" in (tmp_path / "report.html").read_text()
