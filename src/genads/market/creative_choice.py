"""Who picks the creative in the second world's verdict.

In a world with creatives (:class:`genads.market.world2.PageChoiceWorld`) every pipeline of the verdict is wrapped
by :func:`with_creatives`, so each side chooses creatives the way its architecture does:

* **The cascade** (:class:`CascadeCreatives`) picks the creative *after* the auction with its own model, as
  production creative-selection systems do: Beta-Bernoulli Thompson sampling per (ad, creative)
  (:class:`~genads.market.creatives.CreativeBandit`), its prior the clicks and impressions of every (ad, creative)
  in the log, updated online with its own feedback (the clicks on what it showed). The auction ranks creative-blind
  (the DIN's pCTR is the ad's, averaged over the rotation the log shows).
* **The end-to-end side** (:class:`JointCreatives`) scores (ad, creative) pairs together, as EGA generates (ad,
  creative) tokens: a creative-specific head (:class:`CreativeHead`, fitted on the same log) predicts each
  creative's logit lift for the request's user from the user's click history and the creative's text embedding;
  every candidate enters the auction with its best creative for that user and the pCTR of that pair, so the
  auction's ranking and prices already reflect the creative. The head is fitted once on the log and not updated
  online (the verdict's end-to-end side is before RL: it learns from the logs only), which favours the cascade.
* **The oracles** (:class:`OracleCreatives`) show each candidate's truly best creative for the user and rank on
  the true CTR of that pair.

The log's creatives come from a uniform rotation (:func:`genads.market.logs.exploration_log`), so both sides'
creative estimates are unconfounded by who saw which creative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genads.market.creatives import CreativeBandit
from genads.market.logs import Impressions, split_impressions


def history_vectors(features: np.ndarray, history: np.ndarray) -> np.ndarray:
    """(B, f) mean content vector of the items (item = ad + 1, 0 = padding) of left-padded ``history`` (B, L)."""
    hist = np.asarray(history, dtype=np.int64)
    real = hist > 0
    vecs = np.asarray(features, dtype=np.float32)[np.maximum(hist - 1, 0)] * real[..., None]
    return (vecs.sum(1) / np.maximum(real.sum(1, keepdims=True), 1)).astype(np.float32)


def creative_basis(embedding: np.ndarray, dim: int) -> np.ndarray:
    """(n_ads, C, dim) the creatives' text embeddings centred within each ad and projected on their ``dim`` leading
    principal directions (the differences between an ad's creatives are low-rank: a few selling angles)."""
    centred = embedding - embedding.mean(1, keepdims=True)
    flat = centred.reshape(-1, centred.shape[-1]).astype(np.float64)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    k = min(dim, int((s > 1e-9 * max(s[0], 1e-30)).sum()) or 1)
    out = np.zeros((*centred.shape[:2], dim), dtype=np.float32)
    out[..., :k] = (flat @ vt[:k].T).reshape(*centred.shape[:2], k) / max(s[0] / np.sqrt(len(flat)), 1e-12)
    return out


@dataclass
class CreativeHead:
    """The end-to-end side's creative-specific score: the logit lift of creative ``c`` of ad ``a`` for a user with
    history vector ``h`` is ``beta[a, c] + h @ W @ basis[a, c]`` (both centred within the ad, so a lift is relative
    to the ad's average creative, the one the log's rotation shows on average)."""

    beta: np.ndarray
    """(n_ads, C) the creative's lift for everyone, centred within each ad."""
    W: np.ndarray
    """(f, dim) the user-creative interaction."""
    basis: np.ndarray
    """(n_ads, C, dim) the creatives' centred, projected text embeddings."""
    features: np.ndarray
    """(n_ads, f) the ads' content vectors (the history vector is their mean over the history)."""

    def lift(self, history: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """(B, n, C) predicted logit lift of every creative of ``ads`` (B, n; -1 = none: 0) for ``history`` (B, L)."""
        safe = np.maximum(ads, 0)
        hw = history_vectors(self.features, history) @ self.W  # (B, dim)
        out = self.beta[safe] + np.einsum("bd,bncd->bnc", hw, self.basis[safe])
        return np.where((ads >= 0)[..., None], out, 0.0)


def fit_creative_head(features: np.ndarray, embedding: np.ndarray, imp: Impressions, k: int, holdout: float,
                      seed: int, l2: tuple[float, ...] = (1e-4, 1e-3, 1e-2), dim: int = 16, steps: int = 300,
                      ) -> tuple[CreativeHead, dict]:
    """Fit :class:`CreativeHead` by logistic regression on the log's impressions (``k`` rows per request).

    The click logit is ``a_ad + s_slot + g * <h, x_ad> + beta[ad, c] + h @ W @ basis[ad, c]`` (``h`` the history
    vector, ``x`` the ad's content vector): the first three terms absorb the ad's and the slot's own click rate so
    the creative terms explain what differs between an ad's creatives. Fitted on the first ``1 - holdout`` of the
    requests for each L2 weight of ``l2`` (full-batch Adam, ``steps`` steps); the weight of lowest held-out
    log-loss is kept (the cascade's DIN and the value head are early-stopped on the same requests).
    """
    if imp.creative is None:
        raise ValueError("the log has no creatives (a world without creatives): nothing to fit")
    train, held = split_impressions(imp, k, holdout)
    basis = creative_basis(np.asarray(embedding, dtype=np.float32), dim)
    n_ads, C = basis.shape[:2]
    feats = np.asarray(features, dtype=np.float32)

    def tensors(part: Impressions) -> tuple[torch.Tensor, ...]:
        ad = part.item.astype(np.int64) - 1
        h = history_vectors(feats, part.history)
        return (torch.from_numpy(ad), torch.from_numpy(part.creative.astype(np.int64)), torch.from_numpy(h),
                torch.from_numpy((h * feats[ad]).sum(1)), torch.from_numpy(part.slot.astype(np.int64)),
                torch.from_numpy(part.click.astype(np.float32)))

    tr, va = tensors(train), tensors(held)
    B = torch.from_numpy(basis)
    rate = float(tr[5].mean().clamp(1e-4, 1 - 1e-4))

    def logits(p: dict, ad, c, h, sim, slot, _y=None) -> torch.Tensor:
        beta = p["beta"] - p["beta"].mean(1, keepdim=True)
        return (p["a"][ad] + p["s"][slot] + p["g"] * sim + beta[ad, c]
                + ((h @ p["W"]) * B[ad, c]).sum(1))

    best: tuple[float, dict, float] | None = None
    scores = {}
    for lam in l2:
        torch.manual_seed(seed)
        p = {"a": torch.full((n_ads,), float(np.log(rate / (1 - rate)))), "s": torch.zeros(k), "g": torch.zeros(()),
             "beta": torch.zeros(n_ads, C), "W": torch.zeros(feats.shape[1], dim)}
        for v in p.values():
            v.requires_grad_(True)
        opt = torch.optim.Adam(p.values(), lr=0.05)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits(p, *tr), tr[5])
            (loss + lam * ((p["beta"] - p["beta"].mean(1, keepdim=True)).pow(2).sum() + p["W"].pow(2).sum())).backward()
            opt.step()
        with torch.no_grad():
            held_loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits(p, *va), va[5]))
        scores[str(lam)] = held_loss
        if best is None or held_loss < best[0]:
            best = (held_loss, {n: v.detach() for n, v in p.items()}, lam)
    held_loss, p, lam = best
    beta = (p["beta"] - p["beta"].mean(1, keepdim=True)).numpy().astype(np.float64)
    head = CreativeHead(beta=beta, W=p["W"].numpy().astype(np.float64), basis=basis.astype(np.float64),
                        features=feats)
    return head, {"l2": lam, "held_logloss_by_l2": scores, "held_logloss": held_loss}


def log_counts(imp: Impressions, n_ads: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """(clicks, impressions), each (n_ads, C), of every (ad, creative) in the log."""
    if imp.creative is None:
        raise ValueError("the log has no creatives (a world without creatives)")
    shows, clicks = np.zeros((n_ads, C)), np.zeros((n_ads, C))
    np.add.at(shows, (imp.item - 1, imp.creative), 1.0)
    np.add.at(clicks, (imp.item - 1, imp.creative), imp.click.astype(float))
    return clicks, shows


class _Wrapped:
    """Forwards the pipeline protocol to ``pipe``; the engine passes the users (``needs_users``)."""

    needs_users = True

    def __init__(self, pipe) -> None:
        self.pipe, self.name = pipe, getattr(pipe, "name", "pipeline")

    def _propose(self, history, live, bids, users):
        if getattr(self.pipe, "needs_users", False):
            return self.pipe.propose(history, live, bids, users=users)
        return self.pipe.propose(history, live, bids)

    def auction(self, bids, quality):
        return self.pipe.auction(bids, quality)

    def __getattr__(self, name: str):
        pipe = self.__dict__.get("pipe")
        if pipe is None:
            raise AttributeError(name)
        return getattr(pipe, name)


class CascadeCreatives(_Wrapped):
    """The cascade with its creative bandit after the auction (prior: the log's counts; online: its own clicks)."""

    def __init__(self, pipe, clicks: np.ndarray, shows: np.ndarray, seed: int, online: bool = True) -> None:
        super().__init__(pipe)
        self.bandit = CreativeBandit(*clicks.shape, np.random.default_rng(seed))
        self.bandit.clicks, self.bandit.shows = clicks.copy(), shows.copy()
        self.online = online

    def propose(self, history, live, bids, users):
        return self._propose(history, live, bids, users)

    def creatives(self, history, won, users):
        del history, users  # a per-creative bandit: the same choice rule for everyone
        return self.bandit.choose(won)

    def observe(self, shown, creatives, clicked):
        if self.online:
            self.bandit.update(shown, creatives, clicked)


def _pick_winners(ads: np.ndarray, best: np.ndarray, won: np.ndarray) -> np.ndarray:
    """(B, k) the creative stored for each won ad (``ads``, ``best`` (B, n): candidates and their creatives)."""
    match = (ads[:, None, :] == won[:, :, None]) & (won >= 0)[..., None]
    return np.where(won >= 0, np.take_along_axis(best, match.argmax(2), 1), 0)


class JointCreatives(_Wrapped):
    """The end-to-end side choosing (ad, creative) together: each candidate enters the auction with its best
    creative for the user under :class:`CreativeHead` and the pCTR of that pair."""

    def __init__(self, pipe, head: CreativeHead) -> None:
        super().__init__(pipe)
        self.head, self._last = head, None

    def propose(self, history, live, bids, users):
        ads, q = self._propose(history, live, bids, users)
        lift = self.head.lift(history, ads)  # (B, n, C)
        best = lift.argmax(2)
        gain = np.take_along_axis(lift, best[..., None], 2)[..., 0]
        qc = np.clip(q, 1e-9, 1 - 1e-9)
        q2 = 1.0 / (1.0 + np.exp(-(np.log(qc / (1 - qc)) + gain)))
        self._last = (ads, best)
        return ads, np.where(ads >= 0, np.maximum(q2, 1e-9), q)

    def creatives(self, history, won, users):
        ads, best = self._last
        return _pick_winners(ads, best, won)


class OracleCreatives(_Wrapped):
    """An oracle showing each candidate's truly best creative for the user, its quality scaled by the true CTR of
    that pair over the default creative's."""

    def __init__(self, pipe, world) -> None:
        super().__init__(pipe)
        self.world, self._last = world, None

    def propose(self, history, live, bids, users):
        ads, q = self._propose(history, live, bids, users)
        w = self.world
        best = w.creative_lift(users, ads).argmax(2)
        base = np.maximum(w.ad_ctr(users, ads), 1e-12)
        ratio = w.ad_ctr(users, ads, best) / base
        self._last = (ads, best)
        return ads, np.where(ads >= 0, np.maximum(q * ratio, 1e-9), q)

    def creatives(self, history, won, users):
        ads, best = self._last
        return _pick_winners(ads, best, won)


def creative_models(market, holdout: float) -> dict:
    """The seed's creative models from its log, fitted once and kept on ``market``: the bandit's prior counts and
    the end-to-end side's :class:`CreativeHead`."""
    cached = getattr(market, "_creative_models", None)
    if cached is not None:
        return cached
    w, imp = market.drawn, market.logs.impressions
    clicks, shows = log_counts(imp, w.config.n_ads, w.n_creatives)
    head, info = fit_creative_head(w.ad_features, w.creative_embedding, imp, w.config.ad_load, holdout, market.seed)
    market._creative_models = {"clicks": clicks, "shows": shows, "head": head, "info": info}
    return market._creative_models


def with_creatives(pipe, market, holdout: float, online: bool = True):
    """``pipe`` choosing creatives as its architecture does (see the module docstring); ``pipe`` itself when the
    market's world has no creatives. The cascade's bandit starts afresh from the log's counts at every call (every
    episode), seeded by the market's seed."""
    from genads.market.cascade import Cascade
    from genads.market.e2e_parallel import ParallelEndToEnd

    if getattr(market.world, "n_creatives", 1) <= 1:
        return pipe
    if isinstance(pipe, Cascade):
        m = creative_models(market, holdout)
        return CascadeCreatives(pipe, m["clicks"], m["shows"], market.seed + 13, online)
    if isinstance(pipe, ParallelEndToEnd):
        return JointCreatives(pipe, creative_models(market, holdout)["head"])
    if getattr(pipe, "needs_users", False):
        return OracleCreatives(pipe, market.world)
    raise TypeError(f"no creative choice for a {type(pipe).__name__} in a world with creatives")
