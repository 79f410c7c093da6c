"""Reaction networks: species, parameters, reactions and their kinetic laws.

A :class:`ReactionNetwork` is a validated, immutable description of a continuous-time Markov chain
on species counts. :meth:`ReactionNetwork.compile` turns it into a :class:`CompiledNetwork`: a
stoichiometry matrix and a pure JAX propensity function ``a(x, theta)`` that the simulator calls.

Conventions
-----------
* States are species *counts* (molecule numbers), never concentrations.
* Mass action uses the combinatorial convention: a reaction with reactant coefficients ``n_s`` and
  rate constant ``k`` in a volume ``V`` has propensity ``k * V**(1 - order) * prod_s C(x_s, n_s)``
  with ``order = sum_s n_s`` and ``C`` the binomial coefficient, so ``2 P -> P2 @ k`` fires at rate
  ``k * P * (P - 1) / 2`` when ``V = 1``.
* A custom law is an expression (or a JAX callable) of the species counts and parameters giving the
  full propensity in events per unit time.
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
from typing import Callable, Mapping, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from .expressions import Expr, Num, Sym, evaluate, parse_expression, symbols, to_string

__all__ = ["MassAction", "Propensity", "Reaction", "Event", "ReactionNetwork", "CompiledNetwork", "MAX_COUNT"]

TIME = "time"  # the symbol for simulation time in event triggers and assignments
MAX_COUNT = 2**53  # the largest count kept exactly (float64 integers); larger initial counts are refused


@dataclass(frozen=True)
class MassAction:
    """Mass-action kinetics with a rate constant: a parameter name, a number or an expression of parameters."""

    rate: Expr

    def __init__(self, rate: str | float | Expr):
        if isinstance(rate, str):
            rate = parse_expression(rate)
        elif isinstance(rate, (int, float)):
            rate = Num(float(rate))
        object.__setattr__(self, "rate", rate)

    def describe(self) -> str:
        return f"@ {to_string(self.rate)}"


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


KineticLaw = MassAction | Propensity


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
    number >= 0 (a constant that is not is refused here; a computed value that is not is reported by
    the simulator, naming the event and species); a variable takes the value as it is. ``initial_value``: the trigger's value before time 0 (as in SBML:
    with ``False``, a trigger already true at time 0 fires at time 0).
    """

    trigger: Expr
    assignments: Mapping[str, Expr]
    name: str = ""
    initial_value: bool = True

    def __post_init__(self):
        if isinstance(self.trigger, str):
            object.__setattr__(self, "trigger", parse_expression(self.trigger))
        object.__setattr__(
            self,
            "assignments",
            {s: parse_expression(e) if isinstance(e, str) else Num(float(e)) if isinstance(e, (int, float)) else e
             for s, e in self.assignments.items()},
        )


class CompiledNetwork(NamedTuple):
    """What the simulator needs: stoichiometry and a propensity function.

    ``species``: the names along the state vector's axis: the species (``n_counts`` of them), then the
    network's variables. Below, S counts both.
    ``stoichiometry``: (R, S) float32 net change of each species per firing (0 for variables).
    ``laws(x, theta)``: x (S,) state (counts, then variables), theta (P,) parameters -> (R,) kinetic laws as written (a custom
    law may come out negative or non-finite: the simulator checks, and names the reaction).
    ``mass_action``: (Rm,) indices of the mass-action reactions.
    ``rate_constants(theta)``: theta (P,) -> (Rm,) their rate constants times volume factors. A mass-action
    law is this times a count factor that is finite and >= 0, so it is negative or non-finite only if
    its rate constant is (the simulator checks these once per call, custom laws at every step).
    ``reactions``: (R,) reaction labels for messages.
    ``intensities(x, a)``: (R,) the mass-action count factors ``V**(1 - order) prod_s C(x_s, n_s)``
    (a mass-action law divided by its rate constant, so it is positive wherever the reaction can fire,
    whatever the rate constant) and, for custom laws, their propensities ``a`` (R,) at ``x`` as the
    simulator computed them: where gradient estimators sample the reactions' activity
    (:mod:`diffssa.simulation.pairs`).
    ``reads``: (R,) for each reaction the parameter names its law reads (every parameter for a callable law).
    """

    species: tuple[str, ...]
    parameters: tuple[str, ...]
    stoichiometry: np.ndarray
    laws: Callable
    mass_action: np.ndarray
    rate_constants: Callable
    reactions: tuple[str, ...]
    events: tuple  # the network's Event objects (compiled by diffssa.simulation.events)
    intensities: Callable
    reads: tuple[frozenset[str], ...]
    cache: dict  # jitted simulators built for this network, keyed by their configuration
    n_counts: int  # the first n_counts entries of the state are species counts, the rest variables

    def propensities(self, x, theta):
        """(R,) propensities: the kinetic laws, negative values read as 0."""
        return jnp.maximum(self.laws(x, theta), 0.0)


def _reaction_label(index: int, reaction) -> str:
    """How messages name a reaction: its name, else ``#k (the reaction as written)``, 1-based."""
    return reaction.name or f"#{index + 1} ({reaction.describe()})"


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
    label = _reaction_label(i, r)
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
    names = set() if callable(getattr(r.law, "law", None)) else symbols(r.law.rate if mass_action else r.law.law)
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
        idx = {s: i for i, s in enumerate(self.species)}
        nu = np.zeros((len(self.reactions), len(self.species)), dtype=np.int64)
        for j, r in enumerate(self.reactions):
            for s, n in r.reactants.items():
                nu[j, idx[s]] -= n
            for s, n in r.products.items():
                nu[j, idx[s]] += n
        return nu

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

    def describe(self) -> str:
        """The network in the reaction language (see :func:`diffssa.io.language.format_network`)."""
        from .io.language import format_network

        return format_network(self)

    # -------------------------------------------------------------- compiling
    def compile(self) -> CompiledNetwork:
        """Stoichiometry and a vectorised propensity function ``a(x (S,), theta (P,)) -> (R,)``."""
        if not self._compiled:
            self._compiled.append(_compile(self))
        return self._compiled[0]


def _compile(net: ReactionNetwork) -> CompiledNetwork:
    species = net.state_names
    params = net.parameter_names
    s_idx = {s: i for i, s in enumerate(species)}
    mass_action = [j for j, r in enumerate(net.reactions) if isinstance(r.law, MassAction)]
    custom = [j for j, r in enumerate(net.reactions) if not isinstance(r.law, MassAction)]
    order = np.argsort(np.array(mass_action + custom, dtype=np.int64)).astype(np.int32)  # int32: also under x64

    def reactant_table(rows):
        """(len(rows), width) species indices and coefficients of the reactants, zero-padded."""
        width = max([len(net.reactions[j].reactants) for j in rows] + [1])
        index = np.zeros((len(rows), width), dtype=np.int32)
        count = np.zeros((len(rows), width), dtype=np.int32)
        for row, j in enumerate(rows):
            for col, (s, n) in enumerate(net.reactions[j].reactants.items()):
                index[row, col], count[row, col] = s_idx[s], n
        return index, count

    idx, coef = reactant_table(mass_action)
    max_coef = int(coef.max()) if coef.size else 0
    inv_factorial = np.array([1.0 / math.factorial(int(n)) for n in coef.ravel()], dtype=np.float32).reshape(coef.shape)
    orders = coef.sum(axis=1)
    volume_factor = np.power(net.volume, 1.0 - orders).astype(np.float32)
    rate_exprs = [net.reactions[j].law.rate for j in mass_action]
    simple_rates = all(isinstance(e, Sym) for e in rate_exprs)
    rate_index = np.array([params.index(e.name) for e in rate_exprs], dtype=np.int32) if simple_rates else None
    custom_laws = [net.reactions[j].law.law for j in custom]
    custom_idx, custom_need = reactant_table(custom)

    def rate_constants(theta):
        if simple_rates:
            k = theta[rate_index]
        else:
            env_p = {p: theta[i] for i, p in enumerate(params)}
            k = jnp.stack([jnp.asarray(evaluate(e, env_p), dtype=theta.dtype) for e in rate_exprs])
        return k * volume_factor

    def count_factors(x):
        """(Rm,) prod_s C(x_s, n_s) of the mass-action reactions."""
        xr = x[idx]  # (Rm, width)
        comb = jnp.ones_like(xr)
        for i in range(max_coef):  # falling factorial x (x-1) ... (x-n+1): >= 0 for counts x >= 0
            comb = comb * jnp.where(coef > i, xr - i, 1.0)
        return jnp.prod(comb * inv_factorial, axis=1)

    def custom_values(x, theta):
        env_p = {p: theta[i] for i, p in enumerate(params)}
        env_x = {s: x[i] for i, s in enumerate(species)}
        values = []
        for law in custom_laws:
            v = law(env_x, env_p) if callable(law) else evaluate(law, {**env_x, **env_p})
            values.append(jnp.broadcast_to(jnp.asarray(v, dtype=x.dtype), ()))
        # a custom law never fires without its reactants (counts cannot go negative)
        return jnp.where(jnp.all(x[custom_idx] >= custom_need, axis=1), jnp.stack(values), 0.0)

    def in_reaction_order(parts):
        a = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
        return a[order] if custom and mass_action else a

    def laws(x, theta):
        parts = [rate_constants(theta) * count_factors(x)] if mass_action else []
        return in_reaction_order(parts + ([custom_values(x, theta)] if custom else []))

    def intensities(x, a):
        if not mass_action:
            return a
        return a.at[np.asarray(mass_action, dtype=np.int32)].set(volume_factor * count_factors(x))

    labels = tuple(_reaction_label(j, r) for j, r in enumerate(net.reactions))
    stoichiometry = np.zeros((len(net.reactions), len(species)), dtype=np.float32)
    stoichiometry[:, :len(net.species)] = net.stoichiometry  # variables: no reaction changes them
    return CompiledNetwork(species, params, stoichiometry, laws, np.array(mass_action, dtype=np.int32),
                           rate_constants, labels, net.events, intensities,
                           tuple(_parameters_read(r, params) for r in net.reactions), {}, len(net.species))


def _parameters_read(reaction: Reaction, params: tuple[str, ...]) -> frozenset[str]:
    """The parameters a reaction's kinetic law reads (all of them for a callable law)."""
    law = reaction.law.rate if isinstance(reaction.law, MassAction) else reaction.law.law
    if callable(law):
        return frozenset(params)
    return frozenset(symbols(law)) & frozenset(params)
