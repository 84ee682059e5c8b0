"""Load benchmark of POST /v1/ads: p50/p99 latency and requests/s, one uvicorn worker, at 12k and 100k live ads.

For each catalogue size a synthetic bundle is written (random SIDs shaped like the demo's: 3 levels
of 32 codes plus a disambiguation level; the demo's "small" slate transformer, untrained: latency
does not depend on the weights) and ``genads serve`` is started on it in its own process with one
torch thread. Then, on loopback:

* latency: one client in a closed loop (each request waits for the previous answer), ``slots``
  positions per request, histories of the bundle's users (full ``max_items`` windows);
* concurrency: ``--concurrency`` (32) clients in closed loops; p50/p99 latency from arrival (each
  request timed from the moment its client sends it, so queueing in the server is included),
  requests/s of wall time, and requests per CPU-second of the server process (its utime + stime
  from /proc), which is the per-core capacity and does not depend on what else shares the machine.
  Meanwhile the clients click one slot of every fourth slate (and replay each click's token under a
  fresh idempotency key, which must be refused), and a prober times GET /healthz every 20 ms;
* big bodies: a 16 MB POST /v1/ads, once with its Content-Length and once chunked, while /healthz
  is timed (the bodies must get 413, /healthz must stay fast);
* ledger invariants after the load: spent = sum of charged events <= budget for every campaign,
  and no slot charged twice (``SQLLedger.audit``).

The in-process engine latency (decode + auction, no HTTP) is reported beside, from process time.

Traffic checks (``--traffic both``, the default): every size is run twice, with the checks off
(``--open-traffic --no-traffic-limits``: the service as before publisher keys) and on (publisher key
looked up per request, rate limits per client and per key, frequency caps, invalid-click rules), so
``traffic_cost`` compares requests per server CPU-second and p99 of the two. The rate limits and caps
are set above what this load offers (one client asks for 1,000 slates in seconds, 2 per user): the
checks all run, none refuses, and the figure is their cost, not their effect.
``--attacks`` adds the attacks of issue 31 against the default policy, on loopback: the click farm
(10 s of ad requests with an impression, a click 1 ms later and a conversion on every slot of one
campaign raised to bid 5; keyless, then with a leaked publisher key, then against an open unlimited
service for scale) with what each drained, and a slow drip (``--drip`` connections from 10 loopback
addresses sending one body byte every 2 s) with /healthz's p99 during it and the seconds until every
drip connection was cut.
Scale-out (``--workers N --ledger postgresql://...``): the same load (64 clients with --concurrency 64) on one
worker, then on N worker processes, one of which is killed with SIGKILL half-way; requests/s of both, their
ratio and the ledger invariants after each (see :func:`scale_out`), and where the machine's cores went meanwhile: the
server processes, PostgreSQL, the load clients (this process) and the whole machine's busy cores (/proc/stat, other
users included). The concurrent phases of the other runs report the same cores, and the mean micro-batch and event
group (the server's /metrics).
Usage: /work/cpu-slot .venv/bin/python benchmarks/serve_load.py [--ads 12000,100000] [--requests 1000]
       .venv/bin/python benchmarks/serve_load.py --quick     # 2,000 ads, 300 requests: a few minutes
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import print_table, save
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLiteLedger, open_ledger
from genads.serve.server import spawn
from genads.serve.synthetic import synthetic_bundle


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (every core; /proc/stat, idle and iowait left out)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on this machine (0 when none)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended meanwhile
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


OFF = ("--open-traffic", "--no-traffic-limits")
ON_ABOVE_LOAD = ("--ads-rate", "1000000", "--events-rate", "1000000", "--key-rate", "1000000", "--freq-cap", "100000,100000",
                 "--max-clicks-per-client", "1000000", "--max-clicks-per-user", "1000000")
"""Every check on, every threshold above what the load offers (the cost of the checks, not their effect)."""
HEADERS: dict[str, str] = {}
"""The publisher key of the running server (empty when traffic is open)."""


def start(bundle: Path, port: int, mechanism: str, beam: int, traffic: tuple[str, ...] = OFF) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", "GENADS_TORCH_THREADS": "1", "GENADS_ADMIN_KEY": "bench"}
    proc = spawn(bundle, port, "--mechanism", mechanism, "--log-level", "warning", "--beam", str(beam), *traffic,
                 env=env, ready_timeout=300)
    HEADERS.clear()
    if "--open-traffic" not in traffic:
        HEADERS["X-API-Key"] = (bundle / "state" / "publisher.key").read_text().strip()
    return proc


class Http:
    """A lean keep-alive JSON client (http.client: a third of httpx's CPU per request, which on 2 cores shared
    with the server decided how many requests 32 client threads could offer); reconnects when the server closed."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 60.0) -> None:
        host, port = url.rsplit("//", 1)[1].split(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.headers = {"Content-Type": "application/json", **headers}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        data = json.dumps(body).encode()
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, data, self.headers)
                r = self.conn.getresponse()
                return r.status, json.loads(r.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # a keep-alive connection the server closed (idle or too old): once more
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def closed_loop(url: str, bodies: list[dict], click_every: int = 0, clicks: dict | None = None) -> list[float]:
    """Send the bodies one after another; seconds per request from sending it. With ``click_every``, report the
    first slot's impression of every n-th slate, click it and replay the click under a fresh key (counted in
    ``clicks``)."""
    out = []
    client = Http(url, HEADERS)
    try:
        for i, body in enumerate(bodies):
            t = time.perf_counter()
            status, answer = client.post("/v1/ads", body)
            out.append(time.perf_counter() - t)
            if status != 200 or len(answer["slate"]) != body["slots"]:
                raise RuntimeError(f"bad answer {status}: {str(answer)[:200]}")
            if click_every and i % click_every == 0:
                token, rid = answer["slate"][0]["token"], answer["request_id"]
                status, _ = client.post("/v1/events", {"idempotency_key": f"{rid}-i", "type": "impression",
                                                       "token": token})
                if status != 200:
                    raise RuntimeError(f"impression answered {status}")
                first, replay = (client.post("/v1/events", {"idempotency_key": f"{rid}-{k}", "type": "click",
                                                            "token": token})[0] for k in "ab")
                clicks["charged"] += first == 200
                clicks["replays_refused"] += replay == 409
    finally:
        client.close()
    return out


PROBE = """
import http.client, json, select, sys, time
conn, out = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30), []
while not select.select([sys.stdin], [], [], float(sys.argv[2]))[0]:
    t = time.perf_counter()
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b'{"status":"ok"}'
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""


class HealthProbe:
    """GET /healthz every ``every_s`` from a separate process (the load clients' GIL must not delay it) until
    :meth:`stop`, which returns the seconds per answer."""

    def __init__(self, port: int, every_s: float = 0.02) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PROBE, str(port), str(every_s)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[float]:
        out, _ = self.proc.communicate("stop\n", timeout=60)
        if self.proc.returncode:
            raise RuntimeError(f"/healthz probe failed ({self.proc.returncode})")
        return json.loads(out)


def big_body(port: int, size: int, chunked: bool) -> tuple[int, float, int]:
    """POST /v1/ads with a ``size``-byte body (by Content-Length or chunked), sent in 512 KB pieces while the
    server has not answered: (status, seconds to the answer, body bytes sent before it)."""
    head = b"POST /v1/ads HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % size
    piece = b"[" + b"1," * (1 << 18)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        t = time.perf_counter()
        s.sendall(head)
        try:
            while sent < size and not select.select([s], [], [], 0.01)[0]:  # stop once answered: a limit at work
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece[: size - sent])
                sent += len(piece)
        except OSError:  # the server closed on the rest of the body
            pass
        answer = s.recv(4096)
        return int(answer.split(b" ", 2)[1]), time.perf_counter() - t, min(sent, size)


def ms(values: list[float], q: float) -> float | None:
    """The q-th percentile in milliseconds; None when nothing was timed (a probe that never got to run)."""
    return round(float(np.percentile(np.asarray(values) * 1e3, q)), 2) if len(values) else None


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


def run_size(n_ads: int, args: argparse.Namespace, port: int, modes: tuple[str, ...] = ("off",)) -> list[dict]:
    """One bundle of ``n_ads`` ads; for each of ``args.rounds`` rounds, a fresh server (fresh state/) per traffic
    mode in ``modes``, interleaved (off, on, off, on, ...) so that a busy machine weighs on both alike."""
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        bundle = synthetic_bundle(Path(tmp) / "serve", n_ads, n_advertisers=max(20, n_ads // 100), preset=args.preset,
                                  beam=args.beam, n_users=500, budget=1e8, seed=0, family=args.family)
        build_s = time.perf_counter() - t
        bodies = [{"user_id": int(u), "slots": args.slots} for u in rng.integers(1, 501, size=args.requests + args.warmup)]
        engine = engine_latency(bundle, bodies[: min(300, len(bodies))], args.serve_beam)
        for round_ in range(args.rounds):
            for mode in modes:
                shutil.rmtree(bundle / "state", ignore_errors=True)
                row = {"live_ads": n_ads, "traffic_checks": mode, "round": round_, "family": args.family,
                       "slots": args.slots, "preset": args.preset, "bundle_s": round(build_s, 1),
                       "serve_beam": args.serve_beam or args.beam, **engine}
                rows.append(measure(bundle, bodies, args, port, mode, row))
    return rows


def measure(bundle: Path, bodies: list[dict], args: argparse.Namespace, port: int, mode: str, row: dict) -> dict:
    """Latency (one client), throughput (``--concurrency`` clients), big bodies and the ledger audit on one server."""
    proc = start(bundle, port, args.mechanism, args.serve_beam, OFF if mode == "off" else ON_ABOVE_LOAD)
    url = f"http://127.0.0.1:{port}"
    try:
        closed_loop(url, bodies[: args.warmup])
        cpu0, t0 = cpu_seconds(proc.pid), time.process_time()
        lat = np.array(closed_loop(url, bodies[args.warmup:])) * 1e3
        row.update({"p50_ms": round(float(np.percentile(lat, 50)), 2), "p90_ms": round(float(np.percentile(lat, 90)), 2),
                    "p99_ms": round(float(np.percentile(lat, 99)), 2), "mean_ms": round(float(lat.mean()), 2),
                    "server_cpu_ms_per_request": round((cpu_seconds(proc.pid) - cpu0) / len(lat) * 1e3, 2),
                    "client_cpu_ms_per_request": round((time.process_time() - t0) / len(lat) * 1e3, 2)})
        row.update(concurrent(url, proc, bodies[args.warmup:], args))
        if args.no_click_pass:  # the same clients without events: what wrk's figures compare with
            row.update({f"noclick_{k}": v for k, v in concurrent(url, proc, bodies[args.warmup:], args, 0).items()
                        if k in ("conc_p50_ms", "conc_p99_ms", "req_per_s_wall", "req_per_server_cpu_s",
                                 "healthz_under_load_p99_ms")})
        if args.wrk_seconds and shutil.which("wrk"):
            row.update(wrk_load(port, proc, args))
        row.update(big_bodies(port))
        audit = open_ledger(str(bundle / "state" / "ledger.sqlite")).audit()
        row.update({f"ledger_{k}": v for k, v in audit.items() if k in ("spent_mismatch", "over_budget",
                                                                         "slots_charged_twice", "refund_mismatch")})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return row


def server_counters(url: str) -> dict[str, float]:
    """The server's batching counters from /metrics (admin key "bench", as :func:`start` sets): ad requests and
    micro-batches decoded, events and group-writer transactions (zeros when absent)."""
    conn = http.client.HTTPConnection(url.rsplit("//", 1)[1].split(":")[0], int(url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"X-API-Key": "bench"})
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    names = {"genads_ads_batches_total": "batches", "genads_ads_batched_requests_total": "batched",
             "genads_event_groups_total": "groups", "genads_event_group_events_total": "grouped"}
    out = dict.fromkeys(names.values(), 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[names[name]] = float(value)
    return out


def concurrent(url: str, proc: subprocess.Popen, bodies: list[dict], args: argparse.Namespace,
               click_every: int = 4) -> dict:
    """``args.concurrency`` closed-loop clients (clicking one slot of every ``click_every``-th slate; 0: none) with
    /healthz probed meanwhile."""
    lat: list[list[float]] = [[] for _ in range(args.concurrency)]
    clicks = {"charged": 0, "replays_refused": 0}
    threads = [threading.Thread(target=lambda i=i: lat[i].extend(closed_loop(url, bodies[i::args.concurrency],
                                                                             click_every, clicks)))
               for i in range(args.concurrency)]
    before = server_counters(url)
    prober = HealthProbe(args.port)
    cpu0, w0, busy0, client0 = cpu_seconds(proc.pid), time.perf_counter(), machine_busy_s(), time.process_time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    health = prober.stop()
    wall, cpu = time.perf_counter() - w0, cpu_seconds(proc.pid) - cpu0
    busy, client = machine_busy_s() - busy0, time.process_time() - client0
    after = server_counters(url)
    d = {k: after[k] - before[k] for k in after}
    every = [x for c in lat for x in c]
    return {"concurrency": args.concurrency, "conc_p50_ms": ms(every, 50), "conc_p99_ms": ms(every, 99),
            "req_per_s_wall": round(len(every) / wall, 1), "req_per_server_cpu_s": round(len(every) / cpu, 1),
            "healthz_under_load_p99_ms": ms(health, 99), "healthz_under_load_max_ms": ms(health, 100),
            "clicks_charged": clicks["charged"], "click_replays_refused": clicks["replays_refused"],
            "server_cores": round(cpu / wall, 2), "client_cores": round(client / wall, 2),
            "machine_busy_cores": round(busy / wall, 2),
            "mean_ad_batch": round(d["batched"] / d["batches"], 2) if d["batches"] else None,
            "mean_event_group": round(d["grouped"] / d["groups"], 2) if d["groups"] else None}


WRK_SCRIPT = """
math.randomseed(0)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
request = function()
  return wrk.format(nil, "/v1/ads", nil, '{"user_id": ' .. math.random(1, 500) .. ', "slots": %d}')
end
"""


def wrk_load(port: int, proc: subprocess.Popen, args: argparse.Namespace) -> dict:
    """The independent load generator: ``wrk`` (Debian's, C, one thread) with ``--concurrency`` connections posting
    the same kind of body (a random user of the bundle's 500, ``--slots`` slots, no events) for ``--wrk-seconds``,
    /healthz probed meanwhile. Latency is wrk's, from each request's sending (its own coordinated-omission
    correction does not apply to a closed loop); server CPU from /proc as for the project's clients."""
    key = f'wrk.headers["X-API-Key"] = "{HEADERS["X-API-Key"]}"' if "X-API-Key" in HEADERS else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (key, args.slots))
    url = f"http://127.0.0.1:{port}"
    try:
        subprocess.run(["wrk", "-t1", f"-c{args.concurrency}", "-d2s", "-s", f.name, url], check=True,
                       capture_output=True)  # warm-up
        prober = HealthProbe(port)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{args.concurrency}", f"-d{args.wrk_seconds}s", "--latency", "-s", f.name,
                              url], check=True, capture_output=True, text=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
        health = prober.stop()
    finally:
        os.unlink(f.name)
    requests = int(out.split(" requests in ")[0].split()[-1])
    lat = dict(line.split() for line in out.split("Latency Distribution")[1].splitlines()[1:5])
    bad = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    return {"wrk_connections": args.concurrency, "wrk_seconds": args.wrk_seconds, "wrk_requests": requests,
            "wrk_non_2xx": bad, "wrk_req_per_s_wall": float(out.split("Requests/sec:")[1].split()[0]),
            "wrk_p50_ms": _wrk_ms(lat["50%"]), "wrk_p90_ms": _wrk_ms(lat["90%"]), "wrk_p99_ms": _wrk_ms(lat["99%"]),
            "wrk_req_per_server_cpu_s": round(requests / cpu, 1), "wrk_healthz_p99_ms": ms(health, 99)}


def _wrk_ms(value: str) -> float:
    """wrk's "812.00us", "4.21ms", "1.02s", "1.50m" in milliseconds."""
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if value.endswith(unit):
            return round(float(value[: -len(unit)]) * scale, 2)
    raise ValueError(f"wrk latency {value!r}: unknown unit")


def big_bodies(port: int, size: int = 16 << 20) -> dict:
    """A 16 MB body by Content-Length, then chunked, while /healthz is timed."""
    prober = HealthProbe(port, 0.005)
    time.sleep(1.0)  # the probe is running (a loaded machine starts a Python process slowly)
    try:
        (st_len, s_len, _), (st_chunk, s_chunk, sent_chunk) = (big_body(port, size, chunked) for chunked in (False, True))
        time.sleep(0.1)
    finally:
        health = prober.stop()
    return {"big_body_status": [st_len, st_chunk], "big_body_413_ms": [round(s_len * 1e3, 1), round(s_chunk * 1e3, 1)],
            "chunked_bytes_sent_before_413": sent_chunk, "healthz_big_body_max_ms": ms(health, 100)}


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a ``genads serve --workers N`` supervisor."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.is_file() else []


def tolerant_loop(url: str, bodies: list[dict], out: dict, lock: threading.Lock, click_every: int = 4) -> None:
    """Like closed_loop, but a failed request (a worker killed under it) is counted and the client goes on."""
    client = Http(url, HEADERS)
    failures = (OSError, http.client.HTTPException, ValueError)
    for i, body in enumerate(bodies):
        t = time.perf_counter()
        try:
            status, answer = client.post("/v1/ads", body)
            ok = status == 200  # slates shrink as campaigns exhaust their budgets
        except failures:
            ok = False
            client.close()
            client = Http(url, HEADERS)
        dt = time.perf_counter() - t
        with lock:
            out["lat" if ok else "failed"].append(dt)
        if not ok or not click_every or i % click_every or not answer["slate"]:
            continue
        token, rid = answer["slate"][0]["token"], answer["request_id"]
        try:
            client.post("/v1/events", {"idempotency_key": f"{rid}-i", "type": "impression", "token": token})
            first, replay = (client.post("/v1/events", {"idempotency_key": f"{rid}-{k}", "type": "click",
                                                        "token": token})[0] for k in "ab")
            with lock:
                out["charged"] += first == 200
                out["replays_refused"] += replay == 409
        except failures:
            client.close()
            client = Http(url, HEADERS)
            with lock:
                out["event_errors"] += 1
    client.close()


def scale_out(args: argparse.Namespace) -> None:
    """``--workers N --ledger postgresql://...``: requests/s of 1 and N workers on the same bundle and load
    (``--concurrency`` clients), a worker killed with SIGKILL half-way through the N-worker run, and the
    ledger invariants after each run (fresh ledger tables per run)."""
    from genads.serve.ledger_pg import PostgresLedger

    rng = np.random.default_rng(0)
    n_ads = int(args.ads.split(",")[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = synthetic_bundle(Path(tmp) / "serve", n_ads, n_advertisers=max(20, n_ads // 100), preset=args.preset,
                                  beam=args.beam, n_users=500, budget=5.0, seed=0, family=args.family)
        bodies = [{"user_id": int(u), "slots": args.slots} for u in rng.integers(1, 501, size=args.requests)]
        for workers in (1, args.workers):
            PostgresLedger(args.ledger).drop_all()
            shutil.rmtree(bundle / "state", ignore_errors=True)
            env = {"OMP_NUM_THREADS": "1", "GENADS_TORCH_THREADS": "1", "GENADS_ADMIN_KEY": "bench"}
            proc = spawn(bundle, args.port, "--mechanism", args.mechanism, "--log-level", "warning", "--workers",
                         str(workers), "--ledger", args.ledger, "--no-served-log", *OFF, env=env, ready_timeout=300)
            url = f"http://127.0.0.1:{args.port}"
            try:
                closed_loop(url, bodies[: args.warmup])
                out = {"lat": [], "failed": [], "charged": 0, "replays_refused": 0, "event_errors": 0}
                lock = threading.Lock()
                threads = [threading.Thread(target=tolerant_loop, args=(url, bodies[i::args.concurrency], out, lock))
                           for i in range(args.concurrency)]
                killed = None
                pids = [proc.pid, *worker_pids(proc.pid)]
                cpu0 = sum(cpu_seconds(pid) for pid in pids)
                w0, busy0, pg0, client0 = time.perf_counter(), machine_busy_s(), postgres_cpu_s(), time.process_time()
                for th in threads:
                    th.start()
                if workers > 1 and args.kill:
                    while len(out["lat"]) < len(bodies) // 2:
                        time.sleep(0.05)
                    killed = worker_pids(proc.pid)[0]
                    os.kill(killed, signal.SIGKILL)
                for th in threads:
                    th.join()
                wall = time.perf_counter() - w0
                cpu = sum(cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists()) - cpu0
                cores = {"server_cores": round(cpu / wall, 2), "postgres_cores": round((postgres_cpu_s() - pg0) / wall, 2),
                         "client_cores": round((time.process_time() - client0) / wall, 2),
                         "machine_busy_cores": round((machine_busy_s() - busy0) / wall, 2)}
                audit = PostgresLedger(args.ledger).audit()
                rows.append({"workers": workers, "live_ads": n_ads, "clients": args.concurrency,
                             "requests": len(bodies), "ok": len(out["lat"]), "failed": len(out["failed"]),
                             "req_per_s_wall": round(len(out["lat"]) / wall, 1), "p50_ms": ms(out["lat"], 50),
                             "p99_ms": ms(out["lat"], 99), "killed_worker": killed is not None,
                             "clicks_charged": out["charged"], "click_replays_refused": out["replays_refused"],
                             "event_errors": out["event_errors"], **({} if killed else cores),
                             **{f"ledger_{k}": v for k, v in audit.items()
                                if k in ("spent_mismatch", "over_budget", "slots_charged_twice")}})
                print_table([rows[-1]], f"{workers} worker(s)")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    ratio = rows[1]["req_per_s_wall"] / rows[0]["req_per_s_wall"]
    print_table(rows, f"genads serve --workers on PostgreSQL: {args.workers} workers / 1 = {ratio:.2f}x requests/s")
    note = (f"{os.cpu_count()} cores shared by the server workers, PostgreSQL and the {args.concurrency} load-client "
            "threads (one Python process) and other users of the machine: scaling is bounded by the cores, not by "
            "the service; one worker is killed with SIGKILL half-way through the multi-worker run (its in-flight "
            "requests fail and are counted; the supervisor starts it again)")
    print(f"\nresults: {save(args.name, {'rows': rows, 'ratio': round(ratio, 3), 'note': note, 'args': vars(args)})}")


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
    p.add_argument("--family", default="sid", choices=("sid", "parallel"),
                   help="sid: SID bundle (beam search); parallel: parallel-code bundle (exact scoring, 32 x 256 codes)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--name", default="serve_load", help="results file name")
    p.add_argument("--quick", action="store_true", help="2,000 ads, 300 requests (results name serve_load_quick)")
    p.add_argument("--workers", type=int, default=0,
                   help="scale-out run: 1 worker, then this many, on --ledger postgresql://... (results serve_load_workers)")
    p.add_argument("--ledger", default=None, help="PostgreSQL DSN for --workers")
    p.add_argument("--no-kill", dest="kill", action="store_false", help="--workers: do not SIGKILL a worker")
    p.add_argument("--traffic", default="both", choices=("both", "off", "on"),
                   help="traffic checks (publisher keys, rate limits, caps, invalid clicks) off, on, or both (compared)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds per traffic mode (medians compared)")
    p.add_argument("--wrk-seconds", type=int, default=10,
                   help="also load each server with wrk for this long, if wrk is installed (0: not)")
    p.add_argument("--no-click-pass", action="store_true",
                   help="also run the concurrent clients once without events (the figure wrk's compares with)")
    p.add_argument("--attacks", action="store_true", help="also the click farm and the slow drip of issue 31")
    p.add_argument("--drip", type=int, default=1100, help="--attacks: slow-drip connections (the issue's 1,100)")
    args = p.parse_args()
    if args.workers:
        if not args.ledger:
            p.error("--workers needs --ledger postgresql://...")
        if args.name == "serve_load":
            args.name = "serve_load_workers"
        scale_out(args)
        return
    if args.quick:
        args.ads, args.requests, args.warmup = "2000", 300, 20
        args.name = "serve_load_quick" if args.name == "serve_load" else args.name
    modes = ("off", "on") if args.traffic == "both" else (args.traffic,)
    rows = [row for n in args.ads.split(",") for row in run_size(int(n), args, args.port, modes)]
    print_table(rows, "POST /v1/ads, one uvicorn worker, one torch thread (machine shared: see server CPU figures)")
    goal = {"p99_ms_at_12k_10_slots": 15.0, "req_per_s_per_core": 200.0, "healthz_big_body_max_ms": 50.0,
            "ledger_violations": 0, "traffic_checks_cost": 0.10, "farm_drain_vs_issue": 0.01, "drip_healthz_p99_ms": 50.0}
    figures = {"rows": rows, "goal": goal, "shared_machine": True, "args": vars(args)}
    if args.traffic == "both":
        figures["traffic_cost"] = traffic_cost(rows)
        figures["traffic_check_cost_in_process"] = check_cost()
        print(json.dumps(figures["traffic_cost"], indent=1))
    if args.attacks:
        from serve_attacks import attacks

        figures["attacks"] = attacks(args)
        print(json.dumps(figures["attacks"], indent=1))
    print(f"\nresults: {save(args.name, figures)}")


def check_cost(n: int = 5000) -> dict:
    """The traffic checks of one ad request and one click, in-process, with nothing refused (CPU microseconds each):
    the publisher key's lookup in a SQLite ledger, the rate limits, the frequency caps (read and count 10 slots),
    and the click caps (judge and count)."""
    from genads.serve.tokens import user_hash
    from genads.serve.traffic import Caller, TrafficGuard, TrafficPolicy

    big = 10**9
    policy = TrafficPolicy(ads_per_s=big, ads_burst=big, events_per_s=big, events_burst=big, key_per_s=big,
                           key_burst=big, freq_cap_ad=big, freq_cap_campaign=big, max_clicks_per_client=big,
                           max_clicks_per_user=big)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SQLiteLedger(Path(tmp) / "l.sqlite", synchronous="OFF")
        key = ledger.add_key(None, publisher="bench")
        guard, users = TrafficGuard(policy, time.time), [user_hash(u) for u in range(500)]
        t = time.process_time()
        for i in range(n):
            who = ledger.principal(key)
            caller = Caller(f"10.0.{i % 250}.1", who.key_id, who.publisher)
            guard.rate("ads", caller)
            guard.capped(users[i % 500])
            guard.served(users[i % 500], [(1000 + (i + k) % 3000, 1 + (i + k) % 120) for k in range(10)])
        ad = (time.process_time() - t) / n
        t = time.process_time()
        for i in range(n):
            caller = Caller(f"10.0.{i % 250}.1", "k")
            verdict = guard.judge_click(caller, users[i % 500])
            guard.clicked(caller, users[i % 500], ("r", str(i)), 1, verdict)
        click = (time.process_time() - t) / n
        ledger.close()
    return {"ad_request_checks_us": round(ad * 1e6, 1), "click_checks_us": round(click * 1e6, 1), "repetitions": n}


def traffic_cost(rows: list[dict]) -> list[dict]:
    """Per size: the medians over rounds of server CPU per request (one client) and requests per server CPU-second
    (concurrent clients), and of p99, with the checks on vs off; cost = on/off - 1 in CPU per request."""
    out = []
    keys = ("server_cpu_ms_per_request", "req_per_server_cpu_s", "p99_ms", "conc_p99_ms", "req_per_s_wall")
    for n in sorted({r["live_ads"] for r in rows}):
        med = {m: {k: float(np.median([r[k] for r in rows if r["live_ads"] == n and r["traffic_checks"] == m]))
                   for k in keys} for m in ("off", "on")}
        out.append({"live_ads": n, "rounds": sum(r["live_ads"] == n and r["traffic_checks"] == "on" for r in rows),
                    **{f"{k}_{m}": round(v, 2) for m in ("off", "on") for k, v in med[m].items()},
                    "cost_cpu_per_request": round(med["on"]["server_cpu_ms_per_request"]
                                                  / med["off"]["server_cpu_ms_per_request"] - 1, 3),
                    "cost_throughput_per_cpu": round(1 - med["on"]["req_per_server_cpu_s"]
                                                     / med["off"]["req_per_server_cpu_s"], 3)})
    return out


if __name__ == "__main__":
    main()
