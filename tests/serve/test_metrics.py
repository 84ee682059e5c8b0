"""/metrics for one process and summed over --workers (Prometheus multiprocess mode)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from genads.serve.ledger_pg import PostgresLedger
from genads.serve.metrics import Metrics
from genads.serve.server import spawn
from tests.serve.conftest import ADMIN, copy_bundle, pg_dsn
from tests.serve.test_load import free_port

FORKED = textwrap.dedent("""
    import os, sys
    from genads.serve.metrics import Metrics, enable_multiprocess, worker_exited
    enable_multiprocess(sys.argv[1])
    pids = []
    for n in (3, 5):  # two workers, forked after enabling, as the supervisor does
        pid = os.fork()
        if pid == 0:
            m = Metrics()
            m.requests.labels("/v1/ads", "200").inc(n)
            m.charged.inc(1000 * n)
            m.latency.labels("/v1/ads").observe(0.004)
            m.live_ads.set(40 + n)
            os._exit(0)
        os.waitpid(pid, 0)
        pids.append(pid)
    worker_exited(pids[0])
    sys.stdout.write(Metrics().exposition().decode())
""")


def _value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def test_one_process_exposes_its_own_registry_with_process_figures():
    m = Metrics()
    m.requests.labels("/v1/ads", "200").inc(2)
    text = m.exposition().decode()
    assert _value(text, 'genads_http_requests_total{route="/v1/ads",status="200"}') == 2
    assert "process_cpu_seconds_total" in text


def test_workers_metrics_are_summed_and_a_dead_workers_counts_stay(tmp_path):
    """In a fresh interpreter: enabling multiprocess mode changes prometheus_client's globals."""
    out = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path / "metrics")], capture_output=True, text=True,
                         check=True).stdout
    assert _value(out, 'genads_http_requests_total{route="/v1/ads",status="200"}') == 8  # 3 + 5, both workers
    assert _value(out, "genads_charged_micros_total") == 8000
    assert _value(out, 'genads_http_request_duration_seconds_count{route="/v1/ads"}') == 2
    assert _value(out, "genads_live_ads") == 45  # the first worker's gauge went with it (mark_process_dead)
    assert "process_cpu_seconds_total" not in out  # per-process figures are not summable


def test_metrics_sum_over_two_server_workers(bundle_dir, tmp_path):
    """genads serve --workers 2 on PostgreSQL: /metrics counts every request, whichever worker served it."""
    dsn = pg_dsn()
    PostgresLedger(dsn).drop_all()
    bundle = copy_bundle(bundle_dir, tmp_path / "bundle")
    port = free_port()
    proc = spawn(bundle, port, "--ledger", dsn, "--workers", "2", "--log-level", "warning", "--open-traffic",
                 "--no-traffic-limits", env={"GENADS_ADMIN_KEY": ADMIN, "OMP_NUM_THREADS": "1"})
    try:
        url, n = f"http://127.0.0.1:{port}", 60
        for _ in range(n):  # fresh connections: the kernel spreads them over both workers
            with httpx.Client(base_url=url, timeout=10) as c:
                assert c.get("/healthz").status_code == 200
        text = httpx.get(f"{url}/metrics", headers={"X-API-Key": ADMIN}, timeout=10).text
        assert _value(text, 'genads_http_requests_total{route="/healthz",status="200"}') >= n
        assert "process_cpu_seconds_total" not in text
        assert len(list((bundle / "state" / "metrics").glob("*.db"))) >= 2  # both workers wrote their files
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        PostgresLedger(dsn).drop_all()
