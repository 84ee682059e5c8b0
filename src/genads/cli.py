"""``genads``: a thin command table over the library. Each command group lives in genads/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "genads.commands.data",
    "genads.commands.baselines",
    "genads.commands.creative",
    "genads.commands.tokenize",
    "genads.commands.slate",
    "genads.commands.demo",
    "genads.commands.auction",
)
"""Each module has ``register(subparsers)`` that adds its command(s) with help text."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genads",
        description="End-to-end generative advertising: data, Semantic IDs, slate model, auction, creatives, serving.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"genads {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
