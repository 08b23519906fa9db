"""The `gankit` command: argparse subcommands whose handlers build a config and call the library.

Exit codes: 0 success, 1 a run that failed (e.g. diverged), 2 a usage error (bad flag, bad file,
bad value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gankit._version import __version__
from gankit.cli.errors import UsageError
from gankit.cli.evaluate import add_classifier_parser, add_evaluate_parser
from gankit.cli.sample import add_sample_parser, add_serve_parser, add_visual_parsers
from gankit.cli.train import add_presets_parser, add_train_parser

__all__ = ["UsageError", "build_parser", "main"]

# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gankit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    add_presets_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_visual_parsers(subparsers)
    add_serve_parser(subparsers)
    add_classifier_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    args.argv = argv
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="gankit: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"gankit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
