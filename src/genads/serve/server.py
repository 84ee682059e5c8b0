"""Start the service on a run folder: bundle + ledger + keys -> app -> uvicorn.

``RUN_DIR`` is a bundle folder (or a folder holding one in ``serve/``). State lives beside it in
``RUN_DIR/state/``: the SQLite ledger (unless ``--ledger postgresql://...``) and ``admin.key``
(mode 0600; or the ``GENADS_ADMIN_KEY`` environment variable).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from fastapi import FastAPI

from genads.data.dataset import atomic_write_text
from genads.serve.app import create_app
from genads.serve.bundle import load_bundle
from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
from genads.serve.ledger import SQLLedger, open_ledger


def bundle_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "manifest.json").is_file():
        return run_dir
    if (run_dir / "serve" / "manifest.json").is_file():
        return run_dir / "serve"
    raise FileNotFoundError(f"{run_dir} holds no serving bundle (manifest.json); `make demo` writes runs/demo/serve")


def admin_key(ledger: SQLLedger, state: Path) -> str:
    """The admin key: $GENADS_ADMIN_KEY, else state/admin.key, else a new one written there; registered in the ledger."""
    key = os.environ.get("GENADS_ADMIN_KEY")
    path = state / "admin.key"
    if not key and path.is_file():
        key = path.read_text().strip()
    if not key:
        key = secrets.token_urlsafe(24)
        state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, key + "\n")
        path.chmod(0o600)
    ledger.add_key(None, key)
    return key


def build_app(run_dir: str | Path, ledger_url: str | None = None, config: ServeConfig | None = None) -> FastAPI:
    folder = bundle_dir(run_dir)
    state = folder / "state"
    ledger = open_ledger(ledger_url or str(state / "ledger.sqlite"))
    bundle = load_bundle(folder)
    seed_campaigns(ledger, bundle)
    admin_key(ledger, state)
    return create_app(AdEngine(bundle, ledger, config))


def run(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, ledger_url: str | None = None,
        config: ServeConfig | None = None, log_level: str = "info") -> None:
    import torch
    import uvicorn

    torch.set_num_threads(int(os.environ.get("GENADS_TORCH_THREADS", "1")))  # one core per worker
    app = build_app(run_dir, ledger_url, config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


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
