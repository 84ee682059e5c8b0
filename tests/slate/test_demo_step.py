from genads.baselines import Popularity
from genads.demo import DemoContext
from genads.eval.harness import evaluate_split_both
from genads.slate import demo_step


def test_slate_step_reports_beside_the_baselines(cycle_split, cycle_sids, tmp_path):
    ctx = DemoContext(out=tmp_path, fast=True)
    ctx.split = cycle_split
    ctx.artifacts["sids"] = cycle_sids
    pop = Popularity()
    pop.fit(cycle_split)
    ctx.metrics["baselines"] = {"popularity": evaluate_split_both(pop, cycle_split)}
    demo_step.run(ctx)
    slate = ctx.metrics["slate"]
    assert 0.0 <= slate["test"]["ndcg@10"] <= slate["test"]["recall@10"] <= 1.0
    assert ctx.artifacts["slate_model"].recommend(cycle_split.test.history[:3], 5).shape == (3, 5)
    section = ctx.report.sections[-1]
    assert section.title == "Generative slate model"
    both = ["nothing ruled out", "history ruled out"]  # every model under both protocols, side by side
    assert [(r["model"], r["protocol"]) for r in section.tables[0][1]] == [
        (m, p) for m in ("generative-slate", "popularity") for p in both]
    excl = slate["history_ruled_out"]["test"]
    assert 0.0 <= excl["ndcg@10"] <= excl["recall@10"] <= 1.0
    assert section.images and section.images[0][1]
