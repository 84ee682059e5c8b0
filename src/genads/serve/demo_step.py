"""Demo step "serve": export the demo run as a serving bundle (runs/demo/serve) and show how to start it.

The bundle is written by :func:`genads.serve.export.export_bundle`, the library call behind
``genads export RUN --out BUNDLE``.

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

from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, seed_campaigns
from genads.serve.export import ExportConfig, export_bundle
from genads.serve.ledger import SQLiteLedger


def run(ctx) -> None:  # ctx: DemoContext
    for key in ("sids", "slate_model"):
        if key not in ctx.artifacts:
            raise ValueError(f"the serve step needs ctx.artifacts[{key!r}] from an earlier step")
    start = time.perf_counter()
    split, rec = ctx.split, ctx.artifacts["slate_model"]
    out = ctx.out / "serve"
    source = {"dataset": Path(ctx.data_dir).name}
    with tempfile.TemporaryDirectory() as tmp:
        reward_dir = None
        if ctx.artifacts.get("reward_model") is not None:
            from genads.reward.model import save_reward_model

            reward_dir = save_reward_model(ctx.artifacts["reward_model"], Path(tmp) / "reward")
        # the same library call as `genads export RUN --out BUNDLE`
        export_bundle(out, model=rec.model, codes=ctx.artifacts["sids"], split=split, catalogue=ctx.dataset.catalogue,
                      config=ExportConfig(beam=max(rec.train.beam, 10), titles="generated"),
                      payment_net=ctx.artifacts.get("payment_net"), reward_dir=reward_dir, vocab=ctx.dataset.vocab,
                      extra={"source": source}, state="keep")  # a rerun keeps a served demo's ledger and keys
    example = _smoke(out, int(split.users[0]))
    parallel = ctx.artifacts.get("parallel_model")
    example_parallel = None
    if parallel is not None:  # the second family, served from its own bundle by exact scoring
        export_bundle(ctx.out / "serve-parallel", model=parallel.model, codes=parallel.item_codes, split=split,
                      catalogue=ctx.dataset.catalogue, payment_net=ctx.artifacts.get("payment_net"),
                      vocab=ctx.dataset.vocab, extra={"source": source}, state="keep")
        example_parallel = _smoke(ctx.out / "serve-parallel", int(split.users[0]))
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    bundle = load_bundle(out)
    ads = bundle.ads
    ctx.metrics["serve"] = {"ads": len(ads), "users": len(bundle.histories or {}), "bundle_bytes": size,
                            "payment_net": ctx.artifacts.get("payment_net") is not None,
                            "reward_model": reward_dir is not None, "seconds": round(seconds, 2),
                            "example": example, "example_parallel": example_parallel}
    curl = (f"curl -s localhost:8000/v1/ads -H 'content-type: application/json' "
            f"-H \"X-API-Key: $(cat {out / 'state' / 'publisher.key'})\" "
            f"-d '{{\"user_id\": {int(split.users[0])}, \"slots\": 3}}'")
    print(f"serving bundle: {out} ({len(ads)} ads, {size / 1e6:.1f} MB)\n"
          f"start the server:  make serve   (= genads serve {out})\n"
          f"ask for ads:       {curl}\n"
          f"console:           http://localhost:8000/console (sign in with the admin key or an advertiser's)\n"
          f"admin key:         {out / 'state' / 'admin.key'} (written on first start); API docs at /docs\n"
          f"publisher key:     {out / 'state' / 'publisher.key'} (written on first start; /v1/ads and /v1/events "
          "need it)")
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
