"""The attacks of issue 31 against a real ``genads serve`` on loopback (``serve_load.py --attacks`` runs them).

* click farm: for 10 s of wall time, 4 client threads ask for slates (the history of one campaign's ads, 10 slots) and
  reports an impression, a click 1 ms later and a conversion on every slot of that campaign (raised to bid 5 with
  a budget it cannot spend), as the issue's script did. Run keyless against the default policy, with a leaked
  publisher key against the default policy, and against an open, unlimited service for scale. Figures: ad
  requests and events sent, statuses, money drained (spent after - before) and refunded.
* slow drip: ``--drip`` connections (10 loopback addresses, each under the per-address cap) send a request head
  and then one body byte every 5 s; /healthz is probed every 20 ms from another process. Figures: /healthz
  p50/p99/max during the drip, how each drip connection ended (408 at the body deadline, 503 over the
  connection bound), the seconds until the last one was cut, and whether POST /v1/ads answers 200 after.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx

from genads.serve.synthetic import synthetic_bundle
from serve_load import HEADERS, OFF, HealthProbe, ms, start

ISSUE_DRAIN = 2217.0
ADMIN = {"X-API-Key": "bench"}


def farm(url: str, key: dict[str, str], seconds: float = 10.0, clients: int = 4) -> dict:
    """The issue's farm for ``seconds`` from ``clients`` threads, ``key`` as its X-API-Key (empty: keyless)."""
    with httpx.Client(base_url=url, timeout=30) as http:
        c = max(http.get("/v1/campaigns", headers=ADMIN).json(), key=lambda x: len(x["ad_ids"]))
        http.patch(f"/v1/campaigns/{c['campaign_id']}", headers=ADMIN, json={"bid": 5.0, "budget": 1e6}).raise_for_status()
        before = http.get(f"/v1/campaigns/{c['campaign_id']}", headers=ADMIN).json()
    counts: dict[str, int] = {}
    lock, end = threading.Lock(), time.monotonic() + seconds

    def count(name: str) -> None:
        with lock:
            counts[name] = counts.get(name, 0) + 1

    def one(t: int) -> None:
        with httpx.Client(base_url=url, timeout=30, headers=key) as http:
            i = 0
            while time.monotonic() < end:
                i += 1
                r = http.post("/v1/ads", json={"history": c["ad_ids"][:3], "slots": 10})
                count(f"ads_{r.status_code}")
                if r.status_code != 200:
                    continue
                for s in (s for s in r.json()["slate"] if s["campaign_id"] == c["campaign_id"]):
                    for kind in ("impression", "click", "conversion"):
                        if kind == "click":
                            time.sleep(0.001)
                        e = http.post("/v1/events", json={"idempotency_key": f"{kind}-{t}-{i}-{s['position']}",
                                                          "type": kind, "token": s["token"]})
                        count(f"{kind}_{e.status_code}")

    threads = [threading.Thread(target=one, args=(t,)) for t in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with httpx.Client(base_url=url, timeout=30) as http:
        after = http.get(f"/v1/campaigns/{c['campaign_id']}", headers=ADMIN).json()
    drained = round(after["spent"] - before["spent"], 6)
    return {"seconds": seconds, "clients": clients, "ad_requests": sum(v for k, v in counts.items() if k.startswith("ads_")),
            "statuses": dict(sorted(counts.items())), "drained": drained,
            "drained_share_of_issue": round(drained / ISSUE_DRAIN, 5), "refunded": after["refunded"],
            "invalid_clicks": after["invalid_clicks"]}


def drip(port: int, n: int, every_s: float = 5.0, hold_s: float = 40.0) -> dict:
    """``n`` slow-drip connections from 10 addresses; /healthz probed meanwhile (see the module docstring)."""
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    prober = HealthProbe(port, 0.02)
    socks, ended, t0 = [], {}, time.monotonic()
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(f"127.0.0.{2 + i % 10}", 0))
        s.sendall(head)
        s.setblocking(False)
        socks.append(s)
    opened = time.monotonic() - t0
    last_byte, poller, by_fd = 0.0, select.poll(), {s.fileno(): s for s in socks}  # poll: fds past select()'s 1024
    for s in socks:
        poller.register(s, select.POLLIN)
    while time.monotonic() - t0 < hold_s and len(ended) < n:
        for fd, _ in poller.poll(200):
            s = by_fd[fd]
            poller.unregister(fd)
            if s in ended:
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
            ended[s] = (status, time.monotonic() - t0)
        if time.monotonic() - last_byte >= every_s:
            last_byte = time.monotonic()
            for s in (s for s in socks if s not in ended):
                with contextlib.suppress(OSError):  # closed by the server: its answer comes through poll
                    s.send(b" ")
    health = prober.stop()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=HEADERS) as http:
        after = http.post("/v1/ads", json={"slots": 3}).status_code
    for s in socks:
        s.close()
    how: dict[str, int] = {}
    for status, _ in ended.values():
        how[str(status)] = how.get(str(status), 0) + 1
    return {"connections": n, "addresses": 10, "byte_every_s": every_s, "open_s": round(opened, 2),
            "ended": dict(sorted(how.items())), "still_open_at_end": n - len(ended),
            "last_cut_s": round(max((t for _, t in ended.values()), default=0.0), 1),
            "healthz_p50_ms": ms(health, 50), "healthz_p99_ms": ms(health, 99), "healthz_max_ms": ms(health, 100),
            "healthz_answers": len(health), "ads_after_drip_status": after}


def attacks(args: argparse.Namespace) -> dict:
    out: dict = {"issue_drain": ISSUE_DRAIN}
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as tmp:
        bundle = synthetic_bundle(Path(tmp) / "serve", 2000, n_advertisers=20, preset=args.preset, beam=args.beam,
                                  n_users=500, budget=1e6, seed=0)
        for name, flags, keyed in (("farm_open_unlimited", OFF, False), ("farm_keyless", (), False),
                                   ("farm_leaked_publisher_key", (), True), ("drip", (), True)):
            shutil.rmtree(bundle / "state", ignore_errors=True)
            proc = start(bundle, args.port, args.mechanism, args.serve_beam, flags)
            try:
                if name == "drip":
                    out[name] = drip(args.port, args.drip)
                else:
                    out[name] = farm(url, dict(HEADERS) if keyed else {})
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    return out
