"""``genads auction bench|train-payments``."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genads.auction.optimality import SETTINGS, bench_config, mechanism_table, run_setting
from genads.auction.payment_net import (  # noqa: F401 (the library's)
    CONFIG_FILE,
    WEIGHTS_FILE,
    PaymentNet,
    PaymentNetConfig,
    PaymentTrainConfig,
    config_from_json,
    load_payment_net,
    train_payment_net,
)
from genads.auction.regret import AscentConfig, grid_regret, misreport_regret
from genads.io import atomic_write, atomic_write_text


def _print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(cell(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True)))


def cmd_bench(args: argparse.Namespace) -> int:
    keys = [k for k in args.settings.split(",") if k]
    unknown = sorted(set(keys) - set(SETTINGS))
    if unknown:
        raise ValueError(f"--settings: unknown {unknown}; known: {sorted(SETTINGS)}")
    cfgs = [bench_config(k, args.quick, args.iterations) for k in keys]
    mech_rows = mechanism_table(profiles=args.profiles)
    _print_rows("Pure mechanisms: Monte Carlo revenue (U[0,1] values)", mech_rows)
    if args.jobs > 1 and len(keys) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            rows = list(pool.map(run_setting, keys, cfgs))
    else:
        rows = [run_setting(k, c) for k, c in zip(keys, cfgs, strict=True)]
    if rows:
        _print_rows("Learned (RegretNet) against the optimum; regret = mean per bidder, (b) = gradient ascent", rows)
    if args.out:
        record = {"mechanisms": mech_rows, "learned": dict(zip(keys, rows, strict=True)), "config": dict(zip(keys, map(asdict, cfgs), strict=True))}
        atomic_write_text(args.out, json.dumps(record, indent=2, default=float) + "\n")
    return 0


def synthetic_auctions(n: int, size: int, values: str, pctr: tuple[float, float], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (size, n, 1), context = pCTR (size, n, 1)) for ``train-payments``."""
    rng = np.random.default_rng(seed)
    v = rng.random((size, n)) if values == "uniform" else rng.lognormal(0.0, 0.6, (size, n))
    q = rng.uniform(pctr[0], pctr[1], (size, n))
    return torch.tensor(v, dtype=torch.float32)[..., None], torch.tensor(q, dtype=torch.float32)[..., None]


def save_payment_net(net: PaymentNet, out: Path, extra: dict) -> None:
    """``out/model.safetensors`` + ``out/config.json`` (the PaymentNetConfig and ``extra``), atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    atomic_write(out / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    atomic_write_text(out / CONFIG_FILE, json.dumps({"payment_net": asdict(net.config), **extra}, indent=2) + "\n")


def cmd_train_payments(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    slot_ctr = tuple(float(c) for c in args.slots.split(","))
    pctr = (args.pctr_low, args.pctr_high)
    values, context = synthetic_auctions(args.bidders, args.samples, args.values, pctr, args.seed)
    held_v, held_c = synthetic_auctions(args.bidders, 512, args.values, pctr, args.seed + 1)
    torch.manual_seed(args.seed)
    net = PaymentNet(PaymentNetConfig(n_bidders=args.bidders, slot_ctr=slot_ctr, hidden=args.hidden,
                                      bid_scale=float(values.median()), quality_scale=float(np.mean(pctr))))
    train_cfg = PaymentTrainConfig(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                   rho_every=max(1, args.iterations // 6))
    log = train_payment_net(net, values, context, train_cfg, log_every=max(1, args.iterations // 10))
    for it, rev, rgt in zip(log.iteration, log.revenue, log.regret, strict=True):
        print(f"iteration {it}: revenue {rev:.5f}  grid regret {rgt:.6f}")
    audit = AscentConfig(restarts=args.restarts, steps=args.steps, high=2.0 * float(held_v.max()), seed=args.seed)
    metrics = {"grid": grid_regret(net, held_v, held_c).as_dict(),
               "ascent": misreport_regret(net, held_v[:64], held_c[:64], audit).as_dict()}
    print(json.dumps(metrics, indent=2))
    save_payment_net(net, args.out, {"train": asdict(train_cfg), "values": args.values, "pctr": list(pctr),
                                     "samples": args.samples, "held_out": metrics,
                                     "ascent_audit": asdict(audit)})
    print(f"saved {args.out / WEIGHTS_FILE} and {args.out / CONFIG_FILE}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    auction = sub.add_parser("auction", help="auction mechanisms, learned payments and regret")
    asub = auction.add_subparsers(dest="auction_command", metavar="ACTION", required=True)

    p = asub.add_parser("bench", help="mechanism comparison and learned-vs-optimal revenue table with regret")
    p.add_argument("--quick", action="store_true", help="tiny training and audit (seconds per setting)")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma list of {', '.join(SETTINGS)}; '' for none")
    p.add_argument("--iterations", type=int, help="override training iterations")
    p.add_argument("--profiles", type=int, default=100_000, help="Monte Carlo profiles for the mechanism table")
    p.add_argument("--jobs", type=int, default=1, help="settings trained in parallel processes")
    p.add_argument("--out", type=Path, help="also write the tables as JSON here")
    p.set_defaults(func=cmd_bench)

    p = asub.add_parser("train-payments", help="train EGA's payment network on simulated auctions and save it")
    p.add_argument("--out", required=True, type=Path, help="folder for model.safetensors + config.json")
    p.add_argument("--bidders", type=int, default=4, help="candidate ads per auction")
    p.add_argument("--slots", default="1.0,0.6,0.3", help="position CTRs, comma separated, non-increasing")
    p.add_argument("--values", choices=["uniform", "lognormal"], default="uniform", help="value per click distribution")
    p.add_argument("--pctr-low", type=float, default=0.02)
    p.add_argument("--pctr-high", type=float, default=0.1)
    p.add_argument("--samples", type=int, default=8192, help="training auctions")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--restarts", type=int, default=100, help="misreport restarts of the held-out regret audit")
    p.add_argument("--steps", type=int, default=100, help="gradient steps of the held-out regret audit")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train_payments)
