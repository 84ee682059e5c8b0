"""Latency of trie-constrained beam search: p50/p99 ms per request for a 10-ad slate.

Live catalogues of 12k (Beauty-sized) and 100k ads with random 3 x 256 SIDs plus a disambiguation
level; the "beauty" architecture (the model benchmarks/beauty_generative.py trains: 3 layers,
d_model 64, 4 heads, 20-item histories; random weights, latency does not depend on their values);
full 20-item histories, beam 20, batch 1 and 32, one intra-op thread (torch.set_num_threads(1)),
bidding off and on (lognormal bids, max aggregation, alpha 1, beta 0.1). End to end: item histories
in, a Slate of ads out (``generate_slate``: tokenisation, trunk, 4 beam levels, resolution to ads).
For batch 32 a request's latency is the batch's wall time divided by 32 (throughput view); the
batch's own p50/p99 is reported beside it. CPU seconds (process_time) are reported beside wall
seconds because the machine is shared. A second table times the run-time updates serving needs:
rebuilding the trie index and bid aggregates after an ad comes or goes, and one in-place bid change.

    python benchmarks/decode_latency.py [--requests 400] [--batches 25] [--name decode_latency]

``--family parallel`` times the parallel family's exact scoring instead (the Beauty preset: 32 codes x 256,
d 64, 2 layers, 50-item histories; random weights and codes): model forward + Σ_k log p_k over every live
ad + log(bid^alpha + beta) per ad + top 10, at 12k, 100k and 1M live ads, batch 1 and 32, and the cost of
the run-time changes (an ad added / removed, a bid changed):

    python benchmarks/decode_latency.py --family parallel [--sizes 12000 100000 1000000] [--name decode_latency_parallel]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import torch

import genads
from _common import print_table, save
from genads.decode.beam import generate_slate, live_trie
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.tokenize import disambiguate

try:
    from genads.decode.bidding import BidConfig, BidTable
except ImportError:  # the code before token-level bidding: bids-off rows only
    BidConfig = BidTable = None

BID_CONFIG = dict(alpha=1.0, beta=0.1, aggregate="max")


def random_sids(n_ads: int, levels: int, codebook: int, seed: int) -> np.ndarray:
    codes = np.random.default_rng(seed).integers(0, codebook, size=(n_ads, levels))
    return np.concatenate([np.zeros((1, levels + 1), np.int64), disambiguate(codes)])


def serve(model: SlateModel, trie, sids: np.ndarray, kw: dict, history: np.ndarray) -> None:
    slate = generate_slate(model, trie, sids, history, beam=20, slate_size=10, **kw)
    assert (slate.ads > 0).all()


def time_calls(call, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU seconds of ``call(x)`` for each x in ``inputs`` (the first 3 are warm-up)."""
    for x in inputs[:3]:
        call(x)
    wall, cpu = [], []
    for x in inputs[3:]:
        w, c = time.perf_counter(), time.process_time()
        call(x)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return np.array(wall), np.array(cpu)


def latency_row(n_ads: int, batch: int, bids: bool, wall: np.ndarray, cpu: np.ndarray) -> dict:
    ms = lambda a, q: float(np.percentile(a * 1000, q))  # noqa: E731
    return {"live_ads": n_ads, "batch": batch, "bids": bids, "beam": 20, "slate": 10,
            "p50_ms_per_request": ms(wall / batch, 50), "p99_ms_per_request": ms(wall / batch, 99),
            "cpu_p50_ms_per_request": ms(cpu / batch, 50), "cpu_p99_ms_per_request": ms(cpu / batch, 99),
            "p50_ms_per_batch": ms(wall, 50), "p99_ms_per_batch": ms(wall, 99), "batches": len(wall)}


def update_row(n_ads: int, trie, table, sids: np.ndarray, rng: np.random.Generator) -> dict:
    """Run-time updates: index rebuild after one ad leaves and comes back, one in-place bid change."""
    rebuild, bid_us = [], []
    for ad in rng.integers(1, len(sids), size=5).tolist():
        trie.remove(ad)
        trie.insert(ad, sids[ad])
        start = time.process_time()
        trie.index()
        table.prefix_bid(())  # re-syncs the aggregates
        rebuild.append(time.process_time() - start)
        for other in rng.integers(1, len(sids), size=20).tolist():
            start = time.perf_counter()
            table.set_bid(other, float(rng.lognormal()))
            bid_us.append((time.perf_counter() - start) * 1e6)
    return {"live_ads": n_ads, "rebuild_cpu_ms": 1000 * float(np.median(rebuild)),
            "set_bid_p50_us": float(np.median(bid_us)), "set_bid_p99_us": float(np.percentile(bid_us, 99))}


@torch.no_grad()
def exact_request(model, codes: torch.Tensor, live, bid_config, history: np.ndarray) -> None:
    """One (batch of) request(s) of the parallel family: forward, exact scores of every live ad, top 10."""
    items = torch.from_numpy(history)
    slate = live.topk(model.next_logprobs(items, codes[items]), 10, bid_config=bid_config)
    assert (slate.ads > 0).all()


def parallel_main(args) -> None:
    """Exact scoring latency (see the module docstring)."""
    from genads.parallel import LiveAds, ParallelConfig, ParallelModel

    torch.set_num_threads(1)
    cfg = BidConfig(alpha=1.0, beta=0.1)
    rows, updates = [], []
    for n_ads in args.sizes:
        rng = np.random.default_rng(args.seed)
        codes = rng.integers(0, 256, size=(n_ads + 1, 32))
        torch.manual_seed(args.seed)
        model = ParallelModel(ParallelConfig(n_items=min(n_ads, 200_000))).eval()
        live = LiveAds(codes, bids=dict(enumerate(rng.lognormal(size=n_ads + 1).tolist())))
        codes_t = torch.from_numpy(codes)

        for batch, n in ((1, args.requests), (32, args.batches)):
            hist = rng.integers(1, n_ads + 1, size=(n + 3, batch, model.config.max_items))
            for bids in (False, True):
                call = partial(exact_request, model, codes_t, live, cfg if bids else None)
                row = latency_row(n_ads, batch, bids, *time_calls(call, hist))
                row.update(beam=None, scoring="exact")
                rows.append(row)
                print_table(rows[-1:])
        change = []
        for ad in rng.integers(1, n_ads + 1, size=50).tolist():
            start = time.perf_counter()
            live.remove(ad)
            live.add(ad, codes[ad])
            live.set_bid(ad, float(rng.lognormal()))
            change.append((time.perf_counter() - start) * 1e6)
        updates.append({"live_ads": n_ads, "remove+add+set_bid_p50_us": float(np.median(change)),
                        "remove+add+set_bid_p99_us": float(np.percentile(change, 99))})
    print_table(rows, "Exact scoring latency, end to end (one thread, shared machine)")
    print_table(updates, "Run-time updates (in place)")
    figures = {"rows": rows, "updates": updates, "threads": 1, "bid_config": {"alpha": 1.0, "beta": 0.1},
               "architecture": {"family": "parallel", **asdict(model.config)}, "shared_machine": True,
               "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "note": args.note}
    print(f"\nwrote {save(args.name, figures)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="timed batch-1 requests per setting")
    ap.add_argument("--batches", type=int, default=25, help="timed batches of 32 per setting")
    ap.add_argument("--sizes", type=int, nargs="+", default=[12_000, 100_000])
    ap.add_argument("--name", default="decode_latency", help="results/NAME.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. which code was timed)")
    ap.add_argument("--family", choices=["sid", "parallel"], default="sid",
                    help="sid: trie-constrained beam search; parallel: exact scoring over every live ad")
    args = ap.parse_args()
    if args.family == "parallel":
        if args.sizes == [12_000, 100_000]:
            args.sizes = [12_000, 100_000, 1_000_000]
        if args.name == "decode_latency":
            args.name = "decode_latency_parallel"
        parallel_main(args)
        return
    torch.set_num_threads(1)
    rows, updates = [], []
    for n_ads in args.sizes:
        sids = random_sids(n_ads, 3, 256, args.seed)
        torch.manual_seed(args.seed)
        config = sized_for(PRESETS["beauty"], sids)
        model = SlateModel(config).eval()
        trie = live_trie(sids)
        rng = np.random.default_rng(args.seed)
        table = None if BidTable is None else BidTable(trie, dict(enumerate(rng.lognormal(size=len(sids)).tolist())))
        for batch, n in ((1, args.requests), (32, args.batches)):
            hist = rng.integers(1, len(sids), size=(n + 3, batch, config.max_items))
            for bids in (False, True) if table is not None else (False,):
                kw = dict(bids=table, bid_config=BidConfig(**BID_CONFIG)) if bids else {}
                call = partial(serve, model, trie, sids, kw)
                rows.append(latency_row(n_ads, batch, bids, *time_calls(call, hist)))
                print_table(rows[-1:])
        if table is not None:
            updates.append(update_row(n_ads, trie, table, sids, rng))
    print_table(rows, "Constrained beam search latency, end to end (one thread, shared machine)")
    print_table(updates, "Run-time updates")
    figures = {"rows": rows, "updates": updates, "threads": 1, "bid_config": BID_CONFIG if BidTable else None,
               "architecture": {"preset": "beauty", **asdict(config)}, "shared_machine": True,
               "genads_source": str(Path(genads.__file__).parent), "note": args.note}
    print(f"\nwrote {save(args.name, figures)}")


if __name__ == "__main__":
    main()
