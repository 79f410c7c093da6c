"""Reaction networks: species, parameters, variables, observables, reactions and events, validated.

A :class:`ReactionNetwork` is a validated, immutable description of a continuous-time Markov chain
on species counts, made of reactions and events (:mod:`diffssa.reactions`) with kinetic laws
(:mod:`diffssa.kinetics`). :meth:`ReactionNetwork.compile` turns it into a
:class:`~diffssa.compiled.CompiledNetwork`: a stoichiometry matrix and a pure JAX propensity function
``a(x, theta)`` that the simulator calls.

Conventions
-----------
* States are species *counts* (molecule numbers), never concentrations.
* Counts are exact integers up to ``MAX_COUNT = 2**53`` (the simulator keeps them in float32 while
  they stay below 2**24 and in float64 beyond; larger initial counts are refused).
* *Variables* are real-valued quantities that only events change (piecewise constant in time: a
  parameter switched by an event, a forcing that steps at given times). Custom laws, triggers and
  assignments read them by name; the simulator keeps them in the state vector after the species.
* *Observables* are named expressions of species, variables and parameters, computed at every
  recorded time (an SBML species given by an assignment rule that no law reads, a total ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .compiled import CompiledNetwork, compile_network
from .expressions import Expr, evaluate, parse_expression, symbols
from .kinetics import MassAction, Propensity
from .reactions import TIME, Event, Reaction, reaction_label

__all__ = ["ReactionNetwork", "MAX_COUNT", "check_count"]

MAX_COUNT = 2**53  # the largest count kept exactly (float64 integers); larger initial counts are refused


def check_count(what: str, value) -> int:
    """``value`` as an exact int count (0 .. 2**53), or ValueError starting with ``what``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = int(value)  # exact at any size: compared before any conversion to float
    else:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
        if not math.isfinite(f) or not f.is_integer():
            raise ValueError(f"{what} must be a finite non-negative integer count, got {value!r}")
        v = int(f)
    if v < 0:
        raise ValueError(f"{what} must be a finite non-negative integer count, got {value!r}")
    if v > MAX_COUNT:
        raise ValueError(f"{what} is {value!r}, above 2**53 = {MAX_COUNT:,}: counts beyond it are not exact "
                         "integers in floating point (and beyond exact simulation: use a continuous model)")
    return v


def _check_real(what: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return v


def _check_coefficient(reaction: str, species: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)) or n != int(n) or n <= 0:
        raise ValueError(
            f"reaction {reaction}: stoichiometric coefficient of {species!r} must be a positive integer, got {n!r}"
        )
    return int(n)


def _checked_reaction(i: int, r: Reaction, species, parameters, variables) -> Reaction:
    """The reaction with integer coefficients and a name, or ValueError naming what is wrong."""
    label = reaction_label(i, r)
    if not isinstance(r.law, (MassAction, Propensity)):
        raise ValueError(f"reaction {label}: unknown kinetic law {r.law!r}")
    for side in (r.reactants, r.products):
        for s, n in side.items():
            if s in variables:
                raise ValueError(f"reaction {label}: {s!r} is a variable, which cannot be a reactant or product")
            if s not in species:
                raise ValueError(f"reaction {label}: unknown species {s!r}")
            _check_coefficient(label, s, n)
    mass_action = isinstance(r.law, MassAction)
    names = r.law.reads() or frozenset()  # a callable law reads names that cannot be checked here
    known = set(parameters) | (set() if mass_action else set(species) | set(variables))
    unknown = sorted(names - known)
    if unknown:
        if mass_action and unknown[0] in variables:
            raise ValueError(f"reaction {label}: a mass-action rate constant cannot read variable {unknown[0]!r}; "
                             "write the law as a full propensity (@=)")
        kind = "parameter" if mass_action else "species, variable or parameter"
        raise ValueError(f"reaction {label}: unknown {kind} {unknown[0]!r}")
    if mass_action:
        try:
            rate = float(evaluate(r.law.rate, parameters))
        except ArithmeticError as err:
            raise ValueError(f"reaction {label}: rate constant cannot be evaluated: {err}") from None
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"reaction {label}: rate constant must be finite and non-negative, got {rate}")
    reactants = {s: int(n) for s, n in r.reactants.items()}
    products = {s: int(n) for s, n in r.products.items()}
    return Reaction(reactants, products, r.law, r.name or f"R{i + 1}")


def _check_event(label: str, ev: Event, species, parameters, variables) -> None:
    """ValueError naming the event for unknown names and for constant assignments that are not counts."""
    known = set(species) | set(parameters) | set(variables) | {TIME}
    for what, expr in [("trigger", ev.trigger), *[(f"assignment to {s!r}", e) for s, e in ev.assignments.items()]]:
        unknown = sorted(symbols(expr) - known)
        if unknown:
            raise ValueError(f"event {label}: {what} uses unknown name {unknown[0]!r}")
    for s, expr in ev.assignments.items():
        if s in parameters:
            raise ValueError(f"event {label}: assigns parameter {s!r}; a quantity events change must be a "
                             "variable (ReactionNetwork(..., variables={name: initial value}))")
        if s not in species and s not in variables:
            raise ValueError(f"event {label}: assigns to unknown species {s!r}")
        if s in species and not symbols(expr):
            check_count(f"event {label}: the value assigned to species {s!r}", evaluate(expr, {}))


@dataclass(frozen=True)
class ReactionNetwork:
    """A validated reaction network.

    Parameters
    ----------
    species: mapping name -> initial count (non-negative integer up to 2**53), in the order states are stored.
    parameters: mapping name -> value (finite float).
    reactions: the reaction channels.
    volume: system volume used by mass-action scaling (default 1).
    events: discrete events (:class:`Event`).
    variables: mapping name -> initial value (finite float) of quantities only events change; custom
        laws, triggers and event assignments read them (not mass-action rate constants, which are
        parameters), and they are never reactants or products.
    observables: mapping name -> expression (text or tree) of species, variables and parameters,
        computed at every recorded time (``Trajectories.observables``).
    """

    species: dict[str, int]
    parameters: dict[str, float]
    reactions: tuple[Reaction, ...]
    volume: float = 1.0
    name: str = ""
    events: tuple[Event, ...] = ()
    variables: dict[str, float] = field(default_factory=dict)
    observables: dict[str, Expr] = field(default_factory=dict)
    _compiled: list = field(default_factory=list, repr=False, compare=False)

    def __init__(
        self,
        species: Mapping[str, int],
        parameters: Mapping[str, float] | None = None,
        reactions: Sequence[Reaction] = (),
        volume: float = 1.0,
        name: str = "",
        events: Sequence[Event] = (),
        variables: Mapping[str, float] | None = None,
        observables: Mapping[str, str | Expr] | None = None,
    ):
        parameters = {str(p): _check_real(f"parameter {p!r}", v) for p, v in (parameters or {}).items()}
        species = {str(s): check_count(f"initial count of species {s!r}", n) for s, n in species.items()}
        variables = {str(v): _check_real(f"initial value of variable {v!r}", x) for v, x in (variables or {}).items()}
        if not species:
            raise ValueError("the network has no species")
        if not reactions:
            raise ValueError("the network has no reactions")
        for (kind_a, a), (kind_b, b) in [(("species", species), ("parameter", parameters)),
                                         (("species", species), ("variable", variables)),
                                         (("variable", variables), ("parameter", parameters))]:
            clash = set(a) & set(b)
            if clash:
                raise ValueError(f"names used both as {kind_a} and {kind_b}: {sorted(clash)}")
        if not (math.isfinite(volume) and volume > 0):
            raise ValueError(f"volume must be positive and finite, got {volume!r}")
        checked = [_checked_reaction(i, r, species, parameters, variables) for i, r in enumerate(reactions)]
        for i, ev in enumerate(events):
            _check_event(ev.name or f"#{i + 1}", ev, species, parameters, variables)
        observables = {str(o): parse_expression(e) if isinstance(e, str) else e for o, e in (observables or {}).items()}
        known = set(species) | set(variables) | set(parameters)
        for o, expr in observables.items():
            if o in known:
                raise ValueError(f"observable {o!r}: the name is already a species, variable or parameter")
            unknown = sorted(symbols(expr) - known)
            if unknown:
                raise ValueError(f"observable {o!r} uses unknown name {unknown[0]!r} (observables read species, "
                                 "variables and parameters)")
        object.__setattr__(self, "events", tuple(events))
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "reactions", tuple(checked))
        object.__setattr__(self, "volume", float(volume))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "observables", observables)
        object.__setattr__(self, "_compiled", [])

    # ------------------------------------------------------------------ views
    @property
    def species_names(self) -> tuple[str, ...]:
        return tuple(self.species)

    @property
    def state_names(self) -> tuple[str, ...]:
        """The names along the simulator's state vector: the species, then the variables."""
        return tuple(self.species) + tuple(self.variables)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self.parameters)

    @property
    def stoichiometry(self) -> np.ndarray:
        """(R, S) integer net change matrix."""
        return self._coefficients("products") - self._coefficients("reactants")

    @property
    def reactant_matrix(self) -> np.ndarray:
        """(R, S) integer reactant coefficients (what a firing consumes)."""
        return self._coefficients("reactants")

    def _coefficients(self, side: str) -> np.ndarray:
        """(R, S) int64 coefficients of each reaction's ``side`` ("reactants" or "products")."""
        idx = {s: i for i, s in enumerate(self.species)}
        matrix = np.zeros((len(self.reactions), len(self.species)), dtype=np.int64)
        for j, r in enumerate(self.reactions):
            for s, n in getattr(r, side).items():
                matrix[j, idx[s]] = n
        return matrix

    def check_parameter_names(self, names) -> None:
        """Raise ``ValueError`` naming the first of ``names`` that is not a parameter of the network."""
        for name in names:
            if name not in self.parameters:
                raise ValueError(f"unknown parameter {name!r}; known: {', '.join(self.parameters) or '(none)'}")

    def check_species_name(self, name: str) -> None:
        """Raise ``ValueError`` if ``name`` is not a species of the network."""
        if name not in self.species:
            raise ValueError(f"unknown species {name!r}; known: {', '.join(self.species)}")

    def parameter_values(self, overrides: Mapping[str, object] | None = None) -> dict[str, object]:
        """Every parameter, in the network's order: its value, or the override given for it (names checked).

        Override values are passed through as given (floats, arrays or JAX tracers).
        """
        overrides = dict(overrides or {})
        self.check_parameter_names(overrides)
        return {**self.parameters, **overrides}

    def initial_state(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """(S,) float64 initial state along :attr:`state_names`: the counts, with optional per-species
        overrides (validated), then the variables' initial values."""
        values = dict(self.species)
        for s, n in (overrides or {}).items():
            self.check_species_name(s)
            values[s] = check_count(f"initial count of species {s!r}", n)
        return np.array([values[s] for s in self.species] + list(self.variables.values()), dtype=np.float64)

    def with_parameters(self, **values: float) -> "ReactionNetwork":
        """A copy with some parameter values replaced (names are checked)."""
        return self._replace(parameters=self.parameter_values(values))

    def with_initial(self, **counts: int) -> "ReactionNetwork":
        """A copy with some initial counts replaced (names are checked)."""
        for s in counts:
            self.check_species_name(s)
        return self._replace(species={**self.species, **counts})

    def _replace(self, **changes) -> "ReactionNetwork":
        fields = dict(species=self.species, parameters=self.parameters, reactions=self.reactions, volume=self.volume,
                      name=self.name, events=self.events, variables=self.variables, observables=self.observables)
        return ReactionNetwork(**{**fields, **changes})

    # -------------------------------------------------------------- compiling
    def compile(self) -> CompiledNetwork:
        """Stoichiometry and a vectorised propensity function ``a(x (S,), theta (P,)) -> (R,)``."""
        if not self._compiled:
            self._compiled.append(compile_network(self))
        return self._compiled[0]
