"""List-wise policy gradient for the generator's candidate lists: Plackett-Luce over the policy's scores.

A candidate list of ``n`` ads is an ordered draw without replacement from ``softmax(scores)`` (Plackett-Luce).
:func:`listwise_loss` is the update's objective: group-normalised advantages (each request's ``G`` lists are
compared with one another, the group mean as the baseline, as in GRPO) times the lists' log-probability, plus
a KL penalty of the first-pick distribution to a frozen reference policy. The environment that draws the
rewards (the simulated market, :mod:`genads.market.rl`) lives outside the model side; this module only knows
scores, lists and rewards.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def plackett_luce_sample(scores: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """(B, n) lists drawn without replacement from softmax(scores) (Gumbel top-n; -inf scores never drawn)."""
    u = torch.rand(scores.shape, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    return torch.topk(scores.double() - torch.log(-torch.log(u)), n, dim=1).indices


def plackett_luce_logprob(scores: Tensor, lists: Tensor) -> Tensor:
    """(B,) log-probability of ordered ``lists`` (B, n) under Plackett-Luce over ``scores`` (B, N)."""
    out = scores.new_zeros(len(scores))
    masked = scores
    for j in range(lists.shape[1]):
        pick = lists[:, j:j + 1]
        out = out + masked.gather(1, pick)[:, 0] - torch.logsumexp(masked, dim=1)
        masked = masked.scatter(1, pick, float("-inf"))
    return out


def listwise_loss(scores: Tensor, lists: Tensor, reward: np.ndarray, group: int, ref_logp: Tensor,
                  kl_weight: float) -> tuple[Tensor, Tensor]:
    """(loss, KL) of one update: ``scores`` (R, N) of R requests, ``lists`` (R * group, n) drawn for them (each
    request's rows repeated ``group`` times, in order), their ``reward`` (R * group,), and ``ref_logp`` (R, N) the
    reference policy's first-pick log-probabilities. Advantages are the rewards standardised within each request's
    group; the KL is the mean over requests of KL(policy's first pick || reference's)."""
    r = torch.from_numpy(reward).view(-1, group)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1)
    logp = plackett_luce_logprob(scores.repeat_interleave(group, dim=0), lists)
    p = torch.log_softmax(scores, dim=1)
    kl = (p.exp() * (p - ref_logp)).nan_to_num(0.0).sum(1).mean()
    return -(adv.to(logp.dtype) * logp).mean() + kl_weight * kl, kl
