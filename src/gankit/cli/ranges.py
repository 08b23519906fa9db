"""Argument types that state and enforce each numeric flag's range (argparse turns their errors
into exit code 2 with a message naming the flag)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from gankit.config import SEED_MAX  # seeds are 0..2^63-1 everywhere (CLI, config, web API)

BIG = 10**9  # iterations, intervals: more than any run on this kind of data needs


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
    return parse


SEED = int_in(0, SEED_MAX)
