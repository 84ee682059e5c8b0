"""IVF pre-selection at 100k and 1M live ads: CPU ms per request and recall@10 of the exact ranking, per nprobe.

The parallel family's candidates at serving: exact scoring of every live ad (:meth:`LiveAds.topk`, m gathers)
against :class:`genads.parallel.preselect.IVFPreselect` (an inner-product IVF over [code vectors, bid term]
proposes a shortlist of 200, exact scoring ranks it), both with the bid term (alpha 1, beta 0.1, log-normal
bids). The Beauty preset's shape (32 codes x 256, d_code 16, 2 layers, 50-item histories) with random
weights; codes are topical (ads of one of 64 topics share 70% of their codes, as PQ codes of topical items
do) because IVF exploits the clustering real catalogues have. One thread; the model forward (the same for
both methods) is left out. recall@10 = |IVF top 10 ∩ exact top 10| / 10, averaged over the requests.

    python benchmarks/serve_preselect.py [--sizes 100000 1000000] [--requests 200] [--nprobes 4 8 16 32 64]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from _common import print_table, save
from genads.decode.bidding import BidConfig
from genads.parallel import LiveAds, ParallelConfig, ParallelModel
from genads.parallel.preselect import IVFPreselect, PreselectConfig

BIDS = BidConfig(alpha=1.0, beta=0.1)
NPROBES = (4, 8, 16, 32, 64)


def topical_codes(n: int, m: int, k: int, topics: int = 64, share: float = 0.7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, k, size=(topics, m), dtype=np.int64)
    topic = rng.integers(0, topics, size=n)
    codes = np.where(rng.random((n, m)) < share, centres[topic], rng.integers(0, k, size=(n, m)))
    return np.vstack([np.zeros((1, m), dtype=np.int64), codes])


def _per_request(call, requests: int) -> tuple[float, list]:
    out, cpu0 = [], time.process_time()
    for b in range(requests):
        out.append(call(b))
    return 1e3 * (time.process_time() - cpu0) / requests, out


def bench_size(model: ParallelModel, cfg: ParallelConfig, n: int, requests: int,
               nprobes: tuple[int, ...] = NPROBES) -> list[dict]:
    codes = topical_codes(n, cfg.n_codes, cfg.codebook_size)
    rng = np.random.default_rng(1)
    live = LiveAds(codes)
    for key, bid in zip(range(1, n + 1), rng.lognormal(0.0, 0.7, n).tolist(), strict=True):
        live.set_bid(key, bid)
    nlist = max(64, round(math.sqrt(n)))
    cpu, wall = time.process_time(), time.perf_counter()
    pre = IVFPreselect(model, live, BIDS, PreselectConfig(nlist=nlist, shortlist=200, train_size=min(n, 40 * nlist)))
    build = {"build_cpu_s": time.process_time() - cpu, "build_wall_s": time.perf_counter() - wall}
    hist = torch.from_numpy(rng.integers(1, n + 1, size=(requests, 20)))
    with torch.no_grad():
        h = model(hist, torch.from_numpy(codes)[hist])[:, -1]
        q, logp = model.code_queries(h), model.code_logprobs(h)
    exact_ms, exact = _per_request(lambda b: live.topk(logp[b:b + 1], 10, bid_config=BIDS).ads[0], requests)
    rows = [{"live_ads": n, "method": "exact", "nprobe": "", "nlist": "", "cpu_ms_per_request": exact_ms,
             "recall@10": 1.0}]
    for nprobe in nprobes:
        ms, got = _per_request(lambda b, p=nprobe: pre.topk(q[b:b + 1], logp[b:b + 1], 10, nprobe=p).ads[0], requests)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(got, exact, strict=True)]))
        rows.append({"live_ads": n, "method": "ivf + exact rescoring", "nprobe": nprobe, "nlist": nlist,
                     "cpu_ms_per_request": ms, "recall@10": recall, **build})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--name", default="serve_preselect")
    ap.add_argument("--nprobes", type=int, nargs="+", default=list(NPROBES), help="IVF lists probed per request")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = ParallelConfig(d_model=64, d_code=16, n_layer=2, max_items=50, n_items=0, n_codes=32, codebook_size=256,
                         dropout=0.0)
    model = ParallelModel(cfg).eval()
    rows = []
    for n in args.sizes:
        rows += bench_size(model, cfg, n, args.requests, tuple(args.nprobes))
    print_table(rows, "Candidates for one request (model forward excluded; top 10 with the bid term), one thread")
    path = save(args.name, {"rows": rows, "shortlist": 200, "load_avg": list(os.getloadavg()),
                            "note": "CPU ms per request of candidate generation after the model forward (shared by "
                                    "both methods); random weights, topical codes"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
