"""Discrete events compiled for the simulator: triggers on time, triggers on species.

A time event has a trigger ``time >= c`` (or ``>``, or the mirrored ``c <= time``) with ``c`` an
expression of parameters: it fires exactly at ``t = c``. A state event has a trigger on species and
parameters only: it fires at the instant a reaction makes it turn from false to true (species only
change at reactions, so this is exact). Assignments are evaluated with the values just before the
event, simultaneous events in the order they were declared. Cascades (an event's assignment
triggering another event at the same instant) are not followed.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from .expressions import Call, Expr, Sym, evaluate, symbols, to_string
from .model import TIME, Event

__all__ = ["CompiledEvents", "compile_events"]


class CompiledEvents(NamedTuple):
    """Events split by trigger kind; all functions are pure JAX of one trajectory.

    ``times(theta) -> (Et,)`` firing times of the time events.
    ``triggers(x, theta, t) -> (Es,)`` boolean values of the state triggers.
    ``apply_time(mask (Et,), x, theta, t) -> x`` and ``apply_state(mask (Es,), x, theta, t) -> x``.
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


def _applier(events: Sequence[Event], species: tuple[str, ...], params: tuple[str, ...]):
    def apply(mask, x, theta, t):
        env = _env(species, params, x, theta, t)
        out = x
        for i, ev in enumerate(events):
            new = out
            for s, expr in ev.assignments.items():
                value = jnp.asarray(evaluate(expr, env), dtype=x.dtype)
                rounded = value + jax.lax.stop_gradient(jnp.round(value) - value)  # counts; gradient kept
                new = new.at[species.index(s)].set(rounded)
            out = jnp.where(mask[i], new, out)
        return out

    return apply


def _env(species, params, x, theta, t):
    env = {s: x[i] for i, s in enumerate(species)}
    env.update({p: theta[i] for i, p in enumerate(params)})
    env[TIME] = t
    return env


def compile_events(events: Sequence[Event], species: tuple[str, ...], params: tuple[str, ...]) -> CompiledEvents:
    """Classify and compile events; refuses triggers that mix time and species."""
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

    return CompiledEvents(
        len(timed),
        len(state),
        times,
        triggers,
        _applier(timed, species, params),
        _applier(state, species, params),
        tuple(ev.initial_value for ev in timed),
        tuple(ev.initial_value for ev in state),
    )
