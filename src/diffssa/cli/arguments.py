"""Argument types and exit statuses of the command line.

Bad input is exit status 2 with one line ``diffssa: error: ...`` (:class:`Parser` for options, ``ValueError``
from a command); trajectories that ran out of the step budget are ``EXIT_BUDGET`` (:class:`BudgetExhausted`).
"""

from __future__ import annotations

import argparse
import math

from ..rng import as_key

__all__ = ["EXIT_BUDGET", "BudgetExhausted", "Parser", "count", "positive_int", "scale", "seed"]

EXIT_BUDGET = 3  # some trajectories ran out of --max-steps


class BudgetExhausted(Exception):
    """Trajectories ran out of the step budget: exit status ``EXIT_BUDGET`` with this message."""


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line ``diffssa: error: ...``, status 2."""

    def error(self, message):
        self.exit(2, f"diffssa: error: {message} (see {self.prog} --help)\n")


def seed(text: str) -> int:
    """``--seed``: an integer that :func:`diffssa.rng.as_key` accepts (-2**63 <= seed < 2**64)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    try:
        as_key(value)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(f"{err} (use 0 <= seed < 2**64)") from None
    return value


def positive_int(text: str, least: int = 1) -> int:
    """An integer >= ``least`` (1: positive, 0: non-negative)."""
    kind = "positive" if least == 1 else "non-negative"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {value}")
    return value


def count(text: str) -> int:
    """A non-negative integer."""
    return positive_int(text, least=0)


def scale(text: str):
    """``--scale``: a positive number (molecules per unit of substance) or ``avogadro``."""
    if text == "avogadro":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'avogadro', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number or 'avogadro', got {text!r}")
    return value
