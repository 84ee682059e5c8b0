"""``genads serve RUN_DIR``: the HTTP ad service (uvicorn, one worker) on a serving bundle; ``genads keys``: its keys."""

from __future__ import annotations

import argparse
import json
import sys

from genads.serve.engine import MECHANISMS, ServeConfig


def traffic_policy(args: argparse.Namespace):
    """The TrafficPolicy the serve flags describe."""
    from genads.serve.traffic import TrafficPolicy

    ad_cap, campaign_cap = _pair(args.freq_cap, "--freq-cap")
    return TrafficPolicy(require_keys=not args.open_traffic, limits=not args.no_traffic_limits,
                         ads_per_s=args.ads_rate, ads_burst=max(1, round(2 * args.ads_rate)),
                         events_per_s=args.events_rate, events_burst=max(1, round(2 * args.events_rate)),
                         key_per_s=args.key_rate, key_burst=max(1, round(2 * args.key_rate)),
                         freq_cap_ad=ad_cap, freq_cap_campaign=campaign_cap, min_click_delay_s=args.min_click_delay,
                         max_clicks_per_client=args.max_clicks_per_client, max_clicks_per_user=args.max_clicks_per_user,
                         click_window_s=args.click_window)


def _pair(text: str, flag: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give two integers, AD,CAMPAIGN (e.g. 3,10)") from None
    return a, b


def cmd_serve(args: argparse.Namespace) -> int:
    from genads.serve.limits import Limits
    from genads.serve.server import run

    limits = Limits(max_body_bytes=args.max_body, max_queue=args.max_queue, max_batch=args.max_batch,
                    batch_wait_ms=args.batch_wait_ms, body_timeout_s=args.body_timeout,
                    head_timeout_s=args.head_timeout, body_deadline_s=args.body_deadline,
                    max_connections_per_client=args.max_connections_per_client, max_connections=args.max_connections,
                    connection_deadline_s=args.connection_deadline)
    run(args.run_dir, host=args.host, port=args.port, ledger_url=args.ledger,
        config=ServeConfig(mechanism=args.mechanism, refresh_s=args.refresh, beam=args.beam, min_pause_s=args.min_pause),
        log_level=args.log_level,
        limits=limits, public_url=args.public_url, clicks_need_impression=not args.clicks_without_impression,
        served_log=None if args.no_served_log else (args.served_log or ""), workers=args.workers,
        traffic=traffic_policy(args), public_metrics=args.public_metrics, docs=args.docs)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from genads.serve.keys import key_id
    from genads.serve.server import open_state, rotate_admin_key, rotate_token_secret

    ledger, state = open_state(args.run_dir, args.ledger)
    advertiser = _advertiser(args.run_dir, args.advertiser)
    if args.action == "list":
        for k in ledger.list_keys(advertiser, args.publisher):
            print(json.dumps(asdict(k)))
    elif args.action == "issue":
        if (advertiser is None) == (args.publisher is None):
            raise ValueError("issue needs --advertiser ID or --publisher NAME (the admin key is rotated with "
                             "rotate-admin)")
        key = ledger.add_key(advertiser, publisher=args.publisher)
        print(json.dumps({"advertiser": args.advertiser, "advertiser_id": advertiser, "publisher": args.publisher,
                          "key_id": key_id(key), "api_key": key}))
    elif args.action == "revoke":
        if not args.key_id:
            raise ValueError("revoke needs the KEY_ID (genads keys list shows them)")
        print(json.dumps(asdict(ledger.revoke_key(args.key_id))))
    elif args.action == "rotate":
        if not args.key_id:
            raise ValueError("rotate needs the KEY_ID of an advertiser key (genads keys list shows them)")
        owner, key = ledger.rotate_key_id(args.key_id)
        who = {"publisher": owner} if isinstance(owner, str) else {"advertiser_id": owner}
        print(json.dumps({**who, "key_id": key_id(key), "api_key": key, "revoked": args.key_id}))
    elif args.action == "rotate-admin":
        rotate_admin_key(ledger, state)
        print(f"new admin key written to {state / 'admin.key'}; every other admin key is revoked", file=sys.stderr)
    else:  # rotate-secret
        rotate_token_secret(state, args.drop_previous)
        print(f"new token secret in {state / 'token.secret'}"
              + ("; older tokens are void" if args.drop_previous else "; older tokens stay valid until they expire"),
              file=sys.stderr)
    return 0


def _advertiser(run_dir: str, value: str | None) -> int | None:
    """The service's advertiser_id of ``--advertiser``: the dataset's id (``shop-3``, from the bundle's ids.parquet)
    or an integer."""
    if value is None:
        return None
    if value.isascii() and value.isdigit():
        return int(value)
    from genads.data.vocab import IdVocabulary
    from genads.serve.server import bundle_dir

    idx = IdVocabulary.load(bundle_dir(run_dir)).index_of("advertiser", value)
    if idx is None:
        raise ValueError(f"--advertiser {value!r}: no such advertiser in {bundle_dir(run_dir)}/ids.parquet")
    return idx


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve ads over HTTP from a bundle (runs/demo/serve after `make demo`)",
                       description="Start the ad service: POST /v1/ads, campaigns, events, keys, /metrics, /docs. "
                                   "The admin key is in RUN_DIR/state/admin.key (or $GENADS_ADMIN_KEY).")
    p.add_argument("run_dir", help="a serving bundle folder, or a run folder with one in serve/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes on one port (needs --ledger postgresql://...; each holds a connection pool "
                        "of $GENADS_PG_POOL, default 8); a worker that dies is restarted")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--ledger", default=None,
                   help="sqlite:///PATH or postgresql://... (default: SQLite in RUN_DIR/state/ledger.sqlite)")
    p.add_argument("--mechanism", choices=MECHANISMS, default="learned",
                   help="learned: the payment network where it fits the auction, GSP otherwise; gsp: always GSP")
    p.add_argument("--beam", type=int, default=0, help="decoding beam width (0: the bundle's; at least slots + 2)")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between checks for campaign changes")
    p.add_argument("--min-pause", type=float, default=60.0,
                   help="seconds a paused campaign stays paused before it can be resumed (no flapping around clicks)")
    p.add_argument("--public-url", default=None,
                   help="base URL of creative links (https://ads.example.com); default: relative links")
    p.add_argument("--max-body", type=int, default=1 << 20, help="request body limit in bytes (413 above)")
    p.add_argument("--max-queue", type=int, default=64, help="ad requests waiting for decoding before 503")
    p.add_argument("--max-batch", type=int, default=16,
                   help="ad requests decoded together at most (micro-batching; 1: one by one)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0,
                   help="ms a batch waits at most for ad requests still arriving (a lone request never waits)")
    p.add_argument("--body-timeout", type=float, default=10.0, help="seconds a request body may stall (408)")
    p.add_argument("--head-timeout", type=float, default=10.0,
                   help="seconds a connection has to send a complete request head (then it is closed)")
    p.add_argument("--body-deadline", type=float, default=30.0,
                   help="seconds a request body has in all, however it trickles (408 after)")
    p.add_argument("--connection-deadline", type=float, default=300.0,
                   help="seconds a connection may stay open in all (then it is closed; clients reconnect)")
    p.add_argument("--max-connections", type=int, default=1024,
                   help="connections + requests in flight; more get 503 (GET /healthz is still answered)")
    p.add_argument("--max-connections-per-client", type=int, default=128,
                   help="open connections per peer address; more get 503 (behind a reverse proxy, raise it)")
    p.add_argument("--clicks-without-impression", action="store_true",
                   help="charge a click even when its slot's impression was never reported (default: 409 until it is)")
    p.add_argument("--served-log", default=None,
                   help="append served slates and events here (default RUN_DIR/state/served.jsonl); "
                        "`genads data import LOG --format served-log` reads it back as training data")
    p.add_argument("--no-served-log", action="store_true", help="do not log served slates and events")
    t = p.add_argument_group("traffic", "who may ask for ads and report events, how often, and which clicks are "
                                        "invalid (README, Serving: Traffic)")
    t.add_argument("--open-traffic", action="store_true",
                   help="/v1/ads and /v1/events need no key (default: a publisher key, or the admin key; the first "
                        "start writes one to RUN_DIR/state/publisher.key)")
    t.add_argument("--no-traffic-limits", action="store_true",
                   help="turn off rate limits, frequency caps and the invalid-click rules")
    t.add_argument("--ads-rate", type=float, default=50.0, help="ad requests per second per client (burst: twice)")
    t.add_argument("--events-rate", type=float, default=100.0, help="events per second per client (burst: twice)")
    t.add_argument("--key-rate", type=float, default=1000.0,
                   help="ad requests, and events, per second per publisher key (burst: twice)")
    t.add_argument("--freq-cap", default="3,10", metavar="AD,CAMPAIGN",
                   help="slots of one ad, and of one campaign, served to one user_id per hour")
    t.add_argument("--min-click-delay", type=float, default=0.5,
                   help="seconds: a click sooner than this after its impression is invalid (charged nothing)")
    t.add_argument("--max-clicks-per-client", type=int, default=10,
                   help="clicks per client (peer address) per --click-window; more: invalid, and the window's "
                        "charged clicks are refunded")
    t.add_argument("--max-clicks-per-user", type=int, default=5, help="the same per user_id")
    t.add_argument("--click-window", type=float, default=600.0, help="seconds the click caps count over")
    p.add_argument("--public-metrics", action="store_true",
                   help="/metrics answers anyone (default: only with the admin key in X-API-Key)")
    p.add_argument("--docs", action="store_true", help="serve /docs, /redoc and /openapi.json (default: off)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="list, issue, revoke and rotate the service's API keys and token secret",
                       description="Key lifecycle of `genads serve RUN_DIR` (works while it runs: keys are checked "
                                   "in the ledger on every request, the token secret file is re-read within 1 s).")
    k.add_argument("action", choices=("list", "issue", "revoke", "rotate", "rotate-admin", "rotate-secret"))
    k.add_argument("run_dir", help="the serving bundle folder (as given to genads serve)")
    k.add_argument("key_id", nargs="?", default=None, help="revoke, rotate: the key's id (from list)")
    k.add_argument("--advertiser", default=None,
                   help="the dataset's advertiser id (shop-3) or the integer; list: only its keys; issue: for it")
    k.add_argument("--publisher", default=None,
                   help="list: only this publisher's keys; issue: a publisher key (it opens /v1/ads and /v1/events only)")
    k.add_argument("--ledger", default=None, help="as for genads serve")
    k.add_argument("--drop-previous", action="store_true",
                   help="rotate-secret: void tokens signed by the old secret at once (a leaked secret)")
    k.set_defaults(func=cmd_keys)
