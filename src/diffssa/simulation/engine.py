"""The direct-method engine: one step of one trajectory, and the batch runner built on it.

One step function (:func:`make_step`) serves every estimator: the estimator's clock (the direct
method's, or a thinning clock) draws the pending event, and its hooks (:class:`~diffssa.estimators.
Estimator`) choose the state change and keep their own state. The drivers in
:mod:`~diffssa.simulation.drivers` run it over a batch (an early-exit while loop, or a rematerialised
scan that derivatives flow through).

Recording: each iteration draws the next event time ``t_next`` of the current state (a pure function
of the trajectory key, the event counter and the state, so it is the same until the event fires).
If ``t_next`` lies beyond the next grid time ``g`` the state is recorded at ``g`` (the state after the
last event at or before ``g``); otherwise the event fires. A trajectory whose budget of ``max_steps``
events runs out before its grid is full is flagged ``exhausted`` and its unreached grid rows are NaN.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..compiled import CompiledNetwork
from ..estimators import Choice, Estimator, StepView
from ..rng import uniforms
from .drivers import jit_runner, recorded_states, run_loop
from .events import CompiledEvents, compile_events

__all__ = ["Carry", "initial_carry", "make_step", "make_core", "build_runner", "reaction_index", "checked_propensities",
           "invalid_rate_constants", "problem_labels", "flag", "flag_counts", "exact_count_limit"]


class Carry(NamedTuple):
    """One trajectory's state in the loop: the fields every engine has, and the engine's and the
    estimator's own state (pytrees, ``()`` where there is none)."""

    x: jax.Array  # (S,) counts
    t: jax.Array  # () current time
    n: jax.Array  # () events fired
    r: jax.Array  # () next grid row to record
    buf: jax.Array  # (T, S) recorded states
    key: jax.Array  # (2,) uint32 Threefry key of the trajectory
    done: jax.Array  # (Et,) time events already applied
    trig: jax.Array  # (Es,) state-event trigger values
    invalid: jax.Array  # () the first problem met (problem_labels: 1-based code), 0 if none
    engine: Any  # the engine's state (next-reaction: time left and firings per channel)
    estimator: Any  # the estimator's state


def initial_carry(x0, keys, n_grid: int, *, invalid, done=None, trig=None, engine=(), estimator=()) -> Carry:
    """The batch's carry at time 0 (B trajectories)."""
    batch, n_species = x0.shape
    return Carry(
        x=x0,
        t=jnp.zeros((batch,), x0.dtype),
        n=jnp.zeros((batch,), jnp.int32),
        r=jnp.zeros((batch,), jnp.int32),
        buf=jnp.zeros((batch, n_grid, n_species), x0.dtype),
        key=keys,
        done=jnp.zeros((batch, 0), bool) if done is None else done,
        trig=jnp.zeros((batch, 0), bool) if trig is None else trig,
        invalid=invalid,
        engine=engine,
        estimator=estimator,
    )


def problem_labels(compiled: CompiledNetwork) -> tuple[tuple[str, str], ...]:
    """``(kind, label)`` of each problem code a trajectory can be flagged with (code ``i + 1``): a
    reaction whose law was negative or not finite (``"reaction"``), an event assignment that did not
    give a count (``"assignment"``), a species that reached the largest count kept exactly in the
    state's float type (``"count"``)."""
    events = compile_events(compiled.events, compiled.species, compiled.parameters, compiled.n_counts)
    return (tuple(("reaction", r) for r in compiled.reactions)
            + tuple(("assignment", a) for a in events.assignment_labels)
            + tuple(("count", s) for s in compiled.species[:compiled.n_counts]))


def exact_count_limit(dtype) -> float:
    """The count from which ``+ 1`` may be lost in ``dtype`` (2**24 for float32, 2**53 for float64)."""
    return float(2 ** (jnp.finfo(dtype).nmant + 1))


def flag(invalid, condition, code):
    """``invalid`` with ``code`` where ``condition`` holds and no problem was flagged before."""
    return jnp.where((invalid == 0) & condition, code, invalid).astype(invalid.dtype)


def flag_counts(compiled: CompiledNetwork, n_assignments: int, invalid, x):
    """``invalid`` flagged (code of the first such species) if a count reached the exact limit of its type."""
    largest = jnp.argmax(x[:compiled.n_counts])  # the species that reached it, if one did
    return flag(invalid, x[largest] >= exact_count_limit(x.dtype), len(compiled.reactions) + n_assignments + 1 + largest)


def invalid_rate_constants(compiled: CompiledNetwork, theta):
    """(B,) int32 for theta (B, P): 1 + the first mass-action reaction whose rate constant is negative
    or non-finite, else 0: the trajectories' initial ``invalid``. A mass-action law can be invalid only
    through its rate constant, so it is checked here, once per call, and not at every step."""
    if compiled.mass_action.size == 0:
        return jnp.zeros(theta.shape[:1], jnp.int32)
    k = jax.vmap(compiled.rate_constants)(theta)
    ok = (k >= 0) & jnp.isfinite(k)
    first_bad = jnp.asarray(compiled.mass_action)[jnp.argmin(ok, axis=1)] + 1
    return jnp.where(jnp.all(ok, axis=1), 0, first_bad).astype(jnp.int32)


def checked_propensities(compiled: CompiledNetwork, x, theta, invalid, active, smooth_absent: bool = False):
    """``(a, invalid)``: (R,) propensities at ``x`` (negative or non-finite laws read as 0) and
    ``invalid`` updated: 1 + the first reaction whose law is negative or non-finite, if none was
    before. Mass-action rate constants are checked once, by :func:`invalid_rate_constants`: a network
    of mass-action reactions only is not checked here. ``smooth_absent``: a law at 0 for want of its
    reactants keeps its derivative in the state (``compiled.laws``)."""
    laws = compiled.laws(x, theta, smooth_absent)
    if compiled.mass_action.size == laws.shape[0]:
        return jnp.where((laws >= 0) if smooth_absent else (laws > 0), laws, 0.0), invalid
    ok = (laws >= 0) & jnp.isfinite(laws)
    first_bad = jnp.argmin(ok).astype(invalid.dtype) + 1
    invalid = jnp.where((invalid == 0) & active & ~jnp.all(ok), first_bad, invalid)
    return jnp.where(ok, laws, 0.0), invalid


def reaction_index(a, cum, target, null_event: bool):
    """The event whose slice of ``[0, a0)`` (or of ``[0, L)``, thinning) holds ``target``: an int32 index.

    ``a``: (R,) propensities (>= 0); ``cum``: their cumulative sum; ``target``: ``u * a0`` (direct) or
    ``u * L`` (thinning clock with bound ``L``), ``u`` uniform on [0, 1). The first ``j`` with
    ``cum_j > target``, so a reaction with zero propensity is never chosen (also at ``u = 0``). Past
    the end is the null event ``R`` with ``null_event`` (thinning); otherwise only rounding
    (``u * a0`` rounded up to ``a0``) gets there, and the last reaction with positive propensity is taken.
    """
    index = jnp.sum(cum <= target).astype(jnp.int32)
    if null_event:
        return index
    last_positive = a.shape[0] - 1 - jnp.argmax((a > 0)[::-1])
    return jnp.minimum(index, last_positive.astype(jnp.int32))


def make_step(compiled: CompiledNetwork, events: CompiledEvents, grid, max_steps: int, estimator: Estimator):
    """Single-trajectory step ``(carry, theta) -> (carry, stuck)``.

    One iteration does one of: apply a time event that comes before the next reaction and grid time;
    or record the next grid row and/or fire the next reaction (a null event for a thinning clock).
    """
    nu = jnp.asarray(compiled.stoichiometry)
    n_reactions, n_species = nu.shape
    nu_null = jnp.concatenate([nu, jnp.zeros((1, n_species), nu.dtype)])
    n_grid = grid.shape[0]
    n_assignments = len(events.assignment_labels)
    factor = estimator.thinning_factor
    thinning = factor is not None

    def step(c: Carry, theta):
        active = c.r < n_grid
        row = jnp.minimum(c.r, n_grid - 1)
        g = grid[row]
        a, invalid = checked_propensities(compiled, c.x, theta, c.invalid, active, estimator.smooth_absent)
        cum = jnp.cumsum(a)  # exactly monotone for non-negative propensities
        a0 = cum[-1]
        u = uniforms(c.key, c.n, 0, 2)
        bound = jax.lax.stop_gradient(factor * a0) if thinning else a0
        positive = bound > 0
        safe_bound = jnp.where(positive, bound, 1.0)
        rate = safe_bound if estimator.reparameterised else jax.lax.stop_gradient(safe_bound)
        tau = jnp.where(positive, -jnp.log1p(-u[0]) / rate, jnp.inf)
        index = reaction_index(a, cum, u[1] * jax.lax.stop_gradient(safe_bound), null_event=thinning)
        probs = None
        if estimator.needs_probs:
            probs = a / safe_bound
            if thinning:
                probs = jnp.concatenate([probs, (1.0 - a0 / safe_bound)[None]])
        delta, index = estimator.transition(Choice(probs, index, lambda size: uniforms(c.key, c.n, 1, size), nu),
                                            nu_null)

        if events.n_time:
            pending = jnp.where(c.done, jnp.inf, events.times(theta))
            which = jnp.argmin(pending)
            t_event = pending[which]
        else:
            t_event = jnp.inf
        # Compare waiting times with time differences: t + tau can round to t in float32.
        timed = active & (t_event - c.t < tau) & (t_event <= g)
        # Record row r if the next reaction comes after grid time g; the reaction may then still fire
        # in the same iteration if it comes before the following grid time (and any time event).
        record = active & ~timed & (tau > g - c.t)
        r_next = c.r + record.astype(c.r.dtype)
        limit = jnp.minimum(grid[jnp.minimum(r_next, n_grid - 1)], t_event)
        due = ~timed & (r_next < n_grid) & (tau <= limit - c.t)
        fire = due & (c.n < max_steps)
        view = StepView(x=c.x, t=c.t, theta=theta, a=a, a0=a0, tau=tau, index=index, fire=fire, record=record,
                        timed=timed, row=row, g=g, t_event=t_event, finishing=record & (r_next == n_grid),
                        t_end=grid[n_grid - 1])
        # Writing to an out-of-range row (dropped) when not recording keeps the update in place.
        buf = c.buf.at[jnp.where(record, row, n_grid)].set(estimator.record(c.estimator, view, delta), mode="drop")
        x = jnp.where(fire, c.x + delta, c.x)
        t = jnp.where(fire, c.t + tau, c.t)
        done, trig = c.done, c.trig
        if events.n_time:
            mask = jax.nn.one_hot(which, events.n_time, dtype=bool) & timed
            x, bad = events.apply_time(mask, x, theta, t_event)
            invalid = flag(invalid, bad > 0, n_reactions + bad)
            t = jnp.where(timed, t_event, t)
            done = done | mask
        if events.n_state:
            changed = fire | timed
            now = events.triggers(x, theta, t)
            x, bad = events.apply_state(changed & now & ~c.trig, x, theta, t)
            invalid = flag(invalid, bad > 0, n_reactions + bad)
            trig = jnp.where(changed, events.triggers(x, theta, t), c.trig)
        invalid = flag_counts(compiled, n_assignments, invalid, x)
        new = c._replace(x=x, t=t, n=c.n + (fire | timed).astype(c.n.dtype), r=r_next, buf=buf, done=done, trig=trig,
                         invalid=invalid, estimator=estimator.update(c.estimator, view, delta))
        return new, due & ~fire

    return step


def initial_events(events: CompiledEvents, x, theta, n_reactions: int):
    """Events at time 0: triggers already true whose value before time 0 was false fire now.
    ``(x, done, trig, invalid)``: ``invalid`` the problem code of an assignment that gave no count."""
    t0 = jnp.zeros((), x.dtype)
    done = jnp.zeros((events.n_time,), bool)
    invalid = jnp.zeros((), jnp.int32)
    if events.n_time:
        due = events.times(theta) <= 0
        x, bad = events.apply_time(due & ~jnp.array(events.time_initial), x, theta, t0)
        invalid = flag(invalid, bad > 0, n_reactions + bad)
        done = due
    trig = jnp.zeros((events.n_state,), bool)
    if events.n_state:
        now = events.triggers(x, theta, t0)
        x, bad = events.apply_state(now & ~jnp.array(events.state_initial), x, theta, t0)
        invalid = flag(invalid, bad > 0, n_reactions + bad)
        trig = events.triggers(x, theta, t0)
    return x, done, trig, invalid


def make_core(compiled: CompiledNetwork, n_grid: int, max_steps: int, estimator: Estimator,
              differentiable: bool = False, chunk: int = 0):
    """``core(grid, theta (B,P), x0 (B,S), keys (B,2), state0) -> (states, exhausted, events, invalid,
    state)`` on one device, not jitted: ``state0`` / ``state`` the estimator's per-trajectory state
    (B, ...) at the start (``None``: its :meth:`~Estimator.init`) and the end; ``invalid`` (B,): 1 + the
    first reaction met with a negative or non-finite law, else 0. ``differentiable``: the
    rematerialised scan driver (derivatives flow through it) instead of the early-exit while loop."""
    events = compile_events(compiled.events, compiled.species, compiled.parameters, compiled.n_counts)
    n_reactions = len(compiled.reactions)

    def core(grid, theta, x0, keys, state0):
        step = jax.vmap(make_step(compiled, events, grid, max_steps, estimator))
        x0, done, trig, invalid = jax.vmap(lambda x, th: initial_events(events, x, th, n_reactions))(x0, theta)
        if state0 is None:
            state0 = jax.vmap(lambda _: estimator.init(x0.shape[1], n_grid))(x0)
        invalid = jnp.where(invalid > 0, invalid, invalid_rate_constants(compiled, theta))
        carry = initial_carry(x0, keys, n_grid, done=done, trig=trig, invalid=invalid, estimator=state0)
        carry = run_loop(step, carry, theta, n_grid, max_steps, differentiable, chunk)
        states, exhausted = recorded_states(carry, n_grid)
        return states, exhausted, carry.n, carry.invalid, carry.estimator

    return core


def build_runner(compiled: CompiledNetwork, n_grid: int, max_steps: int, estimator: Estimator,
                 differentiable: bool, chunk: int, devices: tuple):
    """:func:`make_core` jitted, with the batch split over ``devices`` and, on the differentiable path,
    cut in rematerialised slices of ``BATCH_SLICE`` trajectories."""
    return jit_runner(make_core(compiled, n_grid, max_steps, estimator, differentiable, chunk), differentiable, devices)


