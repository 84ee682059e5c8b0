"""``genads``: a thin command table over the library. Each command group lives in genads/commands/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def command_modules() -> list[str]:
    """Every module of genads/commands (sorted); each has ``register(subparsers)`` adding its command(s).

    Discovered rather than listed, so a new command group is one new file and nothing else.
    """
    import genads.commands as pkg

    return sorted(f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genads")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from genads import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genads",
        description="End-to-end generative advertising: data, Semantic IDs, slate model, auction, creatives, serving.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
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
