"""`gankit compare`: runs side by side."""

from __future__ import annotations

import argparse
from typing import Any

from gankit.cli.ranges import SEED, int_in


def add_compare_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare", help="2 to 8 runs side by side: one HTML page and a Markdown summary"
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (2 to 8)")
    p.add_argument("--out", required=True, help="folder for compare.html and compare.md")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="first evaluate the runs that have no evaluation, with the same --n and --seed "
        "(the default when none has one)",
    )
    p.add_argument(
        "--n", type=int_in(2, 10**6), help="samples per evaluation (default 10000; 26000 stacked)"
    )
    p.add_argument("--seed", type=SEED, default=0, help="noise seed of the evaluations (default 0)")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from gankit.compare import compare_runs

    page = compare_runs(args.runs, args.out, evaluate_runs=args.evaluate, n=args.n, seed=args.seed)
    print(f"wrote {page} and {page.with_suffix('.md')}")
    return 0
