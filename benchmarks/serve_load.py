"""Load benchmark of POST /v1/ads: p50/p99 latency and requests/s, one uvicorn worker, at 12k and 100k live ads.

For each catalogue size a synthetic bundle is written (random SIDs shaped like the demo's: 3 levels
of 32 codes plus a disambiguation level; the demo's "small" slate transformer, untrained: latency
does not depend on the weights) and ``genads serve`` is started on it in its own process with one
torch thread. Then, on loopback:

* latency: one client in a closed loop (each request waits for the previous answer), ``slots``
  positions per request, histories of the bundle's users (full ``max_items`` windows);
* throughput: ``--concurrency`` clients in closed loops; requests/s of wall time, and requests per
  CPU-second of the server process (its utime + stime from /proc), which is the per-core capacity
  and does not depend on what else shares the machine.

The in-process engine latency (decode + auction, no HTTP) is reported beside, from process time.
Usage: /work/cpu-slot .venv/bin/python benchmarks/serve_load.py [--ads 12000,100000] [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from _common import print_table, save
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLiteLedger
from genads.serve.server import spawn
from genads.serve.synthetic import synthetic_bundle


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(bundle: Path, port: int, mechanism: str, beam: int) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", "GENADS_TORCH_THREADS": "1", "GENADS_ADMIN_KEY": "bench"}
    return spawn(bundle, port, "--mechanism", mechanism, "--log-level", "warning", "--beam", str(beam),
                 env=env, ready_timeout=300)


def closed_loop(url: str, bodies: list[dict]) -> list[float]:
    """Send the bodies one after another; seconds per request."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in bodies:
            t = time.perf_counter()
            r = client.post("/v1/ads", json=body)
            out.append(time.perf_counter() - t)
            if r.status_code != 200 or len(r.json()["slate"]) != body["slots"]:
                raise RuntimeError(f"bad answer {r.status_code}: {r.text[:200]}")
    return out


def engine_latency(bundle: Path, bodies: list[dict], beam: int) -> dict:
    """Decode + auction in-process (no HTTP), process time per request."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SQLiteLedger(Path(tmp) / "l.sqlite", synchronous="OFF")
        b = load_bundle(bundle)
        seed_campaigns(ledger, b)
        engine = AdEngine(b, ledger, ServeConfig(beam=beam))
        times = []
        for body in bodies:
            t = time.process_time()
            engine.serve(engine.user_history(body["user_id"]), body["slots"])
            times.append(time.process_time() - t)
    times = np.array(times[len(times) // 10:]) * 1e3
    return {"engine_p50_ms": round(float(np.percentile(times, 50)), 2), "engine_p99_ms": round(float(np.percentile(times, 99)), 2)}


def run_size(n_ads: int, args: argparse.Namespace, port: int) -> dict:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bundle = synthetic_bundle(Path(tmp) / "serve", n_ads, n_advertisers=max(20, n_ads // 100), preset=args.preset,
                                  beam=args.beam, n_users=500, budget=1e8, seed=0)
        build_s = time.perf_counter() - t
        bodies = [{"user_id": int(u), "slots": args.slots} for u in rng.integers(1, 501, size=args.requests + args.warmup)]
        row = {"live_ads": n_ads, "slots": args.slots, "preset": args.preset, "bundle_s": round(build_s, 1),
               "serve_beam": args.serve_beam or args.beam, **engine_latency(bundle, bodies[: min(300, len(bodies))], args.serve_beam)}
        proc = start(bundle, port, args.mechanism, args.serve_beam)
        url = f"http://127.0.0.1:{port}"
        try:
            closed_loop(url, bodies[: args.warmup])
            cpu0, t0 = cpu_seconds(proc.pid), time.process_time()
            lat = np.array(closed_loop(url, bodies[args.warmup:])) * 1e3
            row.update({"p50_ms": round(float(np.percentile(lat, 50)), 2), "p90_ms": round(float(np.percentile(lat, 90)), 2),
                        "p99_ms": round(float(np.percentile(lat, 99)), 2), "mean_ms": round(float(lat.mean()), 2),
                        "server_cpu_ms_per_request": round((cpu_seconds(proc.pid) - cpu0) / len(lat) * 1e3, 2),
                        "client_cpu_ms_per_request": round((time.process_time() - t0) / len(lat) * 1e3, 2)})
            chunks = [bodies[args.warmup:][i::args.concurrency] for i in range(args.concurrency)]
            cpu0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            threads = [threading.Thread(target=closed_loop, args=(url, c)) for c in chunks]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall, cpu = time.perf_counter() - w0, cpu_seconds(proc.pid) - cpu0
            row.update({"concurrency": args.concurrency, "req_per_s_wall": round(args.requests / wall, 1),
                        "req_per_server_cpu_s": round(args.requests / cpu, 1)})
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ads", default="12000,100000", help="live-ad counts, comma-separated")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--slots", type=int, default=10)
    p.add_argument("--beam", type=int, default=20, help="the demo bundle's beam (max(train beam, 10))")
    p.add_argument("--serve-beam", type=int, default=0, help="genads serve --beam (0: the bundle's)")
    p.add_argument("--preset", default="small", help="slate model preset (the demo uses small)")
    p.add_argument("--mechanism", default="learned", choices=("learned", "gsp"))
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--name", default="serve_load", help="results file name")
    args = p.parse_args()
    rows = [run_size(int(n), args, args.port) for n in args.ads.split(",")]
    print_table(rows, "POST /v1/ads, one uvicorn worker, one torch thread (machine shared: see server CPU figures)")
    goal = {"p99_ms_at_12k_10_slots": 15.0, "req_per_s_per_core": 200.0}
    print(f"\nresults: {save(args.name, {'rows': rows, 'goal': goal, 'shared_machine': True, 'args': vars(args)})}")


if __name__ == "__main__":
    main()
