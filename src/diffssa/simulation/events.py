"""Discrete events compiled for the simulator: triggers on time, triggers on species.

A time event has a trigger ``time >= c`` (or ``>``, or the mirrored ``c <= time``) with ``c`` an
expression of parameters: it fires exactly at ``t = c``. A state event has a trigger on species and
parameters only: it fires at the instant a reaction makes it turn from false to true (species only
change at reactions, so this is exact). Assignments are evaluated with the values just before the
event, simultaneous events in the order they were declared. Cascades (an event's assignment
triggering another event at the same instant) are not followed.

A species must be assigned a whole number >= 0 (values within float rounding of one are rounded): an
assignment that computes anything else is not applied, and the trajectory is flagged with the
assignment's code (1-based, in :attr:`CompiledEvents.assignment_labels`) so that the simulator can
name the event and species. Variables take the assigned value as it is.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from ..expressions import Call, Expr, Sym, evaluate, symbols, to_string
from ..reactions import TIME, Event

__all__ = ["CompiledEvents", "compile_events"]


class CompiledEvents(NamedTuple):
    """Events split by trigger kind; all functions are pure JAX of one trajectory.

    ``times(theta) -> (Et,)`` firing times of the time events.
    ``triggers(x, theta, t) -> (Es,)`` boolean values of the state triggers.
    ``apply_time(mask (Et,), x, theta, t) -> x`` and ``apply_state(mask (Es,), x, theta, t) -> x``.
    Both appliers return ``(x, bad)``: ``bad`` () int32 is 0, or 1 + the index in
    ``assignment_labels`` of the first species assignment that did not give a whole number >= 0.
    ``time_initial`` / ``state_initial``: the triggers' values before time 0.
    """

    n_time: int
    n_state: int
    times: object
    triggers: object
    apply_time: object
    apply_state: object
    time_initial: tuple[bool, ...]
    state_initial: tuple[bool, ...]
    assignment_labels: tuple[str, ...]  # "event E: assignment to species 'X'", time events first


def _time_threshold(trigger: Expr) -> Expr | None:
    """``c`` if the trigger is ``time >= c`` in one of its spellings, else None."""
    if not isinstance(trigger, Call) or len(trigger.args) != 2:
        return None
    a, b = trigger.args
    if trigger.fn in ("geq", "gt") and a == Sym(TIME) and TIME not in symbols(b):
        return b
    if trigger.fn in ("leq", "lt") and b == Sym(TIME) and TIME not in symbols(a):
        return a
    return None


def _count_assignments(events: Sequence[Event], species: tuple[str, ...], n_counts: int):
    """(event index, species) of every assignment to a count, in order."""
    return [(i, s) for i, ev in enumerate(events) for s in ev.assignments if species.index(s) < n_counts]


def _applier(events: Sequence[Event], species: tuple[str, ...], params: tuple[str, ...], n_counts: int,
             codes: dict[tuple[int, str], int]):
    """The applier of ``events``; ``codes``: (event index, species) of each count assignment -> its code."""

    def apply(mask, x, theta, t):
        env = _env(species, params, x, theta, t)
        out, bad = x, jnp.zeros((), jnp.int32)
        for i, ev in enumerate(events):
            new, wrong = out, jnp.zeros((), jnp.int32)
            for s, expr in ev.assignments.items():
                value = jnp.asarray(evaluate(expr, env), dtype=x.dtype)
                j = species.index(s)
                if j < n_counts:  # a count: a whole number >= 0 (float rounding forgiven), gradient kept
                    rounded = jnp.round(value)
                    ok = (rounded >= 0) & (jnp.abs(value - rounded) <= 1e-4 * jnp.maximum(1.0, rounded))
                    wrong = jnp.where((wrong == 0) & ~ok, codes[i, s], wrong)
                    value = jnp.where(ok, value + jax.lax.stop_gradient(rounded - value), out[j])
                new = new.at[j].set(value)
            out = jnp.where(mask[i], new, out)
            bad = jnp.where((bad == 0) & mask[i], wrong, bad)
        return out, bad

    return apply


def _env(species, params, x, theta, t):
    env = {s: x[i] for i, s in enumerate(species)}
    env.update({p: theta[i] for i, p in enumerate(params)})
    env[TIME] = t
    return env


def compile_events(events: Sequence[Event], species: tuple[str, ...], params: tuple[str, ...],
                   n_counts: int | None = None) -> CompiledEvents:
    """Classify and compile events; refuses triggers that mix time and species. ``species``: the names
    along the state vector, of which the first ``n_counts`` (default all) are counts."""
    n_counts = len(species) if n_counts is None else n_counts
    timed, thresholds, state = [], [], []
    for i, ev in enumerate(events):
        threshold = _time_threshold(ev.trigger)
        names = symbols(ev.trigger)
        if threshold is not None and not (symbols(threshold) & set(species)):
            timed.append(ev)
            thresholds.append(threshold)
        elif TIME not in names:
            state.append(ev)
        else:
            raise ValueError(
                f"event {ev.name or f'#{i + 1}'}: trigger {to_string(ev.trigger)!r} is not supported; "
                "use 'time >= c' (c a constant or parameter expression) or a condition on species alone"
            )

    def times(theta):
        env = {p: theta[i] for i, p in enumerate(params)}
        return jnp.stack([jnp.asarray(evaluate(c, env), dtype=theta.dtype) for c in thresholds]) if timed else jnp.zeros((0,))

    def triggers(x, theta, t):
        if not state:
            return jnp.zeros((0,), bool)
        env = _env(species, params, x, theta, t)
        return jnp.stack([jnp.asarray(evaluate(ev.trigger, env), dtype=bool) for ev in state])

    names = {id(ev): ev.name or f"#{i + 1}" for i, ev in enumerate(events)}
    assigned = [(group, pair) for group in (timed, state) for pair in _count_assignments(group, species, n_counts)]
    labels = tuple(f"event {names[id(group[i])]}: assignment to species {s!r}" for group, (i, s) in assigned)
    codes = [{pair: k + 1 for k, (g, pair) in enumerate(assigned) if g is group} for group in (timed, state)]
    return CompiledEvents(
        len(timed),
        len(state),
        times,
        triggers,
        _applier(timed, species, params, n_counts, codes[0]),
        _applier(state, species, params, n_counts, codes[1]),
        tuple(ev.initial_value for ev in timed),
        tuple(ev.initial_value for ev in state),
        labels,
    )
