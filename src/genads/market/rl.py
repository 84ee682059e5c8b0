"""List-wise RL fine-tuning of the end-to-end generator on the simulator's realised feedback.

The supervised generator and value head (:mod:`genads.market.e2e_parallel`) learned from an
exploration log. Here the pipeline acts: for a request, the policy draws the auction's whole
candidate list without replacement from the Plackett-Luce distribution of its generation scores
(``score / temperature`` over the live ads), the auction ranks and prices the list, and the
simulator shows it and draws clicks from its ground truth. The reward of a list is

    reward = revenue_weight * revenue + (1 - revenue_weight) * clicks * mean_bid

(platform revenue and user clicks, both in currency units). Each request is answered ``group``
times; the advantage of a list is its reward minus the group's mean, divided by the group's
standard deviation (GRPO's group-relative baseline, no critic). The loss is

    - mean(advantage * log pi(list)) + kl * KL(pi(first | h) || pi_ref(first | h))

with the KL to the supervised policy computed exactly over the first pick. Trained: a copy of the
value head that shapes generation only (the pipeline's ``policy_head``; the auction keeps ranking
and pricing with the calibrated supervised pCTR); the generator stays frozen, so a user's state and
relevance are computed once. Training episodes use their own seed and users; evaluation uses other
seeds (the caller's episode traffic). This module is the environment loop; the update itself (Plackett-Luce
sampling and the loss) is model code, :mod:`genads.parallel.policy_gradient`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genads.auction.mechanisms import gsp
from genads.market.e2e_parallel import ParallelEndToEnd
from genads.parallel.policy_gradient import listwise_loss, plackett_luce_sample


@dataclass(frozen=True)
class RLConfig:
    steps: int = 60
    requests: int = 128
    """Requests per step (users drawn uniformly)."""
    group: int = 8
    """Lists drawn per request (the group of the group-relative baseline)."""
    lr: float = 5e-4
    kl: float = 0.05
    """Weight of KL(pi || pi_supervised) over the first pick."""
    temperature: float = 1.0
    """Sampling temperature of the Plackett-Luce policy (serving stays greedy)."""
    revenue_weight: float = 0.5
    """Mix of revenue and user clicks in the reward (1: revenue only; 0: clicks only)."""
    budget_aware: bool = False
    """Budget-aware reward: each advertiser's payments count ``1 / (1 + lambda)``, lambda its pacing
    shadow price, updated after every step on the step's spend against its budget (``world.budget_rate`` per 1000
    lists): revenue from an advertiser that is spending faster than its budget allows is worth less."""
    pacing_eta: float = 0.5
    """Step of the shadow prices' dual update (``budget_aware``)."""

    def __post_init__(self) -> None:
        for name in ("steps", "requests", "group"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.group < 2:
            raise ValueError(f"group={self.group} must be >= 2 (the baseline is the group's mean)")
        if self.pacing_eta <= 0:
            raise ValueError(f"pacing_eta={self.pacing_eta} must be > 0")
        if self.lr <= 0 or self.kl < 0 or self.temperature <= 0:
            raise ValueError(f"need lr={self.lr} > 0, kl={self.kl} >= 0, temperature={self.temperature} > 0")
        if not 0.0 <= self.revenue_weight <= 1.0:
            raise ValueError(f"revenue_weight={self.revenue_weight} must be in [0, 1]")


def list_rewards(world, users: np.ndarray, ads: np.ndarray, pctr: np.ndarray, bids: np.ndarray, auction,
                 rng: np.random.Generator, shadow: np.ndarray | None = None,
                 spend: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(revenue (R,), clicks (R,)) realised when candidate lists ``ads`` (R, n) go through ``auction`` and the
    winners are shown in the ad slots; clicks are drawn from the world's ground truth.

    ``shadow`` (n_advertisers,): pacing shadow prices; each payment then counts ``1 / (1 + shadow[owner])`` in the
    revenue (the budget-aware reward). ``spend`` (n_advertisers,), when given, accumulates what each advertiser paid.
    """
    cand_bids = bids[ads]
    alloc = auction(cand_bids, pctr)
    win = np.where(alloc.winners >= 0, np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1), -1)
    p_click = world.slot_ctr[None] * world.ad_ctr(users, win)
    clicked = (rng.random(p_click.shape) < p_click) & (win >= 0)
    paid = np.where(clicked, alloc.prices, 0.0)
    owner = world.owner[np.maximum(win, 0)]
    if spend is not None:
        np.add.at(spend, owner[clicked], paid[clicked])
    if shadow is not None:
        paid = paid / (1.0 + shadow[owner])
    return paid.sum(1), clicked.sum(1).astype(float)


def finetune(pipe: ParallelEndToEnd, world, history: np.ndarray, bids: np.ndarray, cfg: RLConfig, seed: int,
             progress=None) -> list[dict]:
    """Fine-tune ``pipe`` in place on fresh simulated traffic; ``history`` (n_users, L) left-padded clicks,
    ``bids`` (n_ads,) the bids the lists are auctioned at. Returns one row per step (reward, revenue, clicks, KL).

    The auction inside the loop is GSP on the policy's pCTR (the payment network is trained afterwards, on the
    fine-tuned pipeline's own profiles).
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = pipe.cfg.candidates
    k = len(pipe.slot_ctr)
    mean_bid = float(np.mean(bids))
    parts = [pipe.user_state(history[s:s + 1024]) for s in range(0, len(history), 1024)]
    states, relevance, hist = (torch.cat([p[i] for p in parts]) for i in range(3))
    pipe.policy_head = copy.deepcopy(pipe.head)
    params = list(pipe.policy_head.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    live = torch.from_numpy(np.asarray(bids) > 0)

    def auction(b: np.ndarray, q: np.ndarray):
        return gsp(b, q, k, slot_ctr=pipe.slot_ctr)

    def scores(rows: Tensor) -> tuple[Tensor, Tensor]:
        s, logit = pipe.policy_scores(states[rows], relevance[rows], bids, hist[rows])
        return (s / cfg.temperature).masked_fill(~live[None], float("-inf")), logit

    with torch.no_grad():  # the supervised policy's first-pick distribution of every user (the KL's reference)
        ref = torch.cat([torch.log_softmax(scores(torch.arange(s, min(s + 512, len(states))))[0], dim=1)
                         for s in range(0, len(states), 512)])
    log = []
    lam = np.zeros(world.config.n_advertisers)  # pacing shadow prices of the budget-aware reward
    pipe.policy_head.train()
    for step in range(cfg.steps):
        users = rng.integers(len(history), size=cfg.requests)
        s, logit = scores(torch.from_numpy(users))
        lists = plackett_luce_sample(s.detach().repeat_interleave(cfg.group, dim=0), n, gen)  # (R*G, n)
        pctr = torch.sigmoid(logit.detach().double()).repeat_interleave(cfg.group, dim=0).gather(1, lists).numpy()
        u_rep = np.repeat(users, cfg.group)
        spend = np.zeros(world.config.n_advertisers)
        revenue, clicks = list_rewards(world, u_rep, lists.numpy(), np.maximum(pctr, 1e-9), bids, auction, rng,
                                       shadow=lam if cfg.budget_aware else None, spend=spend)
        if cfg.budget_aware:  # the dual step: spend against the budget of this step's lists
            target = world.budget_rate * len(u_rep) / 1000.0
            lam = np.maximum(0.0, lam + cfg.pacing_eta * (spend / np.maximum(target, 1e-12) - 1.0))
        reward = cfg.revenue_weight * revenue + (1.0 - cfg.revenue_weight) * clicks * mean_bid
        loss, kl = listwise_loss(s, lists, reward, cfg.group, ref[torch.from_numpy(users)], cfg.kl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        row = {"step": step + 1, "reward": float(reward.mean()), "revenue": float(revenue.mean()),
               "clicks": float(clicks.mean()), "kl": float(kl.detach())}
        if cfg.budget_aware:
            row["shadow_max"] = float(lam.max())
        log.append(row)
        if progress is not None:
            progress(row)
    pipe.policy_head.eval()
    pipe._cache.clear()
    return log


def expected_list_value(pipe: ParallelEndToEnd, world, history: np.ndarray, users: np.ndarray, bids: np.ndarray,
                        revenue_weight: float) -> dict:
    """The greedy pipeline's expected reward on ``users`` under the ground truth (GSP on its own pCTR): the
    figure RL should raise, with its two parts."""
    ads, pctr = pipe.propose(history[users], np.asarray(bids) > 0, bids)
    k = len(pipe.slot_ctr)
    alloc = gsp(bids[np.maximum(ads, 0)] * (ads >= 0), pctr, k, slot_ctr=pipe.slot_ctr)
    win = np.where(alloc.winners >= 0, np.take_along_axis(ads, np.maximum(alloc.winners, 0), 1), -1)
    p_click = world.slot_ctr[None] * world.ad_ctr(users, win)
    revenue = float((p_click * alloc.prices).sum(1).mean())
    clicks = float(p_click.sum(1).mean())
    return {"reward": revenue_weight * revenue + (1 - revenue_weight) * clicks * float(np.mean(bids)),
            "revenue": revenue, "clicks": clicks}
