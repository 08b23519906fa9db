"""The `gankit` command: argparse subcommands whose handlers build a config and call the library.

Exit codes: 0 success; 2 a fault the user can fix (a bad flag, value, file or folder: any
`GankitError`), with a one-line message; 1 a run that failed (it diverged) or a bug in gankit,
with its traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback

from gankit._version import __version__
from gankit.cli.compare import add_compare_parser
from gankit.cli.errors import UsageError
from gankit.cli.evaluate import add_classifier_parser, add_evaluate_parser
from gankit.cli.export import add_export_parser
from gankit.cli.ranges import state_ranges
from gankit.cli.sample import add_sample_parser, add_serve_parser, add_visual_parsers
from gankit.cli.train import add_presets_parser, add_train_parser
from gankit.errors import GankitError

__all__ = ["UsageError", "build_parser", "main"]

# --- entry point ---------------------------------------------------------------------------------


DESCRIPTION = """\
gankit trains, samples and judges GANs and conditional GANs on MNIST-sized images, on a laptop
CPU or a GPU. Start from a preset (`gankit presets` lists them), watch the sample grids and
losses in the run folder, then measure the result against real data with `gankit evaluate`."""

EPILOG = """\
examples:
  gankit train --preset seed-cgan --out runs/cgan        the reference CGAN (5-10 min)
  gankit train --preset cdcgan --budget 120 --out runs/q the best model 2 minutes buy here
  gankit train --resume runs/cgan                        continue after a crash or Ctrl-C
  gankit sample runs/cgan --n 100 --grid grid.png        images, as .npz and a PNG grid
  gankit evaluate runs/cgan                              FID, accuracy... beside real data
  gankit report runs/cgan                                one HTML page about the run
  gankit compare runs/gan runs/cgan --out runs/study     runs side by side
  gankit serve runs/cgan                                 a web demo on http://127.0.0.1:8000/

`gankit COMMAND --help` describes each command. Exit codes: 0 done, 2 a problem with what was
asked (the message says what), 1 a run that diverged or a bug in gankit."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    add_export_parser(subparsers)
    add_compare_parser(subparsers)
    state_ranges(parser)
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
        code = args.handler(args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `gankit presets | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE  # 141, what a program killed by SIGPIPE returns
    except GankitError as error:
        print(f"gankit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug in gankit: never blamed on the user
        traceback.print_exc()
        print(
            f"gankit {args.command}: internal error (a bug in gankit; please report it with "
            "the traceback above)",
            file=sys.stderr,
        )
        return 1
