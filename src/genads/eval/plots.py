"""Figures for reports. Each takes returned values and gives back a matplotlib Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def length_and_popularity(lengths: np.ndarray, item_counts: np.ndarray) -> plt.Figure:
    """Histogram of sequence lengths and the item popularity long tail (log-log)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.hist(lengths, bins=min(50, max(5, int(lengths.max()))), color="#4878d0")
    a.set(xlabel="interactions per user", ylabel="users", title="Sequence lengths")
    counts = np.sort(item_counts[item_counts > 0])[::-1]
    b.loglog(np.arange(1, len(counts) + 1), counts, color="#d65f5f")
    b.set(xlabel="item rank", ylabel="interactions", title="Item popularity (long tail)")
    fig.tight_layout()
    return fig


def metric_bars(rows: list[dict], metrics: tuple[str, ...] = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")) -> plt.Figure:
    """Grouped bars: one group per metric, one bar per model (rows have 'model' + metric keys)."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(metrics))
    for i, row in enumerate(rows):
        ax.bar(x + i * width, [row.get(m, 0.0) for m in metrics], width, label=row["model"])
    ax.set_xticks(x + width * (len(rows) - 1) / 2, metrics)
    ax.set_ylabel("test score (full ranking)")
    ax.legend()
    fig.tight_layout()
    return fig


def training_curves(logs: dict[str, list[dict]], y: str = "loss", y2: str | None = "valid_ndcg@10") -> plt.Figure:
    """Per-epoch training loss (and a validation metric) for each model that has a log."""
    y2 = y2 if y2 and any(y2 in r for rows in logs.values() for r in rows) else None
    fig, ax = plt.subplots(1, 2 if y2 else 1, figsize=(10 if y2 else 5, 3.4), squeeze=False)
    for name, rows in logs.items():
        if not rows or y not in rows[0]:
            continue
        epochs = [r["epoch"] for r in rows]
        ax[0, 0].plot(epochs, [r[y] for r in rows], label=name)
        pts = [(r["epoch"], r[y2]) for r in rows if y2 and r.get(y2) is not None]
        if pts:
            ax[0, 1].plot(*zip(*pts, strict=True), marker="o", label=name)
    ax[0, 0].set(xlabel="epoch", ylabel=y, title="Training loss")
    ax[0, 0].legend()
    if y2:
        ax[0, 1].set(xlabel="epoch", ylabel=y2, title="Validation")
        ax[0, 1].legend()
    fig.tight_layout()
    return fig
