"""``genads export RUN --out BUNDLE``: a serving bundle from any run of ``genads train`` (either family)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> int:
    from genads.serve.bundle import load_bundle
    from genads.serve.export import ExportConfig, export_run

    out = export_run(args.run, args.out, payment=args.payment, reward=args.reward, config=ExportConfig(beam=args.beam))
    bundle = load_bundle(out)
    print(f"{out}: {bundle.family} bundle, {len(bundle.ads)} ads, {len(bundle.histories or {})} users, "
          f"model {bundle.model_version}, payment net {'yes' if bundle.payment_net is not None else 'no'}, "
          f"reward model {'yes' if bundle.reward is not None else 'no'}\nserve it:  genads serve {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a serving bundle from a trained run (then: genads serve BUNDLE)",
                       description="Writes BUNDLE (model, codes, ads with bids/budgets/prior pCTR/creative titles, "
                                   "user histories, the dataset's id vocabulary) from a run of `genads train`, "
                                   "--family sid or parallel; optionally with a payment network and a reward model.")
    p.add_argument("run", type=Path, help="run folder from `genads train`")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced atomically)")
    p.add_argument("--payment", type=Path, help="payment network folder (genads auction train-payments --out)")
    p.add_argument("--reward", type=Path, help="slate reward model folder (genads reward train --out)")
    p.add_argument("--beam", type=int, default=10, help="decoding beam width of SID bundles (at least the run's)")
    p.set_defaults(func=cmd_export)
