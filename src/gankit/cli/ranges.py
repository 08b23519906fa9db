"""Argument types that enforce each numeric flag's range (argparse turns their errors into exit
code 2 with a message naming the flag), and `state_ranges`, which writes every range and every
choice into the flags' help from these same types, so that `--help` and the checks cannot
drift apart."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from gankit.config import SEED_MAX  # seeds are 0..2^63-1 everywhere (CLI, config, web API)

BIG = 10**9  # iterations, intervals: more than any run on this kind of data needs


def range_text(low: float, high: float) -> str:
    """ "1..1e9", "0..2^63-1", "0.05..2": a range as the help shows it."""
    return f"{_number(low)}..{_number(high)}"


def _number(value: float) -> str:
    if value == SEED_MAX:
        return "2^63-1"
    if value >= 10**6 and math.log10(value).is_integer():
        return f"1e{int(math.log10(value))}"
    return f"{value:g}"


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {text[:40]}")
        return value

    parse.__name__ = "int"
    parse.low, parse.high = low, high  # type: ignore[attr-defined]
    parse.range = range_text(low, high)  # type: ignore[attr-defined]
    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low:g}..{high:g}, got {text[:40]}")
        return value

    parse.__name__ = "float"
    parse.low, parse.high = low, high  # type: ignore[attr-defined]
    parse.range = range_text(low, high)  # type: ignore[attr-defined]
    return parse


SEED = int_in(0, SEED_MAX)


def parsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every subcommand's parser below it."""
    found = [parser]
    for action in parser._actions:  # argparse has no public accessor for a parser's actions
        if isinstance(action.choices, dict):  # a subparsers action: command name -> parser
            for sub in action.choices.values():
                found += parsers_of(sub)
    return found


def state_ranges(parser: argparse.ArgumentParser) -> None:
    """Appends each ranged flag's range, "[1..1e9]", and each flag's choices, "{a, b}", to its
    help, in `parser` and all its subcommands."""
    for each in parsers_of(parser):
        for action in each._actions:
            if action.help in (None, argparse.SUPPRESS) or isinstance(action.choices, dict):
                continue
            if hasattr(action.type, "range"):
                action.help += f" [{action.type.range}]"
            elif action.choices is not None:
                action.help += " {" + ", ".join(map(str, action.choices)) + "}"
