"""Semantic-ID quality: collisions, per-level codebook utilisation and perplexity, quantisation error."""

from __future__ import annotations

import numpy as np


def collision_rate(codes: np.ndarray) -> float:
    """1 - distinct SIDs / items: the share of items that need a disambiguation token."""
    codes = np.asarray(codes)
    if len(codes) == 0:
        return 0.0
    return 1.0 - len(np.unique(codes, axis=0)) / len(codes)


def max_bucket(codes: np.ndarray) -> int:
    """Most items sharing one SID (1 when every SID is unique)."""
    if len(codes) == 0:
        return 0
    _, counts = np.unique(np.asarray(codes), axis=0, return_counts=True)
    return int(counts.max())


def level_stats(codes: np.ndarray, codebook_size: int) -> list[dict[str, float]]:
    """Per level: utilisation (share of the codebook used), perplexity exp(H) and its share of K."""
    codes = np.asarray(codes)
    rows = []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=codebook_size).astype(np.float64)
        p = counts[counts > 0] / max(counts.sum(), 1.0)
        perplexity = float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0
        rows.append({"level": level + 1, "used": int((counts > 0).sum()),
                     "utilisation": float((counts > 0).mean()), "perplexity": perplexity,
                     "perplexity_share": perplexity / codebook_size})
    return rows


def quantisation_error(vectors: np.ndarray, reconstruction: np.ndarray) -> float:
    """Relative squared error sum ||x - x_hat||^2 / sum ||x||^2 (0 = exact)."""
    x = np.asarray(vectors, dtype=np.float64)
    r = np.asarray(reconstruction, dtype=np.float64)
    if x.shape != r.shape:
        raise ValueError(f"reconstruction has shape {r.shape}, vectors {x.shape}")
    return float(((x - r) ** 2).sum() / max((x ** 2).sum(), 1e-12))


def sid_summary(codes: np.ndarray, codebook_size: int, vectors: np.ndarray | None = None,
                reconstruction: np.ndarray | None = None) -> dict[str, float]:
    """One row for tables: collision rate, mean utilisation/perplexity over levels, quantisation error."""
    levels = level_stats(codes, codebook_size)
    row: dict[str, float] = {
        "items": len(codes),
        "collision_rate": collision_rate(codes),
        "max_bucket": max_bucket(codes),
        "utilisation": float(np.mean([r["utilisation"] for r in levels])),
        "perplexity": float(np.mean([r["perplexity"] for r in levels])),
    }
    for r in levels:
        row[f"util_l{r['level']}"] = r["utilisation"]
    if vectors is not None and reconstruction is not None:
        row["quant_error"] = quantisation_error(vectors, reconstruction)
    return row
