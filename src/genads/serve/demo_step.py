"""Demo step "serve": export the demo run as a serving bundle (runs/demo/serve) and show how to start it.

Reads the slate model and SIDs (slate/tokenize steps), the payment network (auction step), the
catalogue with its synthetic bids and budgets (data step) and, when an earlier step left one, a
slate reward model (``ctx.artifacts["reward_model"]``). Creative titles are generated for every
ad here (n-gram generator over selling points, ~1 s). One request is answered in-process as a
smoke check; the step prints the commands to start the server and query it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from genads.auction.simulate import popularity_pctr
from genads.data.split import left_pad
from genads.serve.bundle import load_bundle, write_bundle
from genads.serve.creatives import creative_titles
from genads.serve.engine import AdEngine, seed_campaigns
from genads.serve.ledger import SQLiteLedger


def ads_table(catalogue: pd.DataFrame, split, pctr: np.ndarray) -> pd.DataFrame:
    """The bundle's ads.parquet rows: catalogue ads that have an item index in the split."""
    cat = catalogue.reset_index(drop=True)
    item = split.index_of(cat["ad_id"].to_numpy())
    keep = item > 0
    cat = cat[keep].copy()
    cat["item"] = item[keep]
    cat["pctr"] = pctr[cat["item"].to_numpy()]
    cat["creative_title"] = creative_titles(cat)
    return cat


def run(ctx) -> None:  # ctx: DemoContext
    for key in ("sids", "slate_model"):
        if key not in ctx.artifacts:
            raise ValueError(f"the serve step needs ctx.artifacts[{key!r}] from an earlier step")
    start = time.perf_counter()
    split, rec = ctx.split, ctx.artifacts["slate_model"]
    counts = np.bincount(np.concatenate(split.train), minlength=split.n_items + 1).astype(float)
    ads = ads_table(ctx.dataset.catalogue, split, popularity_pctr(counts))
    m = rec.model.config.max_items
    histories = (np.asarray(split.users, dtype=np.int64), left_pad(list(split.train), m))
    out = ctx.out / "serve"
    with tempfile.TemporaryDirectory() as tmp:
        reward_dir = None
        if ctx.artifacts.get("reward_model") is not None:
            from genads.reward.model import save_reward_model

            reward_dir = save_reward_model(ctx.artifacts["reward_model"], Path(tmp) / "reward")
        write_bundle(out, model=rec.model, sids=ctx.artifacts["sids"], ads=ads, beam=max(rec.train.beam, 10),
                     payment_net=ctx.artifacts.get("payment_net"), histories=histories, reward_dir=reward_dir,
                     extra={"source": str(ctx.data_dir)})
    example = _smoke(out, int(split.users[0]))
    parallel = ctx.artifacts.get("parallel_model")
    example_parallel = None
    if parallel is not None:  # the second family, served from its own bundle by exact scoring
        p_hist = (histories[0], left_pad(list(split.train), parallel.config.max_items))
        write_bundle(ctx.out / "serve-parallel", model=parallel.model, sids=parallel.item_codes, ads=ads, beam=10,
                     payment_net=ctx.artifacts.get("payment_net"), histories=p_hist,
                     extra={"source": str(ctx.data_dir)})
        example_parallel = _smoke(ctx.out / "serve-parallel", int(split.users[0]))
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    ctx.metrics["serve"] = {"ads": len(ads), "users": len(histories[0]), "bundle_bytes": size,
                            "payment_net": ctx.artifacts.get("payment_net") is not None,
                            "reward_model": reward_dir is not None, "seconds": round(seconds, 2),
                            "example": example, "example_parallel": example_parallel}
    curl = (f"curl -s localhost:8000/v1/ads -H 'content-type: application/json' "
            f"-d '{{\"user_id\": {int(split.users[0])}, \"slots\": 3}}'")
    print(f"serving bundle: {out} ({len(ads)} ads, {size / 1e6:.1f} MB)\n"
          f"start the server:  make serve   (= genads serve {out})\n"
          f"ask for ads:       {curl}\n"
          f"console:           http://localhost:8000/console (sign in with the admin key or an advertiser's)\n"
          f"admin key:         {out / 'state' / 'admin.key'} (written on first start); API docs at /docs")
    s = ctx.report.section("Serving")
    s.paragraphs.append(
        f"The run is exported as a serving bundle ({out.name}/: SIDs, slate model, payment network, "
        f"{len(ads)} ads with bids, budgets, prior pCTR and generated creative titles, user histories). "
        "<code>make serve</code> starts the HTTP service on it; POST /v1/ads answers with a slate whose prices "
        "never exceed the bids, and clicks are charged against each advertiser's budget in the ledger. "
        f"An example request, answered in-process while exporting: <pre>{curl}</pre>")
    s.tables.append(("Example slate (in-process)", example["slate"]))
    if example_parallel is not None:
        s.paragraphs.append(
            "The parallel-code generator is exported as a second bundle (serve-parallel/: its codes instead of SIDs); "
            "<code>genads serve runs/demo/serve-parallel</code> serves it, and POST /v1/ads then scores every live ad "
            "exactly (codes + log(bid) per ad) instead of running beam search. The same request, in-process:")
        s.tables.append(("Example slate, parallel bundle (in-process)", example_parallel["slate"]))


def _smoke(bundle_dir: Path, user_id: int) -> dict:
    """Answer one request from the written bundle with a throwaway ledger."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SQLiteLedger(Path(tmp) / "ledger.sqlite", synchronous="OFF")
        bundle = load_bundle(bundle_dir)
        seed_campaigns(ledger, bundle)
        engine = AdEngine(bundle, ledger)
        start = time.perf_counter()
        result = engine.serve(engine.user_history(user_id), 3)
        ms = (time.perf_counter() - start) * 1e3
        ledger.close()
    slate = [{"position": p.position, "ad_id": p.ad_id, "bid": p.bid, "price": p.price, "pctr": round(p.pctr, 4),
              "title": p.title[:60]} for p in result.placements]
    return json.loads(json.dumps({"user_id": user_id, "mechanism": result.mechanism, "ms": round(ms, 1), "slate": slate}))
