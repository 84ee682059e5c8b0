"""Training curves: one row per epoch in ``run/metrics.jsonl`` and, when TensorBoard is installed, the same
numbers as scalars in ``run/tensorboard/`` (``tensorboard --logdir runs/``). Both training loops (SID and
parallel families) write through :func:`log_epoch`; TensorBoard is optional (``pip install tensorboard``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TENSORBOARD_DIR = "tensorboard"
_writers: dict[Path, object] = {}


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def log_epoch(run_dir: str | Path, row: dict) -> None:
    """Append ``row`` to ``run_dir/metrics.jsonl``; its numeric fields also go to TensorBoard when installed,
    at step ``row["epoch"]`` (else ``row["step"]``, else the row's number in the file)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    if not tensorboard_available():
        return
    writer = _writers.get(run_dir.resolve())
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter

        writer = _writers[run_dir.resolve()] = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))
    step = row.get("epoch", row.get("step"))
    if not isinstance(step, int):
        step = sum(1 for _ in path.open(encoding="utf-8"))
    for key, value in row.items():
        if key in ("epoch", "step") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            writer.add_scalar(key, value, step)
    writer.flush()
