"""Start the service on a run folder: bundle + ledger + keys -> app -> uvicorn.

``RUN_DIR`` is a bundle folder (or a folder holding one in ``serve/``). State lives beside it in
``RUN_DIR/state/``: the SQLite ledger (unless ``--ledger postgresql://...``), ``admin.key`` (or
``$GENADS_ADMIN_KEY``) and ``token.secret`` (or ``$GENADS_TOKEN_SECRET``, hex), all mode 0600.
The admin key a server starts with is the only live admin key: replacing ``admin.key`` and
restarting revokes the old one; a revoked key is refused at start.

Unless the traffic policy is open, ``/v1/ads`` and ``/v1/events`` need a publisher key: on its first
start a server issues one for the publisher "default" and writes it to ``state/publisher.key`` (0600),
so ``make serve`` and the walkthrough work out of the box (``-H "X-API-Key: $(cat .../publisher.key)"``);
revoke it (``genads keys revoke``) once real publishers have their own keys: it is never re-issued.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI

from genads.serve.access_log import ACCESS, configure_json_logging
from genads.serve.app import create_app
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
from genads.serve.keys import LedgerError
from genads.serve.ledger import SQLLedger, open_ledger
from genads.serve.limits import Limits
from genads.serve.metrics import enable_multiprocess, worker_exited
from genads.serve.protocol import guarded_protocol
from genads.serve.served_log import SERVED_LOG, ServedLog
from genads.serve.tokens import TokenSecrets, write_secret
from genads.serve.traffic import TrafficPolicy

ADMIN_ENV, SECRET_ENV = "GENADS_ADMIN_KEY", "GENADS_TOKEN_SECRET"


def bundle_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "manifest.json").is_file():
        return run_dir
    if (run_dir / "serve" / "manifest.json").is_file():
        return run_dir / "serve"
    raise FileNotFoundError(f"{run_dir} holds no serving bundle (manifest.json); `make demo` writes runs/demo/serve")


def private_dir(path: Path) -> Path:
    """The folder, created or closed up to mode 0700 (it holds keys, the ledger and users' ids)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o700)
    return path


def _read_private(path: Path) -> str:
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)  # written by an older version, or by hand: close it up
    return path.read_text().strip()


def admin_key(ledger: SQLLedger, state: Path) -> str:
    """The admin key: $GENADS_ADMIN_KEY, else state/admin.key, else a new one written there (0600).
    Installed as the ledger's only live admin key; a revoked one raises ValueError."""
    key = os.environ.get(ADMIN_ENV)
    path = state / "admin.key"
    if not key and path.is_file():
        key = _read_private(path)
    if not key:
        key = secrets.token_urlsafe(32)
        write_secret(path, key + "\n")
    try:
        ledger.install_admin_key(key)
    except LedgerError as err:
        where = f"${ADMIN_ENV}" if os.environ.get(ADMIN_ENV) else str(path)
        raise ValueError(f"the admin key in {where}: {err.message}") from None
    return key


PUBLISHER_FILE, DEFAULT_PUBLISHER = "publisher.key", "default"


def publisher_key(ledger: SQLLedger, state: Path) -> Path:
    """``state/publisher.key``: a key for the publisher "default", issued and written (0600) on the first start.
    Written before the ledger learns it, so a key the ledger knows is never lost; never issued twice."""
    path = state / PUBLISHER_FILE
    if not path.is_file():
        key = secrets.token_urlsafe(32)
        write_secret(path, key + "\n")
        ledger.add_key(None, key, publisher=DEFAULT_PUBLISHER)
    else:
        _read_private(path)
    return path


def rotate_admin_key(ledger: SQLLedger, state: Path) -> str:
    """A new admin key in state/admin.key (0600), the only live one from now on (running servers too)."""
    key = secrets.token_urlsafe(32)
    write_secret(state / "admin.key", key + "\n")  # first: a key the ledger knows is never lost
    ledger.install_admin_key(key)
    return key


def rotate_token_secret(state: Path, drop_previous: bool = False) -> TokenSecrets:
    """A new token secret in state/token.secret; tokens signed by the old one stay valid until they expire
    (none with ``drop_previous``). Running servers re-read the file within a second."""
    if os.environ.get(SECRET_ENV):
        raise ValueError(f"${SECRET_ENV} is set: rotate it where it is set")
    path = state / "token.secret"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: start the server once first")
    out = TokenSecrets.load(path).rotate(keep_previous=not drop_previous)
    out.save(path)
    return out


def open_state(run_dir: str | Path, ledger_url: str | None = None) -> tuple[SQLLedger, Path]:
    """The ledger and the state folder of a run (for the key commands)."""
    state = bundle_dir(run_dir) / "state"
    return open_ledger(ledger_url or str(state / "ledger.sqlite")), state


def token_secrets(ledger: SQLLedger, state: Path) -> TokenSecrets:
    """$GENADS_TOKEN_SECRET (hex), else state/token.secret, else a new file (0600). A ledger that still holds
    the secret (written before secrets moved out) hands it over to the file and forgets it."""
    env = os.environ.get(SECRET_ENV)
    if env:
        try:
            current = bytes.fromhex(env)
        except ValueError:
            raise ValueError(f"${SECRET_ENV} must be hex") from None
        if len(current) < 16:
            raise ValueError(f"${SECRET_ENV} must hold at least 16 bytes (32 hex digits)")
        return TokenSecrets(current)
    path = state / "token.secret"
    legacy = ledger.legacy_token_secret()
    if path.is_file():
        _read_private(path)
        out = TokenSecrets.load(path)
    else:
        out = TokenSecrets(legacy) if legacy else TokenSecrets.generate()
        out.save(path)
    if legacy is not None:
        ledger.forget_legacy_token_secret()
    return out


def build_app(run_dir: str | Path, ledger_url: str | None = None, config: ServeConfig | None = None,
              limits: Limits | None = None, public_url: str | None = None, clicks_need_impression: bool = True,
              served_log: str | Path | None = "", traffic: TrafficPolicy | None = None, public_metrics: bool = False,
              docs: bool = False) -> FastAPI:
    """The app on a bundle folder. ``served_log``: the served log's path ("" = state/served.jsonl, None = none);
    ``traffic``: keys, rate limits, caps and invalid-click rules (default :class:`TrafficPolicy`)."""
    folder = bundle_dir(run_dir)
    state = private_dir(folder / "state")
    ledger = open_ledger(ledger_url or str(state / "ledger.sqlite"))
    bundle = load_bundle(folder)
    seed_campaigns(ledger, bundle)
    admin_key(ledger, state)
    traffic = traffic or TrafficPolicy()
    if traffic.require_keys:
        publisher_key(ledger, state)
    from_file = not os.environ.get(ADMIN_ENV)
    on_rotate = (lambda key: write_secret(state / "admin.key", key + "\n")) if from_file else None
    log = None
    if served_log is not None:
        log = ServedLog(Path(served_log) if served_log else state / SERVED_LOG, bundle.model_version, bundle.vocab)
    return create_app(AdEngine(bundle, ledger, config, token_secrets(ledger, state)), limits=limits,
                      public_url=public_url, on_admin_rotate=on_rotate, clicks_need_impression=clicks_need_impression,
                      served_log=log, traffic=traffic, public_metrics=public_metrics, docs=docs,
                      admin_rotation=from_file)


def run(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, ledger_url: str | None = None,
        config: ServeConfig | None = None, log_level: str = "info", limits: Limits | None = None,
        public_url: str | None = None, clicks_need_impression: bool = True, served_log: str | Path | None = "",
        workers: int = 1, traffic: TrafficPolicy | None = None, public_metrics: bool = False,
        docs: bool = False) -> None:
    """Serve on ``host:port``. ``workers`` > 1 forks that many server processes on one listening socket
    (PostgreSQL ledger only: SQLite is single-process); a worker that dies is started again."""
    import torch

    torch.set_num_threads(int(os.environ.get("GENADS_TORCH_THREADS", "1")))  # one core per worker
    # the decoding thread holds the GIL between torch calls: the event loop gets it back within this many ms
    # (Python's default, 5 ms, delays /healthz and every request's reading and answering by up to that, each time)
    sys.setswitchinterval(float(os.environ.get("GENADS_SWITCH_INTERVAL_MS", "0.5")) / 1000)
    configure_json_logging(log_level)
    limits = limits or Limits()
    traffic = traffic or TrafficPolicy()
    args = (run_dir, ledger_url, config, limits, public_url, clicks_need_impression, served_log, traffic, public_metrics,
            docs)
    if workers == 1:
        _serve(build_app(*args), log_level, limits, host=host, port=port)
        return
    if workers < 1:
        raise ValueError(f"--workers {workers} must be >= 1")
    if not (ledger_url or "").startswith(("postgresql://", "postgres://")):
        raise ValueError(f"--workers {workers} needs --ledger postgresql://...: the SQLite ledger serves one process")
    _prepare_state(run_dir, ledger_url, traffic.require_keys)
    enable_multiprocess(private_dir(bundle_dir(run_dir) / "state") / "metrics")  # /metrics sums every worker
    sock = socket.create_server((host, port), backlog=2048, reuse_port=False)
    sock.set_inheritable(True)
    _supervise(workers, lambda: _serve(build_app(*args), log_level, limits, sock=sock))


def _serve(app: FastAPI, log_level: str, limits: Limits, host: str = "127.0.0.1", port: int = 8000,
           sock: socket.socket | None = None) -> None:
    import uvicorn

    # h11's own bound on a head still arriving (if httptools is missing) is looser: the guard answers (JSON 431) first
    cfg = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                         timeout_keep_alive=limits.keep_alive_s, h11_max_incomplete_event_size=4 * limits.max_header_bytes,
                         limit_concurrency=limits.max_connections, http=guarded_protocol(limits, healthz_counter(app)))
    server = uvicorn.Server(cfg)
    # the bundle, vocabularies and model are built: a full garbage collection would walk them all (tens to
    # hundreds of ms with every thread stopped, the largest /healthz stalls under load); they live as long as
    # the process, so the collector leaves them out from now on
    gc.collect()
    gc.freeze()
    # what serving allocates dies young (requests, tasks, answers): collect the young generation every 50,000
    # allocations instead of 700, and the old ones more rarely. Under 32 clients on an idle machine this served
    # 14-28% more requests per CPU-second than Python's (700, 10, 10) in an interleaved A/B (issue 29)
    gc.set_threshold(*(int(x) for x in os.environ.get("GENADS_GC_THRESHOLD", "50000,20,100").split(",")))
    server.run(sockets=[sock] if sock is not None else None)


def healthz_counter(app: FastAPI) -> Callable[[str, float], None]:
    """What the protocol calls for each /healthz it answers itself: the request metrics and the access log, as the
    app's middlewares would."""
    metrics = app.state.metrics

    def counted(rid: str, seconds: float) -> None:
        metrics.requests.labels("/healthz", "200").inc()
        metrics.latency.labels("/healthz").observe(seconds)
        if ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info("request", extra={"fields": {"request_id": rid, "method": "GET", "route": "/healthz",
                                                     "status": 200, "duration_s": round(seconds, 6), "pid": os.getpid()}})

    return counted


def _prepare_state(run_dir: str | Path, ledger_url: str, publisher: bool = True) -> None:
    """What workers would race on, done once before they start: schema, campaigns, admin and publisher keys,
    token secret."""
    import pandas as pd

    folder = bundle_dir(run_dir)
    state = private_dir(folder / "state")
    ledger = open_ledger(ledger_url)
    try:
        seed_campaigns(ledger, SimpleNamespace(ads=pd.read_parquet(folder / "ads.parquet")))
        admin_key(ledger, state)
        if publisher:
            publisher_key(ledger, state)
        token_secrets(ledger, state)
    finally:
        ledger.close()


def _supervise(workers: int, serve: Callable[[], None]) -> None:
    """Fork ``workers`` processes running ``serve``; restart one that dies; stop them all on SIGTERM/SIGINT."""
    log = logging.getLogger("genads.server")
    children: dict[int, int] = {}
    stopping = [False]

    def start(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: default signal handling, its own app (bundle, ledger pool, served log)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve()
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot
        log.info("worker started", extra={"fields": {"worker": slot, "worker_pid": pid}})

    def stop(signum, frame) -> None:
        stopping[0] = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        start(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        slot = children.pop(pid, None)
        if slot is None:
            continue
        log.info("worker exited", extra={"fields": {"worker": slot, "worker_pid": pid, "status": status}})
        worker_exited(pid)
        if not stopping[0]:
            time.sleep(0.2)  # a worker failing at start must not spin
            start(slot)


def spawn(run_dir: str | Path, port: int, *args: str, env: dict[str, str] | None = None,
          ready_timeout: float = 60.0) -> subprocess.Popen:
    """``genads serve RUN_DIR --port PORT ARGS...`` in a child process, returned once /readyz answers 200.

    Raises RuntimeError if the server exits first or is not ready within ``ready_timeout`` seconds
    (the child is killed then). Used by the load tests and benchmarks/serve_load.py.
    """
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "genads.cli", "serve", str(run_dir), "--port", str(port), *args],
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server not ready in {ready_timeout:g} s")
