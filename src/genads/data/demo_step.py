"""Demo step 1: import the bundled data, validate it, split it leave-one-out."""

from __future__ import annotations

import numpy as np

from genads.data.dataset import load_dataset
from genads.data.ingest import import_dataset
from genads.data.loaders import TabularSource
from genads.data.split import SplitConfig, leave_one_out, split_stats
from genads.eval import plots
from genads.eval.report import figure_png


def run(ctx) -> None:  # ctx: DemoContext (imported lazily to avoid a cycle)
    source = TabularSource(
        ctx.data_dir / "events.csv.gz",
        catalogue=ctx.data_dir / "catalogue.csv.gz",
        column_map={"user_id": "user", "ad_id": "item", "timestamp": "ts"},
    )
    report = import_dataset(source, ctx.out / "dataset", on_error="skip", progress=False)
    ctx.dataset = load_dataset(report.path)
    ctx.split = leave_one_out(ctx.dataset, SplitConfig(max_history=50))
    stats = split_stats(ctx.split)
    ctx.metrics["data"] = {"ads": report.n_ads, "users": report.n_users, "events": report.n_events,
                           "rejected": report.issues.total, "advertisers": int(ctx.dataset.catalogue["advertiser_id"].nunique()),
                           **stats}
    s = ctx.report.section("Data")
    s.paragraphs.append(
        f"Bundled slice of Amazon 2018 <em>Industrial &amp; Scientific</em> (see data/demo/README.md): "
        f"{report.n_ads:,} ads from {ctx.metrics['data']['advertisers']:,} advertisers (brands), "
        f"{report.n_users:,} users, {report.n_events:,} clicks; {report.issues.summary()}. "
        "Leave-one-out split: last item = test, second last = validation; histories capped at 50. "
        "Bids and budgets are synthetic (seeded, per advertiser; flagged in meta.json)."
    )
    s.tables.append(("Split", [{"what": k, "value": v} for k, v in stats.items()]))
    cat = ctx.dataset.catalogue
    s.tables.append(("Synthetic bids and budgets", [
        {"what": "bid per click (median)", "value": float(np.median(cat["bid"]))},
        {"what": "bid per click (90th pct)", "value": float(np.quantile(cat["bid"], 0.9))},
        {"what": "advertiser budget (median)", "value": float(cat.groupby("advertiser_id")["budget"].first().median())},
    ]))
    lengths = np.array([len(t) for t in ctx.split.train]) + 2
    counts = np.bincount(np.concatenate(ctx.split.train), minlength=ctx.split.n_items + 1)[1:]
    s.images.append(("Sequence lengths and item popularity", figure_png(plots.length_and_popularity(lengths, counts))))
