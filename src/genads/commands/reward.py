"""``genads reward train`` / ``genads reward slate``: the permutation-aware slate reward model.

``train`` simulates impressions for a ``genads train`` run's validation users (position-based
clicks; see genads.reward.simulate: the data sets have no impression logs) and fits the reward
model; ``slate`` decodes one user's bid-aware candidate pool and prints the re-ranked slate.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genads.data.dataset import load_dataset
from genads.data.split import user_sequences
from genads.families import family_of


def _market(cfg: dict, split):
    from genads.reward.pipeline import item_bids, item_popularity

    dataset = load_dataset(cfg["dataset"])
    return dataset, item_bids(dataset.catalogue, split.item_ids), item_popularity(split.train, split.n_items)


def cmd_train(args: argparse.Namespace) -> int:
    from genads.commands.slate import load_recommender
    from genads.reward import (
        ClickModel,
        RewardConfig,
        RewardTrainConfig,
        SlateRewardModel,
        fit,
        save_reward_model,
    )
    from genads.reward.pipeline import SimulationConfig, training_log
    from genads.reward.train import with_bid_scale, with_score_scale

    torch.set_num_threads(args.threads)
    cfg, split, rec = load_recommender(args.run)
    _, bids, popularity = _market(cfg, split)
    sim = SimulationConfig(requests=args.requests, repeats=args.repeats, slate_size=args.slate_size,
                           pool_size=args.pool, beam_share=args.beam_share, include_prob=args.include_prob,
                           click=ClickModel(position_decay=args.position_decay))
    sids = family_of(rec).codes(rec)
    log, history = training_log(split.valid.history[:, -args.history:], split.valid.target, popularity, sim,
                                seed=args.seed, generator=family_of(rec).generator(rec))
    config = with_bid_scale(RewardConfig(levels=sids.shape[1], codebook_size=int(sids.max()) + 1,
                                         max_slate=args.slate_size, d_model=args.d_model, n_layer=args.layers,
                                         n_head=2, use_history=not args.no_history, use_score=not args.no_score,
                                         dropout=0.1), bids[1:])
    config = with_score_scale(config, log.scores if config.use_score else None)
    torch.manual_seed(args.seed)
    model = SlateRewardModel(config)
    report = fit(model, log, sids, bids, RewardTrainConfig(epochs=args.epochs), seed=args.seed,
                 history=history if config.use_history else None)
    extra = {"run": str(args.run.resolve()), "seed": args.seed, "history_items": args.history,
             "simulation": {**asdict(sim), "note": "simulated impressions (no impression log in the data)"},
             "fit": report}
    save_reward_model(model, args.out, extra)
    print(f"{args.out}: {report['impressions']} simulated impressions; held-out log-loss "
          f"{report['valid_logloss']:.4f} (position-only {report['position_only_logloss']:.4f}), "
          f"AUC {report['valid_auc']:.3f} (position-only {report['position_only_auc']:.3f})")
    return 0


def cmd_slate(args: argparse.Namespace) -> int:
    from genads.commands.slate import load_recommender
    from genads.decode.bidding import BidConfig
    from genads.reward import RerankConfig, load_reward_model, rerank

    cfg, split, rec = load_recommender(args.run)
    dataset, bids, _ = _market(cfg, split)
    reward, record = load_reward_model(args.reward)
    _, users, seqs = user_sequences(dataset, split.config)
    pos = np.searchsorted(users, args.user)
    if pos >= len(users) or users[pos] != args.user:
        raise ValueError(f"--user {args.user}: no events for this user in {cfg['dataset']}")
    history = seqs[pos][-rec.config.max_items:][None]
    bid_cfg = BidConfig(alpha=args.alpha, beta=args.beta, aggregate=args.aggregate)
    sids = family_of(rec).codes(rec)
    pool, scores = family_of(rec).generator(rec).pool(history, args.pool, bids=None if args.alpha == 0 else bids,
                                                      bid_config=bid_cfg)
    if reward.config.max_slate < args.k:
        raise ValueError(f"-k {args.k} exceeds the reward model's max_slate={reward.config.max_slate}")
    r_cfg = RerankConfig(slate_size=args.k, revenue_weight=args.revenue_weight,
                         bid_ref=float(np.median(bids[bids > 0])))
    h = history[:, -record.get("history_items", 20):] if reward.config.use_history else None
    out = rerank(reward, pool, sids, bids, r_cfg, history=h, scores=scores)
    titles = dataset.titles()
    print(f"user {args.user}: {len(seqs[pos])} past ads; pool of {int((pool > 0).sum())} from bid-aware beam "
          f"(alpha={args.alpha}, beta={args.beta}, {args.aggregate}); modelled value {out.value[0]:.4f} "
          f"(pool order {out.pool_value[0]:.4f})")
    for rank, (item, pctr) in enumerate(zip(out.ads[0], out.pctr[0], strict=True), 1):
        if item <= 0:
            break
        ad = int(split.item_ids[item])
        was = int(np.nonzero(pool[0] == item)[0][0]) + 1
        print(f"{rank:3d}. ad {ad}  bid {bids[item]:7.3f}  pCTR {pctr:.4f}  logp {scores[0, was - 1]:7.2f}  "
              f"(pool #{was:2d})  "
              f"{titles.get(ad, '') or '(no title)'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reward", help="permutation-aware slate reward model: train on simulated clicks, re-rank slates")
    rsub = p.add_subparsers(dest="reward_command", required=True)

    t = rsub.add_parser("train", help="simulate position-biased impressions for a run's users and fit the reward model")
    t.add_argument("run", type=Path, help="run folder from `genads train`")
    t.add_argument("--out", type=Path, required=True, help="folder for reward_config.json + reward.safetensors")
    t.add_argument("--requests", type=int, default=4000, help="validation cases to simulate impressions for")
    t.add_argument("--repeats", type=int, default=2, help="impressions per request")
    t.add_argument("--slate-size", type=int, default=10)
    t.add_argument("--pool", type=int, default=30, help="candidates each shown slate is drawn from")
    t.add_argument("--beam-share", type=float, default=0.5, help="share of pools from the slate model's beam")
    t.add_argument("--include-prob", type=float, default=0.5, help="P(the user's next ad is in a shown slate)")
    t.add_argument("--position-decay", type=float, default=1.0, help="examination = 1/(1+slot)^decay; 0 = none")
    t.add_argument("--history", type=int, default=20, help="history items the reward model reads")
    t.add_argument("--no-history", action="store_true", help="no user context token")
    t.add_argument("--no-score", action="store_true", help="do not read the slate model's log P(SID | history)")
    t.add_argument("--d-model", type=int, default=32)
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)

    s = rsub.add_parser("slate", help="print a user's bid-aware, reward re-ranked slate (titles, bids, pCTR)")
    s.add_argument("run", type=Path, help="run folder from `genads train`")
    s.add_argument("--reward", type=Path, required=True, help="folder from `genads reward train`")
    s.add_argument("--user", type=int, required=True, help="user_id")
    s.add_argument("-k", type=int, default=10, help="slate size")
    s.add_argument("--pool", type=int, default=30, help="beam width = candidates re-ranked")
    s.add_argument("--alpha", type=float, default=1.0, help="bid exponent in log(bid^alpha + beta); 0 = plain beam")
    s.add_argument("--beta", type=float, default=0.0)
    s.add_argument("--aggregate", choices=["max", "mean"], default="max", help="prefix bid: max or mean of its ads")
    s.add_argument("--revenue-weight", type=float, default=1.0, help="1 = pCTR x bid, 0 = pCTR")
    s.set_defaults(func=cmd_slate)

