"""Shared benchmark plumbing: machine facts, result JSON, a printed table."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        gpu, torch_version = None, None
    return {"cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch_version, "platform": platform.platform()}


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# Provenance is taken when the benchmark starts (this module is imported first), not when it saves: a tree that
# changes during a long run must not lend its later commit to figures computed by earlier code.
_START = {"git_sha": git_sha(), "load_at_start": list(os.getloadavg()),
          "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
_CPU_AT_START = time.process_time()


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The epoch rows a training run appended to ``run_dir/metrics.jsonl`` (its whole log, resumed calls included)."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]


def save(name: str, figures: dict) -> Path:
    """Write benchmarks/results/NAME.json with the figures and the run's provenance.

    ``git_sha`` is the commit at the start of the run (``-dirty`` when tracked files differed from it then);
    ``load`` holds the 1/5/15-minute load averages at start and at save, ``cpu_seconds`` this process's CPU time.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_sha": _START["git_sha"],
        "git_sha_at_save": git_sha(),
        "started": _START["started"],
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {"at_start": _START["load_at_start"], "at_save": list(os.getloadavg())},
        "cpu_seconds": round(time.process_time() - _CPU_AT_START, 1),
        "figures": figures,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    return path


def print_table(rows: list[dict], title: str = "") -> None:
    if title:
        print(f"\n{title}")
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)))
