"""How well a pCTR model predicts held-out logged clicks: within-request AUC and log-loss.

Both pipelines' pCTR models (the cascade's DIN, the end-to-end reward model) are scored on the same
held-out requests of the exploration log, which neither was trained on. *Within-request AUC* is the
share of (clicked, not clicked) ad pairs shown on the same page that the model orders correctly
(ties count one half): it measures what an auction needs — ranking the candidates of one request —
and ignores how well the model separates users. *Log-loss* is the position-based likelihood the
models were trained with, ``click ~ Bernoulli(slot_ctr[slot] * pCTR)``.
"""

from __future__ import annotations

import numpy as np

from genads.eval.ctr_metrics import pooled_pair_auc, position_log_loss
from genads.market.logs import Impressions

within_request_auc, log_loss = pooled_pair_auc, position_log_loss
"""The names this module's figures carry (``within_request_auc``, ``log_loss``): see :mod:`genads.eval.ctr_metrics`."""


def score_pctr(pctr_fn, imp: Impressions, k: int, slot_ctr: np.ndarray) -> dict[str, float]:
    """Figures of ``pctr_fn(history (N, L), items (N, k), users (N,)) -> (N, k)`` on held-out impressions
    (``k`` rows a request; ``users`` only for the true-CTR reference row)."""
    n = len(imp.item) // k
    items, click = imp.item.reshape(n, k), imp.click.reshape(n, k).astype(float)
    history, users = imp.history[::k], imp.user[::k]
    p = np.concatenate([pctr_fn(history[s:s + 512], items[s:s + 512], users[s:s + 512]) for s in range(0, n, 512)])
    exam = np.asarray(slot_ctr)[imp.slot.reshape(n, k)]
    return {"within_request_auc": pooled_pair_auc(p, click), "log_loss": position_log_loss(p, exam, click),
            "pctr_mean_over_click_rate": float((exam * p).mean() / max(click.mean(), 1e-12)), "requests": n}
