"""Import throughput and memory: a generated CSV event log of 1M, 10M (and 100M) events.

``--baseline-src DIR`` also runs another genads source tree (e.g. the hand-written bucket sort
before DuckDB: ``git archive 63f0a12 src | tar -x -C DIR``) on the same generated file, right after
the current importer, so both face the same machine load. The log is written to a temporary folder block by block (never held in memory) by one child
process, then imported by ``genads.data.ingest.import_dataset`` in another, so that peak RSS counts
the import alone: ``ru_maxrss`` of the importing child (Linux carries a parent's high-water mark
across fork+exec, so the parent stays lean: standard library only) and its ``VmHWM``. The same
import at 1M and 10M events shows whether memory grows with input size.

Run: .venv/bin/python benchmarks/data_import.py [--sizes 1000000 10000000 100000000] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import print_table, save

N_ADS = 200_000
RESULT = "@@figures "
ACTIONS = ("impression", "click", "conversion")


def generate(path: Path, n_events: int, seed: int = 0, block: int = 1_000_000) -> None:
    """Write a CSV log of ``n_events`` (user, ad, timestamp, action) rows, ``block`` rows at a time.

    Users are shuffled across the file (events of a user are scattered, as in a real log), ids are
    not dense, and a user's timestamps are not in file order: the importer has real sorting to do.
    """
    import numpy as np
    import pandas as pd

    actions = np.array(ACTIONS)
    rng = np.random.default_rng(seed)
    n_users = max(1, n_events // 20)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("user_id,ad_id,timestamp,action\n")
        for start in range(0, n_events, block):
            n = min(block, n_events - start)
            frame = pd.DataFrame({
                "user_id": rng.integers(0, n_users, n) * 13 + 1_000_000,
                "ad_id": rng.integers(1, N_ADS + 1, n),
                "timestamp": 1_600_000_000 + rng.integers(0, 30_000_000, n),
                "action": actions[rng.choice(3, n, p=[0.6, 0.35, 0.05])],
            })
            frame.to_csv(f, header=False, index=False)


def write_catalogue(path: Path) -> None:
    import numpy as np
    import pandas as pd

    ads = np.arange(1, N_ADS + 1)
    pd.DataFrame({"ad_id": ads, "title": [f"ad {a}" for a in ads], "brand": [f"b{a % 5000}" for a in ads],
                  "price": np.round(np.random.default_rng(1).uniform(1, 100, N_ADS), 2)}).to_csv(path, index=False)


def child(events: str, catalogue: str, out: str, chunk_rows: int, memory_limit: str) -> None:
    """Run one import and print its figures as JSON (peak RSS of this process only)."""
    import inspect

    from genads.data import ingest
    from genads.data.loaders import TabularSource

    kw = {}
    if memory_limit and "duck" in inspect.signature(ingest.import_dataset).parameters:  # not in trees before DuckDB
        from genads.data.duck_sort import DuckConfig

        kw["duck"] = DuckConfig(memory_limit=memory_limit)
    start = time.perf_counter()
    report = ingest.import_dataset(TabularSource(events, catalogue=catalogue), out, chunk_rows=chunk_rows,
                                   progress=True, **kw)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("\n" + RESULT + json.dumps({  # DuckDB's progress bar shares stdout: the figures follow a marker
        "seconds": seconds,
        "n_events": report.n_events,
        "n_users": report.n_users,
        "rejected": report.issues.total,
        "engine": getattr(report, "engine", "bucket sort (before DuckDB)"),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),  # every thread of the import (DuckDB's included)
        "vm_hwm_mb": _vm_hwm_mb(),
    }))


def _vm_hwm_mb() -> float | None:
    """Peak resident set size of this process's own address space (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_one(tmp: Path, n_events: int, chunk_rows: int, baseline: Path | None, memory_limit: str = "") -> list[dict]:
    events = tmp / f"events-{n_events}.csv"
    catalogue = tmp / "catalogue.csv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(events), str(catalogue), str(n_events)], check=True)
    gen_s = time.perf_counter() - t0
    input_mb = events.stat().st_size / 2**20
    rows = []
    for label, src in (("current", None), ("baseline", baseline)):
        if label == "baseline" and src is None:
            continue
        env = dict(os.environ)
        if src is not None:  # the child imports genads from that tree
            env["PYTHONPATH"] = str(Path(src).resolve() / "src")
        load = os.getloadavg()[0]
        out = tmp / f"ds-{n_events}-{label}"
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(events), str(catalogue), str(out), str(chunk_rows), memory_limit],
            stdout=subprocess.PIPE, text=True, check=True, env=env,
        )
        figures = json.loads(proc.stdout.rsplit(RESULT, 1)[1].splitlines()[0])
        assert figures["n_events"] == n_events and figures["rejected"] == 0, figures
        rows.append({"code": label, "memory_limit": memory_limit or "default", "events": n_events, "input_mb": round(input_mb, 1), **figures,
                     "events_per_s": n_events / figures["seconds"], "generate_s": gen_s,
                     "load_avg_1min_before": load})
        subprocess.run(["rm", "-rf", str(out)], check=True)
    events.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--baseline-src", type=Path, help="another genads tree to run on the same files (its src/)")
    parser.add_argument("--tag", default="", help="suffix of the results file (data_import_TAG.json)")
    parser.add_argument("--memory-limit", default="", help="DuckDB memory limit of the current code (default: DuckConfig's)")
    parser.add_argument("--child", nargs=5, metavar=("EVENTS", "CATALOGUE", "OUT", "CHUNK_ROWS", "MEMORY"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=3, metavar=("EVENTS", "CATALOGUE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        if not Path(args.generate[1]).exists():
            write_catalogue(Path(args.generate[1]))
        generate(Path(args.generate[0]), int(args.generate[2]))
        return
    if args.child:
        child(*args.child[:3], int(args.child[3]), args.child[4])
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="genads-bench-") as tmp:
        for n in args.sizes:
            rows.extend(run_one(Path(tmp), n, args.chunk_rows, args.baseline_src, args.memory_limit))
            print_table(rows[-2:], f"import of {n:,} events")
    table = [{"code": r["code"], "engine": r["engine"], "events": r["events"], "input MB": r["input_mb"], "seconds": round(r["seconds"], 1), "events/s": int(r["events_per_s"]),
              "CPU s": r.get("cpu_s", ""), "peak RSS MB": round(r["peak_rss_mb"]),
              "VmHWM MB": round(r["vm_hwm_mb"]) if r["vm_hwm_mb"] else "",
              "load avg": round(r["load_avg_1min_before"], 1)} for r in rows]
    print_table(table, "genads data import: generated CSV log, catalogue of 200k ads, one child process per size")
    speedups = {}
    for n in args.sizes:
        cur = [r for r in rows if r["events"] == n and r["code"] == "current"]
        base = [r for r in rows if r["events"] == n and r["code"] == "baseline"]
        if cur and base:
            speedups[str(n)] = {"wall": round(cur[0]["events_per_s"] / base[0]["events_per_s"], 2),
                                "cpu": round(base[0]["cpu_s"] / cur[0]["cpu_s"], 2) if cur[0].get("cpu_s") else None}
    if speedups:
        print(f"\nspeed-up (events/s current / baseline, same file, back to back): {speedups}")
    path = save("data_import" + (f"_{args.tag}" if args.tag else ""),
                {"runs": rows, "chunk_rows": args.chunk_rows, "speedup": speedups,
                 "baseline_src": str(args.baseline_src) if args.baseline_src else None,
                                "note": "peak RSS: ru_maxrss and VmHWM of the importing child process only; "
                                        "load avg: the machine is shared, so events/s vary with it; CPU s (user + "
                                        "system, all threads) varies far less; speedup: wall (events/s) and CPU"})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
