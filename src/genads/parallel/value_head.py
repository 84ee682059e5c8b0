"""Value-aware generation: a calibrated pCTR head on the parallel generator's own state.

(Model side: the market studies import it through :mod:`genads.market.value`; :mod:`genads.parallel.joint_value`
trains it together with the generator's trunk.)

The generator (:mod:`genads.parallel`) knows what a user will click next but not what a click is
worth. GR4AD and GPR put value inside generation; here the value head turns the generator's
history state ``h`` and an ad's representation (its code embeddings and ID embedding, the
generator's own) into a position-free pCTR, so the generation score can be the expected value of
showing the ad, ``log pCTR + alpha * log bid`` (eCPM), optionally mixed with the generator's
relevance ``log P(ad | history)``.

The head is bilinear with a per-ad bias and a learned weight on the generator's log-probability:

    logit(h, ad) = <U h, V x_ad> + b_ad + a * log P(ad | h) + c

so all live ads are scored with one matrix product (exact eCPM over the whole live catalogue, no
pre-selection). It is fitted on the impression log with the position-based click model
``P(click) = slot_ctr[slot] * sigmoid(logit)`` (the same likelihood as the cascade's DIN ranker), on
the first ``1 - holdout`` of the log's requests; the rest measures log-loss and within-request AUC,
and early stopping keeps the best epoch. ``factors=False`` keeps only ``a * log P + c`` (Platt
scaling of the generator's score): the "no value head" ablation.

The optimiser's curse: choosing the top few of a thousand ads by a noisy pCTR x bid picks the ads
whose per-ad bias ``b_ad`` (fitted on ~70 impressions each) is most over-estimated. After fitting, the head
keeps each ad's Fisher information about its bias on the training rows (``bias_info``); :func:`eb_shrink`
turns it into an empirical-Bayes posterior (a normal prior whose spread is estimated from the biases
themselves, method of moments), and :func:`shrunk_head` applies it: biases pulled toward their mean by
``tau^2 / (tau^2 + se^2)``, the posterior sd kept in ``bias_sd`` for selection on a lower confidence bound
(``ParallelE2EConfig.lcb_z``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from genads.eval.ctr_metrics import mean_request_auc
from genads.slate import checkpoint as ckpt
from genads.training import EarlyStopping


@dataclass(frozen=True)
class ValueConfig:
    d_value: int = 16
    """Width of the bilinear user/ad factors."""
    factors: bool = True
    """False: Platt scaling of the generator's log-probability only (the ablation without a value head)."""
    epochs: int = 20
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    holdout: float = 0.2
    """Share of the log's requests (the latest) held out for early stopping and the reported metrics."""
    patience: int = 3
    attention: bool = False
    """Add DIN's target attention: the ad attends over the history's items (a user with several interests is
    scored by the one the ad matches, which a mean-pooled state blurs). Off by default: on the tuning seed it
    lowered held-out log-loss (.08591 -> .08564) and raised the candidates' true eCPM at truthful bids (.926 ->
    .934) but lowered the episode's RPM with GSP (321.9 -> 309.8)."""
    calibrate: bool = False
    """Platt-scale the best epoch's logits on the held-out requests (see :func:`platt`). Off by default: on the
    tuning seed the fitted slope was .95 (the head is calibrated on the log's distribution already) and it
    moved nothing measurable."""

    def __post_init__(self) -> None:
        for name in ("d_value", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr={self.lr} > 0 and weight_decay={self.weight_decay} >= 0")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout={self.holdout} must be in (0, 1)")


class ValueHead(nn.Module):
    """Position-free pCTR logits from a history state and ads (see the module docstring).

    Args:
        d_state: width of the generator's history state.
        item_features: (n_items + 1, f) fixed representation of every item index (row 0: padding).
    """

    def __init__(self, d_state: int, item_features: Tensor, cfg: ValueConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("features", item_features.detach().float().clone())
        n, f = item_features.shape
        self.user = nn.Linear(d_state, cfg.d_value)
        self.item = nn.Linear(f, cfg.d_value, bias=False)
        self.bias = nn.Embedding(n, 1)
        nn.init.zeros_(self.bias.weight)
        self.rel = nn.Parameter(torch.tensor(0.1))
        self.const = nn.Parameter(torch.tensor(-2.0))
        if cfg.attention:  # DIN-style target attention of the ad over the history's items
            self.att_q = nn.Linear(f, cfg.d_value, bias=False)
            self.att_k = nn.Linear(f, cfg.d_value, bias=False)
            self.att_v = nn.Linear(f, cfg.d_value, bias=False)
            self.att_o = nn.Linear(f, cfg.d_value, bias=False)
        self.register_buffer("bias_info", torch.zeros(n))
        """Fisher information of each item's bias on the training rows (set by :func:`fit_value_head`)."""
        self.register_buffer("bias_sd", torch.zeros(n))
        """Uncertainty of each item's bias: its sampling sd after :func:`fit_value_head` (the prior sd for an item
        never shown), its posterior sd after :func:`shrunk_head` (0: none known)."""
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        """(slope, shift) of the post-hoc Platt step on held-out requests: logit -> slope * logit + shift."""

    def _attend(self, ad_feats: Tensor, history: Tensor) -> Tensor:
        """Target attention: ``ad_feats`` (B, N, f) or (N, f), ``history`` (B, L) item indices -> (B, N) term."""
        mem = self.features[history]  # (B, L, f)
        q = self.att_q(ad_feats)
        k, v = self.att_k(mem), self.att_v(mem)  # (B, L, d)
        q = q.unsqueeze(0).expand(len(history), -1, -1) if q.dim() == 2 else q
        w = torch.einsum("bnd,bld->bnl", q, k) / self.cfg.d_value**0.5
        w = torch.softmax(w.masked_fill((history <= 0)[:, None], -1e9), dim=-1) * (history > 0)[:, None]
        pooled = torch.einsum("bnl,bld->bnd", w, v)
        o = self.att_o(ad_feats)
        return (pooled * (o.unsqueeze(0) if o.dim() == 2 else o)).sum(-1)

    def logits(self, h: Tensor, logp: Tensor, items: Tensor | None = None, history: Tensor | None = None) -> Tensor:
        """``h`` (B, D), ``logp`` (B, N) generator log-probabilities of ``items`` (N,) (default: every item
        index, in order), ``history`` (B, L) item indices (read by the target attention) -> (B, N) calibrated logits."""
        out = self.rel * logp + self.const
        if self.cfg.factors:
            idx = torch.arange(len(self.features)) if items is None else items
            feats = self.features[idx]
            out = out + self.user(h) @ self.item(feats).T + self.bias(idx)[:, 0][None]
            if self.cfg.attention:
                if history is None:
                    raise ValueError("a value head with attention needs the history's item indices")
                out = out + torch.cat([self._attend(feats, history[s:s + 64]) for s in range(0, len(history), 64)])
        return self.calibration[0] * out + self.calibration[1]

    def pair_logits(self, h: Tensor, logp: Tensor, items: Tensor, history: Tensor | None = None) -> Tensor:
        """One (history, ad) pair per row: ``h`` (M, D), ``logp`` (M,), ``items`` (M,), ``history`` (M, L) -> (M,)."""
        out = self.rel * logp + self.const
        if self.cfg.factors:
            feats = self.features[items]
            out = out + (self.user(h) * self.item(feats)).sum(-1) + self.bias(items)[:, 0]
            if self.cfg.attention:
                if history is None:
                    raise ValueError("a value head with attention needs the history's item indices")
                out = out + self._attend(feats[:, None], history)[:, 0]
        return self.calibration[0] * out + self.calibration[1]


def platt(logit: Tensor, exam: Tensor, click: Tensor) -> tuple[float, float]:
    """(slope, shift) maximising the position-based likelihood of ``click`` under exam * sigmoid(slope * logit +
    shift): Platt scaling, which also undoes a shrunken logit spread (weight decay pulls scores together, and then
    bids dominate the eCPM ranking)."""
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    x, e, y = logit.double(), exam.double(), click.double()
    opt = torch.optim.LBFGS([ab], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = position_logloss(e * torch.sigmoid(ab[0] * x + ab[1]), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(ab[0].detach()), float(ab[1].detach())


def position_logloss(p_click: Tensor, click: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy(p_click.clamp(1e-6, 1 - 1e-6), click)


def fit_value_head(head: ValueHead, h: Tensor, logp: Tensor, items: Tensor, slot: np.ndarray, click: np.ndarray,
                   request: np.ndarray, slot_ctr: np.ndarray, cfg: ValueConfig, seed: int,
                   history: Tensor | None = None) -> dict:
    """Fit on logged impressions (one row each): the history state ``h`` (M, D), the generator's ``logp`` (M,) of the
    shown ``items`` (M,), their ``slot``, ``click`` and ``request`` id (rows of one request share it; requests are
    in time order); ``history`` (M, L) item indices for the target attention. Returns the training curve and the held-out log-loss / within-request AUC of the best epoch.
    """
    n_req = int(request.max()) + 1
    cut = round(n_req * (1.0 - cfg.holdout))
    train_rows = np.flatnonzero(request < cut)
    held = np.flatnonzero(request >= cut)
    if not len(train_rows) or not len(held):
        raise ValueError(f"value head: {n_req} requests are too few for holdout={cfg.holdout}")
    exam = torch.as_tensor(np.asarray(slot_ctr, dtype=np.float32)[slot])
    y = torch.as_tensor(click, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    t_rows = torch.from_numpy(train_rows)

    def hist(rows) -> Tensor | None:
        return None if history is None else history[rows]

    def held_out() -> tuple[float, np.ndarray]:
        with torch.no_grad():
            p = torch.sigmoid(head.pair_logits(h[held], logp[held], items[held], hist(held)))
            return float(position_logloss(exam[held] * p, y[held])), p.numpy()

    # held-out log-loss, lower is better, as EarlyStopping's higher-is-better figure
    record, stopper, curve = ckpt.Progress(best=-float("inf")), EarlyStopping(cfg.patience, min_delta=1e-6), []
    for epoch in range(cfg.epochs):
        head.train()
        total = 0.0
        for idx in t_rows[torch.randperm(len(t_rows), generator=gen)].split(cfg.batch_size):
            p = exam[idx] * torch.sigmoid(head.pair_logits(h[idx], logp[idx], items[idx], hist(idx)))
            loss = position_logloss(p, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        head.eval()
        valid, _ = held_out()
        curve.append({"epoch": epoch + 1, "train_logloss": total / len(train_rows), "valid_logloss": valid})
        stopper.update(record, -valid, head)
        if record.stale >= cfg.patience:
            break
    stopper.restore(head)
    head.eval()
    if cfg.calibrate:
        with torch.no_grad():
            raw = head.pair_logits(h[held], logp[held], items[held], hist(held))
        head.calibration.copy_(torch.tensor(platt(raw, exam[held], y[held]), dtype=torch.float32))
    with torch.no_grad():
        z = torch.cat([head.pair_logits(h[r], logp[r], items[r], hist(r)) for r in t_rows.split(8192)])
    bias_uncertainty(head, z, items[t_rows], exam[t_rows])
    valid, p = held_out()
    base = float(y[torch.from_numpy(train_rows)].mean())
    prior = float(position_logloss(torch.full((len(held),), base), y[held]))
    return {"curve": curve, "valid_logloss": valid, "calibration": head.calibration.tolist(), "valid_logloss_constant": prior,
            "valid_auc_within_request": mean_request_auc(p, click[held], request[held]),
            "valid_pctr_mean": float(p.mean()), "epochs": len(curve)}


def bias_uncertainty(head: ValueHead, logit: Tensor, items: Tensor, exam: Tensor) -> None:
    """Set ``head.bias_info`` (each item's Fisher information about its bias, d logit / d b_ad = 1) and
    ``head.bias_sd`` (its sampling sd; the prior sd for an item never shown) from the fitted ``logit`` (M,) of the
    training rows showing ``items`` (M,) at examination probability ``exam`` (M,)."""
    with torch.no_grad():
        q = torch.sigmoid(logit).double()
        e = exam.double()
        pc = e * q
        info = (e * q * (1 - q)) ** 2 / (pc * (1 - pc)).clamp(min=1e-12)
        head.bias_info.copy_(torch.zeros(len(head.bias_info), dtype=torch.float64).index_add_(0, items, info).float())
        _, _, tau2 = eb_shrink(head.bias.weight[1:, 0].numpy(), head.bias_info[1:].numpy())
        head.bias_sd.copy_(torch.where(head.bias_info > 0, head.bias_info.clamp(min=1e-12).rsqrt(),
                                       torch.tensor(max(tau2, 1e-4) ** 0.5)))


def eb_shrink(bias: np.ndarray, info: np.ndarray, floor: float = 1e-4) -> tuple[np.ndarray, np.ndarray, float]:
    """Empirical-Bayes shrinkage of per-item estimates ``bias`` (n,) with Fisher information ``info`` (n,).

    The items with information (``info > 0``) give the prior: mean ``m`` (information-weighted) and variance
    ``tau^2 = max(var(bias) - mean(1 / info), floor)`` (what is left of the spread once the sampling noise is
    taken out). Returns (posterior means ``m + tau^2 / (tau^2 + se^2) * (bias - m)``, posterior sds, ``tau^2``);
    an item without information gets the prior (mean ``m``, sd ``tau``).
    """
    bias, info = np.asarray(bias, dtype=float), np.asarray(info, dtype=float)
    seen = info > 0
    if not seen.any():
        return bias.copy(), np.zeros_like(bias), 0.0
    m = float(np.average(bias[seen], weights=info[seen]))
    se2 = np.where(seen, 1.0 / np.maximum(info, 1e-12), np.inf)
    tau2 = max(float(np.var(bias[seen]) - np.mean(se2[seen])), floor)
    factor = np.where(seen, tau2 / (tau2 + se2), 0.0)
    post_sd = np.sqrt(np.where(seen, tau2 * se2 / (tau2 + np.where(seen, se2, 0.0)), tau2))
    return m + factor * (bias - m), post_sd, tau2


def shrunk_head(head: ValueHead) -> ValueHead:
    """A copy of ``head`` whose per-item biases are their empirical-Bayes posterior means (:func:`eb_shrink`)."""
    import copy

    out = copy.deepcopy(head)
    with torch.no_grad():
        b = out.bias.weight[1:, 0].numpy()
        mean, sd, _ = eb_shrink(b, out.bias_info[1:].numpy())
        out.bias.weight[1:, 0] = torch.as_tensor(mean, dtype=out.bias.weight.dtype)
        out.bias_sd[1:] = torch.as_tensor(sd, dtype=out.bias_sd.dtype)
    out.eval()
    return out
