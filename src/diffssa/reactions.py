"""The parts of a reaction network: reaction channels and discrete events.

A :class:`Reaction` changes species counts by whole molecules at the rate its kinetic law gives
(:mod:`diffssa.kinetics`); an :class:`Event` resets species or variables at the instant its trigger
turns true. Both are plain descriptions; :class:`~diffssa.model.ReactionNetwork` checks them against
the network's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .expressions import Expr, as_expression, parse_expression
from .kinetics import KineticLaw

__all__ = ["Reaction", "Event", "TIME", "reaction_label"]

TIME = "time"  # the symbol for simulation time in event triggers and assignments


@dataclass(frozen=True)
class Reaction:
    """One reaction channel: ``reactants -> products`` with a kinetic law.

    ``reactants`` and ``products`` map species names to positive integer coefficients.
    """

    reactants: Mapping[str, int]
    products: Mapping[str, int]
    law: KineticLaw
    name: str = ""

    def describe(self) -> str:
        def side(terms):
            return " + ".join(f"{n} {s}" if n != 1 else s for s, n in terms.items()) or "0"

        return f"{side(self.reactants)} -> {side(self.products)} {self.law.describe()}"


@dataclass(frozen=True)
class Event:
    """A discrete event: when ``trigger`` turns from false to true, species are reset at that instant.

    ``trigger``: a boolean expression of species, parameters and ``time`` (for example
    ``geq(time, 25)`` or ``gt(P2, 30)``); triggers on time alone fire exactly at the crossing time,
    triggers on species are checked after every reaction. Triggers mixing both are not supported.
    ``assignments``: species or variable name -> expression (of species, variables, parameters and
    ``time``) evaluated with the values just before the event. A species must be assigned a whole
    number >= 0 (a constant that is not is refused when the network is built; a computed value that
    is not is reported by the simulator, naming the event and species); a variable takes the value as
    it is. ``initial_value``: the trigger's value before time 0 (as in SBML: with ``False``, a trigger
    already true at time 0 fires at time 0).
    """

    trigger: Expr
    assignments: Mapping[str, Expr]
    name: str = ""
    initial_value: bool = True

    def __post_init__(self):
        if isinstance(self.trigger, str):
            object.__setattr__(self, "trigger", parse_expression(self.trigger))
        object.__setattr__(self, "assignments", {s: as_expression(e) for s, e in self.assignments.items()})


def reaction_label(index: int, reaction: Reaction) -> str:
    """How messages name a reaction: its name, else ``#k (the reaction as written)``, 1-based."""
    return reaction.name or f"#{index + 1} ({reaction.describe()})"
