"""Where a request's CPU goes (issue 29, item 3): a cProfile table of the engine, and server CPU per request by route.

On a synthetic parallel bundle (12k live ads by default, the load benchmark's shape):

* engine: :meth:`AdEngine.serve_batch` in-process at ``--batch`` (16, the service's micro-batch) under cProfile;
  the table lists the functions by own time (``tottime``) with their share, and the CPU ms per request of the
  whole (measured once more without the profiler, which inflates small Python calls);
* routes: ``genads serve`` in its own process, one client sending requests one after another; the server's
  user and system CPU per request from /proc for ``GET /healthz`` (the HTTP stack alone: uvicorn, the
  middlewares, FastAPI), ``POST /v1/ads`` (batches of one) and ``POST /v1/events`` (impressions, clicks and
  refused click replays: token check, the ledger's transaction, fsync included).

* under load (``--pyspy PATH``, the py-spy binary): the server under serve_load's 32 closed-loop clients (events on
  every 4th slate, traffic checks on above the load) sampled by py-spy for ``--pyspy-s`` seconds, twice: every
  thread's samples (wall time, waits included), then ``--gil`` (only the thread holding the GIL: what serialises
  the process). The JSON lists the share of samples by thread and by function (own, and inclusive for the top of
  the stack's callers).

Usage: .venv/bin/python benchmarks/serve_profile.py [--ads 12000] [--batch 16] [--pyspy /path/to/py-spy]
(results: serve_profile.json)
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import http.client
import io
import os
import pstats
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import print_table, save
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, AdRequest, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLiteLedger
from genads.serve.synthetic import synthetic_bundle
from serve_load import OFF, Http, start


def engine_profile(bundle: Path, batch: int, n: int, top: int) -> dict:
    """cProfile of serve_batch at ``batch``; CPU ms per request without the profiler."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SQLiteLedger(Path(tmp) / "l.sqlite", synchronous="OFF")
        b = load_bundle(bundle)
        seed_campaigns(ledger, b)
        engine = AdEngine(b, ledger, ServeConfig())
        users = np.random.default_rng(0).integers(1, 501, size=n)
        reqs = [AdRequest(engine.user_history(int(u)), 10, frozenset(), None, f"{int(u):016x}") for u in users]
        batches = [reqs[i:i + batch] for i in range(0, n, batch)]
        for chunk in batches[:4]:  # warm-up
            engine.serve_batch(chunk)
        t = time.process_time()
        for chunk in batches:
            engine.serve_batch(chunk)
        plain = (time.process_time() - t) / n * 1e3
        prof = cProfile.Profile()
        prof.enable()
        for chunk in batches:
            engine.serve_batch(chunk)
        prof.disable()
        ledger.close()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())  # own time of every function
    rows = sorted(((f"{Path(file).name}:{line}({name})" if file != "~" else name, row[1], row[2], row[3])
                   for (file, line, name), row in stats.stats.items()), key=lambda r: -r[2])[:top]
    table = [{"function": f, "calls_per_request": round(calls / n, 2), "own_us_per_request": round(own / n * 1e6, 1),
              "own_share": round(own / total, 3), "cumulative_us_per_request": round(cum / n * 1e6, 1)}
             for f, calls, own, cum in rows]
    return {"batch": batch, "requests": n, "cpu_ms_per_request": round(plain, 3),
            "profiled_cpu_ms_per_request": round(total / n * 1e3, 3), "table": table}


def cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def route_costs(bundle: Path, port: int, n: int) -> list[dict]:
    """Server user/system CPU ms per request, one client, requests one after another."""
    shutil.rmtree(bundle / "state", ignore_errors=True)
    proc = start(bundle, port, "learned", 0, OFF)
    rows = []

    def phase(route: str, count: int, send) -> None:
        u0, s0 = cpu(proc.pid)
        send()
        u1, s1 = cpu(proc.pid)
        rows.append({"route": route, "requests": count, "server_user_ms": round((u1 - u0) / count * 1e3, 3),
                     "server_sys_ms": round((s1 - s0) / count * 1e3, 3)})

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        client = Http(f"http://127.0.0.1:{port}", {})

        def healthz(count: int) -> None:
            for _ in range(count):
                conn.request("GET", "/healthz")
                conn.getresponse().read()

        users = [int(u) for u in np.random.default_rng(1).integers(1, 501, size=n + 50)]
        tokens = []

        def ads(batch: list[int]) -> None:
            for u in batch:
                _, answer = client.post("/v1/ads", {"user_id": u, "slots": 10})
                tokens.append((answer["request_id"], answer["slate"][0]["token"]))

        def events() -> None:
            for rid, token in tokens[50: 50 + n // 3]:
                for key, kind in (("i", "impression"), ("a", "click"), ("b", "click")):
                    client.post("/v1/events", {"idempotency_key": f"{rid}-{key}", "type": kind, "token": token})

        healthz(50)
        phase("GET /healthz", n, lambda: healthz(n))
        ads(users[:50])
        phase("POST /v1/ads (10 slots, batch of 1)", n, lambda: ads(users[50:]))
        phase("POST /v1/events (impression, click, refused replay)", 3 * (n // 3), events)
        client.close()
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return rows


def spy_table(raw: Path, top: int) -> dict:
    """Shares of py-spy's raw (collapsed) samples by thread, by function's own samples and inclusive ones."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames, n = stack.split(";"), int(count)
        total += n
        threads[frames[0].split(" (")[0] + " " + frames[0].rsplit(":", 1)[-1].strip()] += n
        own[frames[-1]] += n
        for name in {f.split(" (")[0] for f in frames[1:]}:
            inclusive[name] += n

    def share(counter: collections.Counter, k: int) -> list[dict]:
        return [{"name": name, "share": round(v / max(total, 1), 3)} for name, v in counter.most_common(k)]

    return {"samples": total, "threads": share(threads, 8), "own": share(own, top), "inclusive": share(inclusive, top)}


def load_profile(bundle: Path, port: int, pyspy: str, seconds: int, top: int) -> dict:
    """py-spy over the server while 32 clients load it (see the module's docstring)."""
    from serve_load import ON_ABOVE_LOAD, closed_loop, concurrent

    shutil.rmtree(bundle / "state", ignore_errors=True)
    proc = start(bundle, port, "learned", 0, ON_ABOVE_LOAD)
    out = {}
    try:
        url = f"http://127.0.0.1:{port}"
        bodies = [{"user_id": int(u), "slots": 10} for u in np.random.default_rng(2).integers(1, 501, size=100_000)]
        closed_loop(url, bodies[:100])
        for mode in ("all", "gil"):
            with tempfile.TemporaryDirectory() as tmp:
                raw = Path(tmp) / "raw.txt"
                spy = subprocess.Popen([pyspy, "record", "-p", str(proc.pid), "-d", str(seconds), "-r", "200", "-f", "raw",
                                        "-o", str(raw), "--threads", "--nonblocking", *(["--gil"] if mode == "gil" else [])],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                stop, done = threading.Event(), []

                def load(stop: threading.Event = stop, done: list = done) -> None:
                    i = 100
                    while not stop.is_set():  # 32 clients, in rounds of 1,600 requests, until py-spy is done
                        done.append(concurrent(url, proc, bodies[i:i + 1600], argparse.Namespace(concurrency=32, port=port)))
                        i += 1600

                th = threading.Thread(target=load)
                th.start()
                spy.wait()
                stop.set()
                th.join()
                out[mode] = {**spy_table(raw, top), "load": done[0] if done else None}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ads", type=int, default=12000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--requests", type=int, default=960)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--name", default="serve_profile")
    p.add_argument("--pyspy", default=None, help="py-spy binary: also profile the server under 32-client load")
    p.add_argument("--pyspy-s", type=int, default=15)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = synthetic_bundle(Path(tmp) / "serve", args.ads, n_advertisers=max(20, args.ads // 100),
                                  preset="small", beam=20, n_users=500, budget=1e8, seed=0, family="parallel")
        engine = engine_profile(bundle, args.batch, args.requests, args.top)
        routes = route_costs(bundle, args.port, args.requests)
        under_load = load_profile(bundle, args.port, args.pyspy, args.pyspy_s, args.top) if args.pyspy else None
    print_table(engine["table"], f"engine.serve_batch at batch {args.batch}, {args.ads} live ads: "
                                 f"{engine['cpu_ms_per_request']} CPU ms per request (cProfile: own time per request)")
    print_table(routes, "server CPU per request, one client, one request at a time")
    for mode, table in (under_load or {}).items():
        print_table(table["threads"] + table["own"][:20], f"py-spy under 32-client load ({mode}): share of samples "
                                                           "by thread, then by function (own)")
    figures = {"live_ads": args.ads, "engine": engine, "routes": routes, "under_load": under_load, "args": vars(args)}
    print(f"\nresults: {save(args.name, figures)}")


if __name__ == "__main__":
    main()
