"""Kinetic laws: how fast a reaction channel fires, in events per unit time.

Conventions
-----------
* Mass action uses the combinatorial convention: a reaction with reactant coefficients ``n_s`` and
  rate constant ``k`` in a volume ``V`` has propensity ``k * V**(1 - order) * prod_s C(x_s, n_s)``
  with ``order = sum_s n_s`` and ``C`` the binomial coefficient, so ``2 P -> P2 @ k`` fires at rate
  ``k * P * (P - 1) / 2`` when ``V = 1``.
* A custom law is an expression (or a JAX callable) of the species counts and parameters giving the
  full propensity in events per unit time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .expressions import Expr, as_expression, parse_expression, symbols, to_string

__all__ = ["MassAction", "Propensity", "KineticLaw"]


@dataclass(frozen=True)
class MassAction:
    """Mass-action kinetics with a rate constant: a parameter name, a number or an expression of parameters."""

    rate: Expr

    def __init__(self, rate: str | float | Expr):
        object.__setattr__(self, "rate", as_expression(rate))

    def describe(self) -> str:
        return f"@ {to_string(self.rate)}"

    def reads(self) -> frozenset[str]:
        """The names the rate constant reads."""
        return frozenset(symbols(self.rate))


@dataclass(frozen=True)
class Propensity:
    """A full propensity (events per unit time): an expression text/tree, or a JAX callable.

    A callable receives two mappings, species name -> count and parameter name -> value (JAX
    scalars), and returns a scalar. Expressions may use any species and parameter by name.
    """

    law: Expr | Callable[[Mapping, Mapping], object]

    def __init__(self, law: str | Expr | Callable):
        if isinstance(law, str):
            law = parse_expression(law)
        object.__setattr__(self, "law", law)

    def describe(self) -> str:
        if callable(self.law):
            return f"@= <{getattr(self.law, '__name__', 'callable')}>"
        return f"@= {to_string(self.law)}"

    def reads(self) -> frozenset[str] | None:
        """The names the law's expression reads; ``None`` for a callable (it may read any)."""
        return None if callable(self.law) else frozenset(symbols(self.law))


KineticLaw = MassAction | Propensity
