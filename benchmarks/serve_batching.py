"""What micro-batching buys the ad engine: requests per CPU-second, one request at a time vs batches.

The whole engine path of ``/v1/ads`` minus HTTP: histories in, candidates decoded over the live ads (exact
scores for a parallel bundle, trie-constrained beam search for a SID bundle), the auction, prices and signed
slot tokens out (:meth:`genads.serve.engine.AdEngine.serve_batch`). Synthetic bundles (random weights and
codes; cost does not depend on their values): the parallel one in the Beauty shape (32 codes x 256), 12k
live ads; the SID one 3 x 32 + a disambiguation level. One intra-op thread. The same request mix (random
histories of 0-20 items, 3 slots) is served at batch sizes 1, 8 and 32; the figure that matters is CPU
seconds per request (process_time, every thread), which the shared machine barely moves; wall ms per request
is printed beside it. Each batch's answers equal the answers one at a time (tests/serve/test_batching.py).

    python benchmarks/serve_batching.py [--ads 12000] [--requests 512] [--name serve_batching]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import print_table, save
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, AdRequest, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLiteLedger
from genads.serve.synthetic import synthetic_bundle

BATCHES = (1, 8, 32)


def engine_for(folder: Path, family: str, n_ads: int) -> AdEngine:
    extra = {"n_codes": 32, "code_size": 256} if family == "parallel" else {"levels": 3, "codebook": 32}
    path = synthetic_bundle(folder / family, n_ads, n_advertisers=200, budget=1e6, family=family, **extra)
    bundle = load_bundle(path)
    ledger = SQLiteLedger(folder / f"{family}.sqlite", synchronous="OFF")
    seed_campaigns(ledger, bundle)
    return AdEngine(bundle, ledger, ServeConfig(refresh_s=3600.0))


def requests_for(engine: AdEngine, n: int, seed: int = 0) -> list[AdRequest]:
    rng = np.random.default_rng(seed)
    items = np.array(sorted(engine.live))
    return [AdRequest(rng.choice(items, size=int(rng.integers(0, 21)), replace=False), slots=3) for _ in range(n)]


def measure(engine: AdEngine, reqs: list[AdRequest], batch: int) -> dict:
    engine.serve_batch(reqs[:batch])  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    served = 0
    for i in range(0, len(reqs), batch):
        served += sum(1 for r in engine.serve_batch(reqs[i:i + batch]) if r.placements)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"batch": batch, "requests": len(reqs), "filled": served, "cpu_ms_per_request": 1e3 * cpu / len(reqs),
            "wall_ms_per_request": 1e3 * wall / len(reqs), "requests_per_cpu_s": len(reqs) / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ads", type=int, default=12_000)
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--families", default="parallel,sid")
    ap.add_argument("--name", default="serve_batching")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            engine = engine_for(Path(tmp), family, args.ads)
            reqs = requests_for(engine, args.requests)
            base = None
            for batch in BATCHES:
                row = {"family": family, "live_ads": len(engine.live), **measure(engine, reqs, batch)}
                base = base or row["cpu_ms_per_request"]
                row["cpu_speedup_vs_batch_1"] = base / row["cpu_ms_per_request"]
                rows.append(row)
            engine.ledger.close()
    print_table(rows, "Ad engine per request (decode + auction + tokens, no HTTP), one thread")
    path = save(args.name, {"rows": rows, "batches": BATCHES, "load_avg": list(os.getloadavg()),
                            "note": "CPU ms per request (process_time) is the figure: the machine is shared; "
                                    "wall ms is printed for reference"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
