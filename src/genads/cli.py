"""``genads``: a thin command table over the library. Each command group lives in genads/commands/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


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


CONFIGURABLE = ("tokenize", "train", "serve")
"""Commands that take ``--config FILE``: a YAML mapping of their own options (see :func:`apply_config`)."""


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default (when it has a meaningful one and its help does not say it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings
                or isinstance(action, argparse._HelpAction | argparse._VersionAction)):
            return text
        return text + " (default: %(default)s)"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser):
    yield parser
    for child in dict.fromkeys(_subparsers(parser).values()):  # aliases share a parser
        yield from _walk(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genads",
        description="End-to-end generative advertising: data, Semantic IDs, slate model, auction, creatives, serving.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(name).register(sub)
    for p in _walk(parser):
        p.formatter_class = DefaultsFormatter
    for name in CONFIGURABLE:
        sub.choices[name].add_argument(
            "--config", dest="config_file", metavar="FILE",
            help="YAML file of this command's options, keys as the long flags (max-history: 50, sources: text); "
                 "flags given on the command line win")
    return parser


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)command parser that ``argv`` names."""
    for token in argv:
        children = _subparsers(parser)
        if token in children:
            parser = children[token]
    return parser


def apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``--config FILE`` of a configurable command: its YAML options become the command's defaults, so the
    command line still overrides them; options the file gives stop being required. Unknown keys, bad values and
    a missing file are errors naming the file and the key."""
    leaf = _leaf(parser, argv)
    if not any(a.dest == "config_file" for a in leaf._actions):
        return
    path = None
    for i, token in enumerate(argv):
        if token == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
    if path is None:
        return
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"--config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"--config {path}: not valid YAML: {e}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    by_name: dict[str, argparse.Action] = {}
    for action in leaf._actions:
        if action.dest in ("help", "config_file") or action.dest == argparse.SUPPRESS:
            continue
        by_name[action.dest] = action
        for flag in action.option_strings:
            by_name[flag.lstrip("-").replace("-", "_")] = action
    defaults = {}
    for key, value in data.items():
        action = by_name.get(str(key).lstrip("-").replace("-", "_"))
        if action is None:
            known = sorted({a.option_strings[0].lstrip("-") if a.option_strings else a.dest for a in by_name.values()})
            raise ValueError(f"--config {path}: unknown option {key!r} for `genads {leaf.prog.split(' ', 1)[-1]}` "
                             f"(options: {', '.join(known)})")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)  # sources: [text, attributes] == "text,attributes"
        if action.type is not None and isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                value = action.type(value) if action.type is not str else str(value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"--config {path}: {key}: {e}") from None
        if action.choices is not None and value not in action.choices:
            raise ValueError(f"--config {path}: {key}: {value!r} is not one of {sorted(map(str, action.choices))}")
        defaults[action.dest] = value
        action.required = False
    leaf.set_defaults(**defaults)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        apply_config(parser, argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"genads: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"genads {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
