"""``genads data import|info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genads.data.bids import MarketParams
from genads.data.dataset import load_dataset
from genads.data.duck_sort import DuckConfig
from genads.data.ingest import import_dataset
from genads.data.loaders import FORMATS, parse_column_map
from genads.data.loaders.tabular import parse_sep
from genads.data.split import SplitConfig, leave_one_out, split_stats
from genads.data.validate import parse_action_map


def make_source(args: argparse.Namespace):
    """Build the Source for ``--format`` from the parsed arguments."""
    fmt = args.format
    if fmt == "s3rec":
        return FORMATS[fmt](args.input, attributes=args.items)
    if fmt == "recbole":
        return FORMATS[fmt](args.input, item=args.items)
    if fmt == "served-log":
        return FORMATS[fmt](args.input, base=args.items)
    if fmt == "tencentgr":
        return FORMATS[fmt](args.input, item_feat=args.items, advertiser_feature=args.advertiser_feature,
                            mm_emb=args.mm_emb, emb_feature=args.emb_feature, indexer=args.indexer)
    return FORMATS[fmt](args.input, catalogue=args.items, column_map=parse_column_map(args.map),
                        catalogue_map=parse_column_map(args.items_map), default_action=args.default_action,
                        sep=parse_sep(args.sep))


def cmd_import(args: argparse.Namespace) -> int:
    source = make_source(args)
    try:
        on_error = args.on_error or ("skip" if args.format == "served-log" else "stop")
        report = import_dataset(source, args.out, on_error=on_error, market=MarketParams(seed=args.seed),
                                chunk_rows=args.chunk_rows, progress=not args.quiet,
                                action_map=parse_action_map(args.action_map), string_ids=not args.integer_ids,
                                duck=DuckConfig(memory_limit=args.memory_limit))
    except FileExistsError as e:  # the CLI reports ValueErrors as one-line errors
        raise ValueError(str(e)) from e
    print(f"{report.path}: {report.n_ads} ads, {report.n_users} users, {report.n_events} events "
          f"({'DuckDB CSV fast path' if report.engine == 'fast' else source.format + ' loader'}, sorted on DuckDB)")
    print(report.issues.summary() + (f"; details in {report.path}/rejected.jsonl" if report.issues.total else ""))
    views = report.meta.get("actions", {}).get("impression", 0)
    if views:  # said once here, so that a quarter of a log does not leave training unnoticed
        print(f"{views} impression events (impression/view/exposure): training uses clicks and conversions unless "
              "`genads train --positive-actions impression,click,conversion`")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ds = load_dataset(args.dataset)
    stats = split_stats(leave_one_out(ds, SplitConfig(max_history=args.max_history)))
    print(json.dumps({"meta": ds.meta, "split": stats}, indent=2, ensure_ascii=False))
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    from genads.data.example import ExampleConfig, write_example_shop

    events, catalogue = write_example_shop(args.out, ExampleConfig(users=args.users, ads=args.ads, seed=args.seed))
    print(f"wrote {events} and {catalogue}; import them with\n  genads data import {events} --format csv "
          f"--items {catalogue} --map user_id=user,ad_id=item,timestamp=ts,action=kind "
          f"--items-map advertiser_id=advertiser --action-map purchase=conversion --out data/shop")
    return 0


def cmd_synth_tencentgr(args: argparse.Namespace) -> int:
    from genads.data.tencentgr_synth import ADVERTISER_FEATURE, SynthConfig, write_tencentgr

    seq = write_tencentgr(args.out, SynthConfig(users=args.users, items=args.items, seed=args.seed))
    print(f"wrote {seq}; import it with\n  genads data import {seq} --format tencentgr --advertiser-feature "
          f"{ADVERTISER_FEATURE} --emb-feature 81 --out data/taac-synth")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import and inspect datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = dsub.add_parser("import", help="validate an input and write a dataset folder (catalogue, events, meta)",
                        description="Formats: s3rec (Amazon Beauty/Sports .txt), recbole (.inter/.item), "
                        "tencentgr (seq.jsonl + item_feat_dict.json), csv / parquet (with --map), "
                        "served-log (genads serve's state/served.jsonl; --items: the dataset the model was trained on, "
                        "whose catalogue and events come first).")
    p.add_argument("input", type=Path, help="events file (.txt, .inter, seq.jsonl, .csv[.gz], .tsv, .parquet)")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="input format")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write (replaced atomically)")
    p.add_argument("--items", type=Path, help="item/catalogue file (attributes json, .item, item_feat_dict.json, csv)")
    p.add_argument("--map", help="event column map for csv/parquet, e.g. user_id=uid,ad_id=item,timestamp=ts")
    p.add_argument("--items-map", help="catalogue column map for csv/parquet, e.g. ad_id=item,title=name")
    p.add_argument("--default-action", default="click", help="action for csv/parquet without an action column")
    p.add_argument("--sep", help="csv: field separator of the events and --items files, one of , tab ; | "
                   "(default: a tab for .tsv/.tab, else the most frequent of them in the header line)")
    p.add_argument("--action-map", help="the input's own action names, e.g. purchase=conversion,view=impression")
    p.add_argument("--integer-ids", action="store_true",
                   help="reject ids that are not integers (default: string ids such as u1 are kept in ids.parquet)")
    p.add_argument("--advertiser-feature", help="tencentgr: item feature that names the advertiser")
    p.add_argument("--mm-emb", type=Path, help="tencentgr: folder of multimodal embeddings (emb_<feature>_<dim>/*.json; "
                   "default creative_emb/ beside the input when --emb-feature is given)")
    p.add_argument("--emb-feature", help="tencentgr: the embedding feature id to read into the catalogue (e.g. 81)")
    p.add_argument("--indexer", type=Path, help="tencentgr: TAAC's indexer.pkl mapping the embeddings' original ids "
                   "to seq.jsonl's ids (read as plain data, no code runs; default: indexer.pkl beside the input)")
    p.add_argument("--on-error", choices=["stop", "skip"], default=None,
                   help="stop at the first malformed row, or skip malformed rows and count them (default: stop; skip "
                        "for --format served-log, which a live service wrote: one bad line must not stop retraining)")
    p.add_argument("--seed", type=int, default=0, help="seed for synthetic bids and budgets")
    p.add_argument("--chunk-rows", type=int, default=500_000, help="rows per streaming chunk")
    p.add_argument("--memory-limit", default=DuckConfig.memory_limit,
                   help="DuckDB's memory for the sort (e.g. 1500MB, 4GB); beyond it, it spills to disk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    p = dsub.add_parser("example", help="write a small shop with string ids as CSV (the walk-through's input)")
    p.add_argument("--out", required=True, type=Path, help="folder for events.csv and catalogue.csv")
    p.add_argument("--users", type=int, default=120)
    p.add_argument("--ads", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_example)

    p = dsub.add_parser("synth-tencentgr", help="write a synthetic data set in the TencentGR / TAAC 2025 layout")
    p.add_argument("--out", required=True, type=Path, help="folder for seq.jsonl, item_feat_dict.json, creative_emb/")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth_tencentgr)

    p = dsub.add_parser("info", help="print a dataset's meta.json and leave-one-out split statistics")
    p.add_argument("dataset", type=Path)
    p.add_argument("--max-history", type=int, default=50)
    p.set_defaults(func=cmd_info)
