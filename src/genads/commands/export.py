"""``genads export RUN --out BUNDLE``: a serving bundle from any run of ``genads train`` (either family)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> int:
    from genads.serve.bundle import load_bundle
    from genads.serve.export import ExportConfig, export_run
    from genads.serve.redeploy import MIGRATIONS, STATE_DIR, StateExistsError

    state = "keep" if args.keep_state else "discard" if args.discard_state else "refuse"
    try:
        out = export_run(args.run, args.out, payment=args.payment, reward=args.reward, state=state,
                         config=ExportConfig(beam=args.beam, titles=args.titles))
    except StateExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bundle = load_bundle(out)
    if state == "keep" and (out / STATE_DIR / MIGRATIONS).is_file():
        last = json.loads((out / STATE_DIR / MIGRATIONS).read_text().splitlines()[-1])
        cat = last.get("catalogue", {})
        print(f"kept {out / STATE_DIR} (ledger, keys, token secret, served log); ids re-aligned: "
              f"{last.get('ids_realigned') or 'none needed'}; ads +{cat.get('ads_added', 0)} "
              f"-{cat.get('ads_removed', 0)}, new advertisers {len(cat.get('advertisers_added', []))} (their campaigns "
              f"start with the server), {len(cat.get('ads_added_to_known_advertisers', []))} new ads of existing "
              f"advertisers not enrolled (see {out / STATE_DIR / MIGRATIONS})")
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
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced atomically; "
                   "one that has served needs --keep-state or --discard-state)")
    p.add_argument("--payment", type=Path, help="payment network folder (genads auction train-payments --out)")
    p.add_argument("--reward", type=Path, help="slate reward model folder (genads reward train --out)")
    p.add_argument("--beam", type=int, default=10, help="decoding beam width of SID bundles (at least the run's) "
                   "(default: %(default)s)")
    p.add_argument("--titles", choices=("catalogue", "generated"), default="catalogue",
                   help="served ad titles: the advertiser's own from the catalogue, or generated from selling points "
                        "(opt-in; an empty catalogue title gets a generated one either way) (default: %(default)s)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--keep-state", action="store_true",
                       help="BUNDLE has served: move its state/ (spend ledger, keys, token secret, served log) into the "
                            "new bundle, with its ids aligned so campaigns, spend, keys and tokens still apply")
    state.add_argument("--discard-state", action="store_true",
                       help="BUNDLE has served: delete its state/ with the old bundle (a fresh deployment)")
    p.set_defaults(func=cmd_export)
