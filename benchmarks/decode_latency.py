"""Latency of trie-constrained beam search: p50/p99 ms per request for a 10-ad slate.

Live catalogues of 12k (Beauty-sized) and 100k ads with random 3 x 256 SIDs plus a disambiguation
level, the "beauty" architecture (random weights: latency does not depend on their values),
20-item histories, beam 20, batch 1 and 32, one intra-op thread (torch.set_num_threads(1)).
For batch 32 a request's latency is the batch's wall time divided by 32 (throughput view); the
batch's own p50/p99 is reported beside it. The machine is shared: figures carry that noise.

    python benchmarks/decode_latency.py [--repeats 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import print_table, save
from genads.decode.beam import generate_slate, live_trie
from genads.slate.model import PRESETS, SlateModel, sized_for
from genads.tokenize import disambiguate


def random_sids(n_ads: int, levels: int, codebook: int, seed: int) -> np.ndarray:
    codes = np.random.default_rng(seed).integers(0, codebook, size=(n_ads, levels))
    return np.concatenate([np.zeros((1, levels + 1), np.int64), disambiguate(codes)])


def time_batches(model: SlateModel, sids: np.ndarray, batch: int, repeats: int, seed: int) -> np.ndarray:
    """Wall seconds of ``repeats`` batches of ``batch`` requests."""
    trie = live_trie(sids)
    rng = np.random.default_rng(seed)
    hist = rng.integers(1, len(sids), size=(repeats + 2, batch, model.config.max_items))
    for h in hist[:2]:  # warm-up: builds the trie tables, first-call allocations
        generate_slate(model, trie, sids, h, beam=20, slate_size=10)
    out = []
    for h in hist[2:]:
        start = time.perf_counter()
        slate = generate_slate(model, trie, sids, h, beam=20, slate_size=10)
        out.append(time.perf_counter() - start)
        assert (slate.ads > 0).all()
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n_ads in (12_000, 100_000):
        sids = random_sids(n_ads, 3, 256, args.seed)
        torch.manual_seed(args.seed)
        model = SlateModel(sized_for(PRESETS["beauty"], sids)).eval()
        for batch in (1, 32):
            secs = time_batches(model, sids, batch, args.repeats if batch == 1 else max(args.repeats // 4, 5), args.seed)
            per_req = secs * 1000 / batch
            rows.append({"live_ads": n_ads, "batch": batch, "beam": 20, "slate": 10,
                         "p50_ms_per_request": float(np.percentile(per_req, 50)),
                         "p99_ms_per_request": float(np.percentile(per_req, 99)),
                         "p50_ms_per_batch": float(np.percentile(secs * 1000, 50)),
                         "p99_ms_per_batch": float(np.percentile(secs * 1000, 99)), "batches": len(secs)})
            print_table(rows[-1:])
    print_table(rows, "Constrained beam search latency (one thread)")
    print(f"\nwrote {save('decode_latency', {'rows': rows, 'threads': 1, 'architecture': 'beauty preset'})}")


if __name__ == "__main__":
    main()
