"""``genads serve RUN_DIR``: the HTTP ad service (uvicorn, one worker) on a serving bundle."""

from __future__ import annotations

import argparse

from genads.serve.engine import MECHANISMS, ServeConfig


def cmd_serve(args: argparse.Namespace) -> int:
    from genads.serve.server import run

    run(args.run_dir, host=args.host, port=args.port, ledger_url=args.ledger,
        config=ServeConfig(mechanism=args.mechanism, refresh_s=args.refresh, beam=args.beam), log_level=args.log_level)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve ads over HTTP from a bundle (runs/demo/serve after `make demo`)",
                       description="Start the ad service: POST /v1/ads, campaigns, events, /metrics, /docs. "
                                   "The admin key is in RUN_DIR/state/admin.key (or $GENADS_ADMIN_KEY).")
    p.add_argument("run_dir", help="a serving bundle folder, or a run folder with one in serve/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ledger", default=None,
                   help="sqlite:///PATH or postgresql://... (default: SQLite in RUN_DIR/state/ledger.sqlite)")
    p.add_argument("--mechanism", choices=MECHANISMS, default="learned",
                   help="learned: the payment network where it fits the auction, GSP otherwise; gsp: always GSP")
    p.add_argument("--beam", type=int, default=0, help="decoding beam width (0: the bundle's; at least slots + 2)")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between checks for campaign changes")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)
