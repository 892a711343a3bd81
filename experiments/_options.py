"""Command-line option types that check their value when the command line is parsed.

A bad value is argparse's usage error (exit code 2, naming the option) before any data is
loaded or anything trained, e.g. `argument --noise-stds: must be >= 0; got -0.5`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "integer",
    "real",
    "positive_int",
    "non_negative_int",
    "positive",
    "non_negative",
    "fraction",
]


def _number(kind: type, text: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind.__name__}; got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
    return value


def _bounded(kind: type, low: float, high: float, low_open: bool, high_open: bool, what: str):
    def parse(text: str):
        value = _number(kind, text)
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def integer(low: int = 0) -> Callable[[str], int]:
    """An integer >= `low`."""
    return _bounded(int, low, math.inf, False, True, f">= {low}")


def real(low: float = 0.0, high: float = math.inf, *, low_open=False, high_open=True):
    """A finite float in the interval (`low_open`/`high_open`: exclude the end)."""
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    return _bounded(float, low, high, low_open, high_open, f"in {lo}{low}, {high}{hi}")


positive_int = integer(1)
non_negative_int = integer(0)
non_negative = _bounded(float, 0.0, math.inf, False, True, ">= 0")
positive = real(0.0, low_open=True)  # a finite float > 0
fraction = real(0.0, 1.0, low_open=True, high_open=False)  # a share of a set: (0, 1]
