"""Gating schemes as reaction networks.

A gating scheme is a set of channel states (some open), transitions between them with rate constants,
and the agonist concentration. As a :class:`~diffssa.model.ReactionNetwork` every state is a species
whose count is the number of channels in that state (1 for a single-channel record, 2 in the
two-channel regime) and every transition ``i -> j`` is the first-order reaction ``S_i -> S_j`` with
mass-action rate ``k`` (``k * conc`` for a binding step; ``conc`` is a parameter of the network).

Units: rate constants in **1/s**, binding rate constants in **1/(uM s)**, concentrations in **uM**; the
network runs in **milliseconds** (its reactions carry the factor 1/1000), the time unit of dwell-time
records, so that simulated windows of tens to thousands of ms keep float32 event times accurate.

Rates may be expressions of the free rate constants (statistical factors such as ``3 * kon``, or rates
fixed by microscopic reversibility). A scheme is saved as JSON (:meth:`GatingScheme.to_json`) and loaded
with :func:`load_scheme`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ...expressions import (
    BinOp,
    Num,
    Sym,
    evaluate,
    parse_expression,
    substitute,
    symbols,
)
from ...kinetics import MassAction
from ...model import ReactionNetwork
from ...reactions import Reaction

__all__ = ["Transition", "GatingScheme", "load_scheme", "flip_scheme", "linear_scheme", "pair_scheme", "FORMAT"]

FORMAT = "diffssa-gating-scheme/1"


_PARSED: dict[str, object] = {}


def _parsed(text: str):
    if text not in _PARSED:
        _PARSED[text] = parse_expression(text)
    return _PARSED[text]


@dataclass(frozen=True)
class Transition:
    """``source -> target`` at ``rate`` (an expression of rate constants, 1/s or 1/(uM s) if ``binding``)."""

    source: str
    target: str
    rate: str
    binding: bool = False


@dataclass(frozen=True)
class GatingScheme:
    """A Markov gating scheme with named free rate constants (``rates``) and derived ones (``derived``)."""

    name: str
    states: tuple[str, ...]
    open_states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    rates: Mapping[str, float]
    derived: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    meta: Mapping[str, object] = field(default_factory=dict, compare=False)
    levels: Mapping[str, int] = field(default_factory=dict)  # open state -> open unit channels (default 1)

    def __post_init__(self):
        states = set(self.states)
        if len(states) != len(self.states):
            raise ValueError(f"scheme {self.name!r}: duplicate state names")
        if not self.open_states or not set(self.open_states) <= states or set(self.open_states) == states:
            raise ValueError(f"scheme {self.name!r}: open states must be a non-empty proper subset of the states")
        known = set(self.rates) | set(self.derived)
        earlier = set(self.rates)
        for name, expr in self.derived.items():  # a derived rate may use free rates and earlier derived ones
            unknown = symbols(parse_expression(expr)) - earlier
            if unknown:
                raise ValueError(f"scheme {self.name!r}: derived rate {name!r} uses unknown name {sorted(unknown)[0]!r}")
            earlier.add(name)
        for t in self.transitions:
            if t.source not in states or t.target not in states or t.source == t.target:
                raise ValueError(f"scheme {self.name!r}: bad transition {t.source!r} -> {t.target!r}")
            unknown = symbols(parse_expression(t.rate)) - known
            if unknown:
                raise ValueError(f"scheme {self.name!r}: transition {t.source} -> {t.target} uses unknown rate {sorted(unknown)[0]!r}")
        for k, v in self.rates.items():
            if not (math.isfinite(float(v)) and float(v) > 0):
                raise ValueError(f"scheme {self.name!r}: rate constant {k!r} must be positive, got {v!r}")
        for s, level in self.levels.items():
            if s not in self.open_states or int(level) != level or level < 1:
                raise ValueError(f"scheme {self.name!r}: level of {s!r} must be a whole number >= 1 of an open state, got {level!r}")

    # ------------------------------------------------------------------ views
    @property
    def is_open(self) -> np.ndarray:
        return np.array([s in self.open_states for s in self.states])

    @property
    def state_levels(self) -> np.ndarray:
        """(states,) int: open unit channels in each state (0 shut, 1 open, more for a scheme of several channels)."""
        return np.array([int(self.levels.get(s, 1)) if s in self.open_states else 0 for s in self.states])

    @property
    def unit_channels(self) -> int:
        """Unit channels one copy of the scheme stands for (1, or 2 for a :func:`pair_scheme`)."""
        return int(self.state_levels.max())

    def copies(self, channels: int) -> int:
        """How many independent copies of the scheme make a patch of ``channels`` unit channels."""
        if channels < 1 or channels % self.unit_channels:
            raise ValueError(f"scheme {self.name!r} stands for {self.unit_channels} channel(s); a patch of "
                             f"{channels} is not a whole number of copies")
        return channels // self.unit_channels

    def with_rates(self, rates: Mapping[str, float]) -> "GatingScheme":
        unknown = set(rates) - set(self.rates)
        if unknown:
            raise ValueError(f"unknown rate constant {sorted(unknown)[0]!r}; known: {', '.join(self.rates)}")
        return dataclasses.replace(self, rates={**self.rates, **{k: float(v) for k, v in rates.items()}})

    def _rate_expr(self, t: Transition):
        expanded = {}
        for k, v in self.derived.items():
            expanded[k] = substitute(parse_expression(v), expanded)
        return substitute(parse_expression(t.rate), expanded)

    def all_rates(self, rates: Mapping[str, float] | None = None) -> dict[str, float]:
        """Free and derived rate constants (1/s or 1/(uM s))."""
        out = {**{k: float(v) for k, v in self.rates.items()}, **{k: float(v) for k, v in dict(rates or {}).items()}}
        for name, expr in self.derived.items():
            out[name] = float(evaluate(_parsed(expr), out))
        return out

    # ------------------------------------------------------------ as a network
    def network(self, channels: int = 1, concentration: float = 1.0, start: str | None = None) -> ReactionNetwork:
        """The scheme as a reaction network in ms, with parameters ``rates`` and ``conc`` (uM).

        All ``channels`` start in ``start`` (default the first state).
        """
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        start = start or self.states[0]
        if start not in self.states:
            raise ValueError(f"unknown start state {start!r}")
        species = {s: (int(channels) if s == start else 0) for s in self.states}
        params = {**{k: float(v) for k, v in self.rates.items()}, "conc": float(concentration)}
        reactions = []
        for t in self.transitions:
            expr = BinOp("/", self._rate_expr(t), Num(1000.0))
            if t.binding:
                expr = BinOp("*", expr, Sym("conc"))
            reactions.append(Reaction({t.source: 1}, {t.target: 1}, MassAction(expr), f"{t.source}->{t.target}"))
        return ReactionNetwork(species, params, reactions, name=self.name)

    def q_matrix_jax(self, rates: Mapping[str, object], concentration):
        """One-channel generator (per ms) as a JAX array of the rate constants (differentiable)."""
        import jax.numpy as jnp

        env = dict(rates)
        for name, expr in self.derived.items():
            env[name] = evaluate(_parsed(expr), env)
        idx = {s: i for i, s in enumerate(self.states)}
        k = len(self.states)
        Q = jnp.zeros((k, k))
        for t in self.transitions:
            r = evaluate(_parsed(t.rate), env) / 1000.0
            if t.binding:
                r = r * concentration
            Q = Q.at[idx[t.source], idx[t.target]].add(r)
        return Q - jnp.diag(jnp.sum(Q, axis=1))

    def q_matrix(self, concentration: float, rates: Mapping[str, float] | None = None) -> np.ndarray:
        """One-channel generator (events per ms) in the order of ``states``."""
        values = self.all_rates(rates)
        idx = {s: i for i, s in enumerate(self.states)}
        Q = np.zeros((len(self.states), len(self.states)))
        for t in self.transitions:
            k = float(evaluate(_parsed(t.rate), values)) / 1000.0
            if t.binding:
                k *= float(concentration)
            Q[idx[t.source], idx[t.target]] += k
        np.fill_diagonal(Q, -Q.sum(axis=1))
        return Q

    def check_reversibility(self, concentration: float = 1.0, rates=None) -> float:
        """Largest relative violation of detailed balance at equilibrium (0 for a reversible scheme)."""
        from .qmatrix import pinf

        Q = self.q_matrix(concentration, rates)
        p = pinf(Q)
        flux = p[:, None] * Q
        np.fill_diagonal(flux, 0)
        scale = np.max(np.abs(flux))
        return float(np.max(np.abs(flux - flux.T)) / scale)

    # --------------------------------------------------------------- storage
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "units": {"rates": "1/s", "binding rates": "1/(uM s)", "concentration": "uM", "dwell times": "ms"},
            "states": list(self.states),
            "open_states": list(self.open_states),
            "transitions": [{"from": t.source, "to": t.target, "rate": t.rate, "binding": t.binding} for t in self.transitions],
            "rates": {k: float(v) for k, v in self.rates.items()},
            "derived": dict(self.derived),
            **({"levels": {k: int(v) for k, v in self.levels.items()}} if self.levels else {}),
            **({"meta": dict(self.meta)} if self.meta else {}),
        }

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def scheme_from_dict(data: Mapping, source: str = "model") -> GatingScheme:
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValueError(f"{source}: not a gating scheme (expected \"format\": \"{FORMAT}\")")
    try:
        return GatingScheme(
            name=str(data["name"]),
            states=tuple(data["states"]),
            open_states=tuple(data["open_states"]),
            transitions=tuple(Transition(t["from"], t["to"], str(t["rate"]), bool(t.get("binding", False))) for t in data["transitions"]),
            rates={k: float(v) for k, v in data["rates"].items()},
            derived=dict(data.get("derived", {})),
            description=str(data.get("description", "")),
            meta=dict(data.get("meta", {})),
            levels={k: int(v) for k, v in data.get("levels", {}).items()},
        )
    except KeyError as err:
        raise ValueError(f"{source}: missing field {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None


def load_scheme(path) -> GatingScheme:
    """Load a gating scheme saved with :meth:`GatingScheme.to_json` (ValueError naming the file on bad input)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None
    return scheme_from_dict(data, str(path))


def flip_scheme(sites: int = 3, rates: Mapping[str, float] | None = None, name: str | None = None,
                second_open: bool = False) -> GatingScheme:
    """The "flip" scheme of Burzomato et al. (2004) with ``sites`` equivalent binding sites.

    States: resting ``R``, ``A1R`` .. ``AnR``; flipped (pre-open, shut) ``A1F`` .. ``AnF``; open ``A1O`` ..
    ``AnO``. Binding to resting and flipped receptors with independent-site statistical factors
    (``kon``/``koff`` resting, ``kfon``/``kfoff`` flipped); flipping ``AiR -> AiF`` at ``fi``,
    unflipping ``gi``; opening ``AiF -> AiO`` at ``bi``, shutting ``ai``. Microscopic reversibility of the
    cycles ``AiR - AiF - A(i+1)F - A(i+1)R`` fixes ``f2 .. fn`` (derived rates).

    ``second_open``: every open state ``AiO`` also leads to a second open state ``AiO2`` (same
    conductance, a dead end: no new cycle) at ``p``, back at ``q``, the same two rates for every ``i``.
    It lengthens openings without changing the flip mechanism (2 more free rates).
    """
    n = int(sites)
    if n < 1:
        raise ValueError("sites must be >= 1")
    states = ["R"] + [f"A{i}R" for i in range(1, n + 1)] + [f"A{i}F" for i in range(1, n + 1)] + [f"A{i}O" for i in range(1, n + 1)]
    opens = [f"A{i}O" for i in range(1, n + 1)]
    T = []
    for i in range(n):  # resting binding A(i)R -> A(i+1)R
        src = "R" if i == 0 else f"A{i}R"
        T.append(Transition(src, f"A{i + 1}R", f"{n - i} * kon", True))
        T.append(Transition(f"A{i + 1}R", src, f"{i + 1} * koff"))
    for i in range(1, n):  # flipped binding A(i)F -> A(i+1)F
        T.append(Transition(f"A{i}F", f"A{i + 1}F", f"{n - i} * kfon", True))
        T.append(Transition(f"A{i + 1}F", f"A{i}F", f"{i + 1} * kfoff"))
    derived = {}
    for i in range(1, n + 1):
        f = f"f{i}"
        if i > 1:
            # cycle A(i-1)R -> A(i-1)F -> AiF -> AiR -> A(i-1)R: f(i-1) kfon g(i) koff = g(i-1) kfoff f(i) kon
            derived[f] = f"f{i - 1} * kfon * koff * g{i} / (g{i - 1} * kfoff * kon)"
        T.append(Transition(f"A{i}R", f"A{i}F", f))
        T.append(Transition(f"A{i}F", f"A{i}R", f"g{i}"))
        T.append(Transition(f"A{i}F", f"A{i}O", f"b{i}"))
        T.append(Transition(f"A{i}O", f"A{i}F", f"a{i}"))
    default = {"kon": 1.0, "koff": 500.0, "kfon": 10.0, "kfoff": 100.0}
    for i in range(1, n + 1):
        default.update({f"g{i}": 2000.0, f"b{i}": 10000.0 * i, f"a{i}": 1000.0})
    default["f1"] = 50.0
    if second_open:
        for i in range(1, n + 1):
            states.append(f"A{i}O2")
            opens.append(f"A{i}O2")
            T.append(Transition(f"A{i}O", f"A{i}O2", "p"))
            T.append(Transition(f"A{i}O2", f"A{i}O", "q"))
        default.update({"p": 300.0, "q": 2000.0})
    free = {k: v for k, v in default.items() if k not in derived}
    if rates:
        free.update({k: float(v) for k, v in rates.items() if k in free})
    description = f"flip scheme with {n} binding sites (Burzomato et al. 2004)"
    if second_open:
        description += ", a second open state after every open state"
    return GatingScheme(name or (f"flip-{n}-2open" if second_open else f"flip-{n}"), tuple(states), tuple(opens),
                        tuple(T), free, derived, description)


def linear_scheme(states: Sequence[str], open_states: Sequence[str], rates: Mapping[str, float], name: str = "linear") -> GatingScheme:
    """A chain ``s0 <-> s1 <-> ...`` with rate constants ``k{i}{j}`` (``k01`` for s0 -> s1); no binding."""
    T = []
    for i in range(len(states) - 1):
        T.append(Transition(states[i], states[i + 1], f"k{i}{i + 1}"))
        T.append(Transition(states[i + 1], states[i], f"k{i + 1}{i}"))
    return GatingScheme(name, tuple(states), tuple(open_states), tuple(T), dict(rates))


def pair_scheme(a: GatingScheme, b: GatingScheme, name: str | None = None) -> GatingScheme:
    """Two different, independent channels as one scheme: states ``{sa}_{sb}`` (the product chain).

    Rate constants are renamed ``a_k`` and ``b_k``; each transition of ``a`` happens in every state of
    ``b`` and vice versa; a state's level is the number of open channels (0, 1, 2). Use it as a scheme of
    2 unit channels (:attr:`GatingScheme.unit_channels`): a two-channel patch is one copy of it.
    """
    def renamed(prefix: str, scheme: GatingScheme):
        known = set(scheme.rates) | set(scheme.derived)
        def rename(expr: str) -> str:
            return re.sub(r"[A-Za-z_][A-Za-z_0-9]*", lambda m: prefix + m.group(0) if m.group(0) in known else m.group(0), expr)
        return ({prefix + k: v for k, v in scheme.rates.items()},
                {prefix + k: rename(v) for k, v in scheme.derived.items()}, rename)

    rates_a, derived_a, rename_a = renamed("a_", a)
    rates_b, derived_b, rename_b = renamed("b_", b)
    states = tuple(f"{sa}_{sb}" for sa in a.states for sb in b.states)
    T = [Transition(f"{t.source}_{sb}", f"{t.target}_{sb}", rename_a(t.rate), t.binding) for t in a.transitions for sb in b.states]
    T += [Transition(f"{sa}_{t.source}", f"{sa}_{t.target}", rename_b(t.rate), t.binding) for t in b.transitions for sa in a.states]
    level = {f"{sa}_{sb}": int(la) + int(lb) for sa, la in zip(a.states, a.state_levels) for sb, lb in zip(b.states, b.state_levels)}
    opens = tuple(s for s in states if level[s] > 0)
    return GatingScheme(name or f"pair({a.name}, {b.name})", states, opens, tuple(T), {**rates_a, **rates_b},
                        {**derived_a, **derived_b}, f"two independent channels: a = {a.name}, b = {b.name}",
                        levels={s: level[s] for s in opens if level[s] != 1})
