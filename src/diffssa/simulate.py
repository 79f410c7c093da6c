"""Exact stochastic simulation of a batch of trajectories, recorded on a time grid.

One step function serves two drivers:

* the forward-only fast path (``differentiable=False``): Gillespie's direct method in a
  ``lax.while_loop`` that stops as soon as every trajectory has filled its grid;
* the differentiable path: the clock and surrogate of an :class:`~diffssa.estimators.Estimator`
  in a ``lax.scan`` of fixed length ``max_steps + len(times)``, cut in chunks that are rematerialised
  in the backward pass (memory grows with the chunk, not with the number of steps) and skipped
  once every trajectory is finished.

Recording: each iteration draws the next event time ``t_next`` of the current state (a pure function
of the trajectory key, the event counter and the state, so it is the same until the event fires).
If ``t_next`` lies beyond the next grid time ``g`` the state is recorded at ``g`` (the state after the
last event at or before ``g``); otherwise the event fires. A trajectory whose budget of ``max_steps``
events runs out before its grid is full is flagged ``exhausted`` and its unreached grid rows are NaN.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32

from .events import CompiledEvents, compile_events
from .estimators import Estimator, choice_weights, get_estimator, straight_through
from .model import CompiledNetwork, ReactionNetwork

__all__ = ["Trajectories", "SimulationBudgetError", "simulate", "time_grid"]


UNROLL = 4  # forward-path steps per while-loop iteration (fewer loop-condition checks)
BATCH_SLICE = 10_000  # differentiable path: trajectories per rematerialised slice of the batch


class SimulationBudgetError(RuntimeError):
    """Raised (with ``on_exhausted="raise"``) when trajectories run out of their step budget."""


@jax.tree_util.register_pytree_node_class
class Trajectories:
    """Simulated trajectories on a time grid.

    Attributes
    ----------
    times: (T,) grid times.
    states: (B, T, S) species counts (float32) after the last event at or before each time.
    exhausted: (B,) True where the step budget ran out (those rows past the last reached time are NaN).
    events: (B,) events fired per trajectory (null events of a thinning clock included).
    species: species names, in the order of the last axis of ``states``.
    log_likelihood: (B, T) path log-likelihood up to each time, differentiable in the parameters
        (score-function estimator only, else None).
    """

    def __init__(self, times, states, exhausted, events, species, log_likelihood=None):
        self.times, self.states, self.exhausted, self.events = times, states, exhausted, events
        self.species = tuple(species)
        self.log_likelihood = log_likelihood

    def tree_flatten(self):
        return (self.times, self.states, self.exhausted, self.events, self.log_likelihood), self.species

    @classmethod
    def tree_unflatten(cls, species, leaves):
        times, states, exhausted, events, log_likelihood = leaves
        return cls(times, states, exhausted, events, species, log_likelihood)

    def __repr__(self):
        b, t, s = self.states.shape
        return f"Trajectories(runs={b}, times={t}, species={self.species})"

    def index(self, species: str) -> int:
        try:
            return self.species.index(species)
        except ValueError:
            raise ValueError(f"unknown species {species!r}; known: {', '.join(self.species)}") from None

    def __getitem__(self, species: str):
        """(B, T) counts of one species."""
        return self.states[..., self.index(species)]

    def mean(self):
        """(T, S) mean over runs."""
        return jnp.mean(self.states, axis=0)

    def sd(self):
        """(T, S) standard deviation over runs (n - 1 in the denominator)."""
        return jnp.std(self.states, axis=0, ddof=1 if self.states.shape[0] > 1 else 0)

    def summary_table(self) -> dict[str, np.ndarray]:
        """Columns ``time``, ``<species>-mean``, ``<species>-sd`` (the DSMTS layout)."""
        states = np.asarray(self.states, dtype=np.float64)
        mean, sd = states.mean(axis=0), states.std(axis=0, ddof=1 if states.shape[0] > 1 else 0)
        table = {"time": np.asarray(self.times)}
        for i, s in enumerate(self.species):
            table[f"{s}-mean"] = mean[:, i]
            table[f"{s}-sd"] = sd[:, i]
        return table

    def to_dataframe(self, summary: bool = True):
        """A pandas DataFrame: the summary table, or (``summary=False``) one row per run and time."""
        import pandas as pd

        if summary:
            return pd.DataFrame(self.summary_table())
        b, t, _ = self.states.shape
        states = np.asarray(self.states)
        frame = {"run": np.repeat(np.arange(b), t), "time": np.tile(np.asarray(self.times), b)}
        for i, s in enumerate(self.species):
            frame[s] = states[:, :, i].ravel()
        return pd.DataFrame(frame)

    def to_csv(self, path, summary: bool = True) -> None:
        """Write :meth:`to_dataframe` to ``path`` (no index column)."""
        self.to_dataframe(summary).to_csv(path, index=False)


def time_grid(t_end: float, points: int) -> np.ndarray:
    """``points + 1`` equally spaced times from 0 to ``t_end`` (both included)."""
    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be positive and finite, got {t_end!r}")
    if int(points) != points or points < 1:
        raise ValueError(f"points must be a positive integer, got {points!r}")
    return np.linspace(0.0, float(t_end), int(points) + 1, dtype=np.float32)


class _Carry(NamedTuple):
    """One trajectory's state in the loop, for every engine (direct method, its estimators, and the
    next-reaction method); fields an engine does not use have size 0."""

    x: jax.Array  # (S,) counts
    t: jax.Array  # () current time
    n: jax.Array  # () events fired
    r: jax.Array  # () next grid row to record
    buf: jax.Array  # (T, S) recorded states
    key: jax.Array  # (2,) uint32 Threefry key of the trajectory
    t_last: jax.Array  # (1,) time of the last event (relaxed estimator only, else (0,))
    dx_last: jax.Array  # (S,) change of the last event (relaxed estimator only, else (0,))
    done: jax.Array  # (Et,) time events already applied
    trig: jax.Array  # (Es,) state-event trigger values
    logl: jax.Array  # (1,) path log-likelihood so far (score-function estimator only, else (0,))
    logl_buf: jax.Array  # (T,) log-likelihood up to each grid time (score-function only, else (0,))
    invalid: jax.Array  # () 1 + the first reaction met with a negative or non-finite propensity; 0 if none
    remaining: jax.Array  # (R,) internal time left until each channel fires (next-reaction only, else (0,))
    fired: jax.Array  # (R,) firings of each channel (next-reaction only, else (0,))


def _initial_carry(x0, keys, n_grid: int, **fields) -> _Carry:
    """The batch's carry at time 0 (B trajectories): ``fields`` given, the others empty or zero."""
    batch, n_species = x0.shape
    empty = {name: jnp.zeros((batch, 0), x0.dtype) for name in ("t_last", "dx_last", "logl", "logl_buf", "remaining")}
    empty.update(done=jnp.zeros((batch, 0), bool), trig=jnp.zeros((batch, 0), bool),
                 fired=jnp.zeros((batch, 0), jnp.int32), invalid=jnp.zeros((batch,), jnp.int32))
    return _Carry(
        x=x0,
        t=jnp.zeros((batch,), x0.dtype),
        n=jnp.zeros((batch,), jnp.int32),
        r=jnp.zeros((batch,), jnp.int32),
        buf=jnp.zeros((batch, n_grid, n_species), x0.dtype),
        key=keys,
        **{**empty, **fields},
    )


def _uniforms(key, n, stream: int, size: int):
    """``size`` uniforms in [0, 1) for event ``n`` of a trajectory: one Threefry-2x32 block per pair.

    ``key``: the trajectory's (2,) uint32 Threefry key. The counter pairs ``(n, stream * 2**16 + i)``
    make every (event, stream, index) draw distinct, and the same draw for the same event counter,
    which is what lets a pending event be recomputed exactly in a later iteration.
    """
    pairs = -(-size // 2)
    counts = jnp.concatenate([
        jnp.full((pairs,), n, jnp.uint32),
        jnp.uint32(stream << 16) + jnp.arange(pairs, dtype=jnp.uint32),
    ])
    return bits_to_uniform(threefry_2x32(key, counts)[:size])


def bits_to_uniform(bits):
    """uint32 random bits -> float32 uniforms in [0, 1) (23 mantissa bits, as ``jax.random.uniform``)."""
    return jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0


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


def checked_propensities(compiled: CompiledNetwork, c, theta, active):
    """``(a, invalid)``: (R,) propensities at ``c.x`` (negative or non-finite laws read as 0) and the
    carry's ``invalid`` updated: 1 + the first reaction whose law is negative or non-finite, if none was
    before. Mass-action rate constants are checked once, by :func:`invalid_rate_constants`: a network
    of mass-action reactions only is not checked here."""
    laws = compiled.laws(c.x, theta)
    if compiled.mass_action.size == laws.shape[0]:
        return jnp.where(laws > 0, laws, 0.0), c.invalid
    ok = (laws >= 0) & jnp.isfinite(laws)
    first_bad = jnp.argmin(ok).astype(c.invalid.dtype) + 1
    invalid = jnp.where((c.invalid == 0) & active & ~jnp.all(ok), first_bad, c.invalid)
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


def _smooth_step(z, width):
    """Heaviside(z >= 0) forward, sigmoid(z / width) backward."""
    return straight_through((z >= 0).astype(z.dtype), jax.nn.sigmoid(z / width))


def _make_step(compiled: CompiledNetwork, events: CompiledEvents, grid, max_steps: int, estimator: Estimator | None):
    """Single-trajectory step ``(carry, theta) -> (carry, stuck)``; ``estimator=None`` is forward-only.

    One iteration does one of: apply a time event that comes before the next reaction and grid time;
    or record the next grid row and/or fire the next reaction (a null event for a thinning clock).
    """
    nu = jnp.asarray(compiled.stoichiometry)
    n_reactions, n_species = nu.shape
    nu_null = jnp.concatenate([nu, jnp.zeros((1, n_species), nu.dtype)])
    n_grid = grid.shape[0]
    thinning = estimator is not None and estimator.clock == "thinning"
    relaxed = estimator is not None and estimator.observation_width is not None
    score = estimator is not None and estimator.choice == "score-function"

    def step(c: _Carry, theta):
        active = c.r < n_grid
        row = jnp.minimum(c.r, n_grid - 1)
        g = grid[row]
        a, invalid = checked_propensities(compiled, c, theta, active)
        cum = jnp.cumsum(a)  # exactly monotone for non-negative propensities
        a0 = cum[-1]
        u = _uniforms(c.key, c.n, 0, 2)
        bound = jax.lax.stop_gradient(estimator.clock_factor * a0) if thinning else a0
        positive = bound > 0
        safe_bound = jnp.where(positive, bound, 1.0)
        clock = jax.lax.stop_gradient(safe_bound) if score else safe_bound
        tau = jnp.where(positive, -jnp.log1p(-u[0]) / clock, jnp.inf)
        t_next = c.t + tau
        index = reaction_index(a, cum, u[1] * jax.lax.stop_gradient(safe_bound), null_event=thinning)
        if estimator is None or score:
            delta = nu_null[index]
        else:
            probs = a / safe_bound
            if thinning:
                probs = jnp.concatenate([probs, (1.0 - a0 / safe_bound)[None]])
            noise = _uniforms(c.key, c.n, 1, probs.shape[0]) if estimator.choice == "gumbel-softmax" else None
            weights, index = choice_weights(estimator, probs, index, noise)
            delta = weights[:n_reactions] @ nu

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
        x_rec = c.x
        if relaxed:
            w = estimator.observation_width
            x_rec = (
                c.x
                + _smooth_step(g - t_next, w) * delta
                + (_smooth_step(g - c.t_last[0], w) - 1.0) * c.dx_last
            )
        # Writing to an out-of-range row (dropped) when not recording keeps the update in place.
        buf = c.buf.at[jnp.where(record, row, n_grid)].set(x_rec, mode="drop")
        logl, logl_buf = c.logl, c.logl_buf
        if score:  # log L = sum of log a_j at fired reactions - integral of a0 dt (gradient in theta only)
            logl_buf = logl_buf.at[jnp.where(record, row, n_grid)].set(logl[0] - a0 * (g - c.t), mode="drop")
            safe_log = jnp.log(jnp.where(fire, a[index], 1.0))
            elapsed = jnp.where(fire, tau, jnp.where(timed, t_event - c.t, 0.0))
            logl = logl + jnp.where(fire, safe_log, 0.0) - a0 * jax.lax.stop_gradient(elapsed)
        x = jnp.where(fire, c.x + delta, c.x)
        t = jnp.where(fire, t_next, c.t)
        done, trig = c.done, c.trig
        if events.n_time:
            mask = jax.nn.one_hot(which, events.n_time, dtype=bool) & timed
            x = events.apply_time(mask, x, theta, t_event)
            t = jnp.where(timed, t_event, t)
            done = done | mask
        if events.n_state:
            changed = fire | timed
            now = events.triggers(x, theta, t)
            x = events.apply_state(changed & now & ~c.trig, x, theta, t)
            trig = jnp.where(changed, events.triggers(x, theta, t), c.trig)
        new = _Carry(
            x=x,
            t=t,
            n=c.n + (fire | timed).astype(c.n.dtype),
            r=r_next,
            buf=buf,
            key=c.key,
            t_last=jnp.where(fire, t_next, c.t_last) if relaxed else c.t_last,
            dx_last=jnp.where(fire, delta, c.dx_last) if relaxed else c.dx_last,
            done=done,
            trig=trig,
            logl=logl,
            logl_buf=logl_buf,
            invalid=invalid,
            remaining=c.remaining,
            fired=c.fired,
        )
        return new, due & ~fire

    return step


def _initial_events(events: CompiledEvents, x, theta):
    """Events at time 0: triggers already true whose value before time 0 was false fire now."""
    t0 = jnp.zeros((), x.dtype)
    done = jnp.zeros((events.n_time,), bool)
    if events.n_time:
        due = events.times(theta) <= 0
        x = events.apply_time(due & ~jnp.array(events.time_initial), x, theta, t0)
        done = due
    trig = jnp.zeros((events.n_state,), bool)
    if events.n_state:
        now = events.triggers(x, theta, t0)
        x = events.apply_state(now & ~jnp.array(events.state_initial), x, theta, t0)
        trig = events.triggers(x, theta, t0)
    return x, done, trig


def _build_runner(compiled: CompiledNetwork, n_grid: int, max_steps: int, estimator: Estimator | None, chunk: int,
                  devices: tuple):
    """A jitted ``run(grid, theta (B,P), x0 (B,S), keys (B,)) -> (states, exhausted, events, log_likelihood,
    invalid)``; ``invalid`` (B,): 1 + the first reaction met with a negative or non-finite law, else 0."""

    events = compile_events(compiled.events, compiled.species, compiled.parameters)
    relaxed = estimator is not None and estimator.observation_width is not None
    score = estimator is not None and estimator.choice == "score-function"

    def core(grid, theta, x0, keys):
        step = jax.vmap(_make_step(compiled, events, grid, max_steps, estimator))
        batch, n_species = x0.shape
        x0, done, trig = jax.vmap(lambda x, th: _initial_events(events, x, th))(x0, theta)
        carry = _initial_carry(
            x0, keys, n_grid, done=done, trig=trig, invalid=invalid_rate_constants(compiled, theta),
            t_last=jnp.zeros((batch, 1 if relaxed else 0), x0.dtype),
            dx_last=jnp.zeros((batch, n_species if relaxed else 0), x0.dtype),
            logl=jnp.zeros((batch, 1 if score else 0), x0.dtype),
            logl_buf=jnp.zeros((batch, n_grid if score else 0), x0.dtype),
        )

        if estimator is None:
            carry = _forward_loop(step, carry, theta, n_grid)
        else:
            n_chunks = -(-(max_steps + n_grid) // chunk)

            @jax.checkpoint
            def run_chunk(state, theta):
                # Each step is rematerialised too: the backward pass of a chunk keeps only the carries.
                remat_step = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)

                def body(s, _):
                    return remat_step(s[0], theta), None

                return jax.lax.scan(body, state, None, length=chunk)[0]

            def outer(state, _):
                go = jnp.any(_running(*state, n_grid))
                return jax.lax.cond(go, run_chunk, lambda s, th: s, state, theta), None

            carry, stuck = jax.lax.scan(outer, (carry, jnp.zeros((batch,), bool)), None, length=n_chunks)[0]

        states, exhausted = _recorded_states(carry, n_grid)
        return states, exhausted, carry.n, (carry.logl_buf if score else None), carry.invalid

    if estimator is None:
        return jax.jit(_over_devices(core, devices))

    def run(grid, theta, x0, keys):
        """Differentiable path: slices of the batch, each rematerialised whole in the backward pass,
        so backward memory is that of one slice (at the cost of one more forward recomputation)."""
        batch = x0.shape[0]
        if batch <= BATCH_SLICE:
            return core(grid, theta, x0, keys)
        slices = -(-batch // BATCH_SLICE)
        padded = _pad_batch((theta, x0, keys), BATCH_SLICE)
        one = jax.checkpoint(lambda args: core(grid, *args))
        outs = jax.lax.map(one, tuple(a.reshape((slices, BATCH_SLICE) + a.shape[1:]) for a in padded))
        return jax.tree_util.tree_map(lambda a: a.reshape((slices * BATCH_SLICE,) + a.shape[2:])[:batch], outs)

    return jax.jit(_over_devices(run, devices))


def _pad_batch(arrays, multiple: int):
    """The (B, ...) ``arrays`` with their first row repeated up to a multiple of ``multiple`` rows
    (callers drop the results of the copies)."""
    pad = -arrays[0].shape[0] % multiple
    if not pad:
        return tuple(arrays)
    return tuple(jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) for a in arrays)


def _running(c, stuck, n_grid):
    """(B,) trajectories still to record a grid row and not stopped by their step budget."""
    return (c.r < n_grid) & ~stuck


def _forward_loop(step, carry, theta, n_grid):
    """Iterate the batched ``step`` in a ``while_loop`` until every trajectory is done or stuck."""

    def cond(state):
        return jnp.any(_running(*state, n_grid))

    def body(state):
        for _ in range(UNROLL):
            state = step(state[0], theta)
        return state

    return jax.lax.while_loop(cond, body, (carry, jnp.zeros(carry.r.shape, bool)))[0]


def _recorded_states(carry, n_grid):
    """``(states (B, T, S) with unreached rows NaN, exhausted (B,))`` from a finished carry."""
    unreached = jnp.arange(n_grid)[None, :] >= carry.r[:, None]
    return jnp.where(unreached[:, :, None], jnp.nan, carry.buf), carry.r < n_grid


def _over_devices(run, devices: tuple):
    """``run(grid, theta, x0, keys)`` with the batch split evenly over ``devices``.

    Each device simulates its share independently (its own early exit; no communication), so on a
    CPU with ``jax.config.update("jax_num_cpu_devices", cores)`` every core works, and on a machine
    with several accelerators every one does. With one device ``run`` is returned unchanged.
    """
    if len(devices) == 1:
        return run
    mesh = jax.sharding.Mesh(np.array(devices), ("runs",))
    spec = jax.sharding.PartitionSpec("runs")
    sharded = jax.shard_map(
        run, mesh=mesh, in_specs=(jax.sharding.PartitionSpec(), spec, spec, spec), out_specs=spec, check_vma=False
    )

    def split_run(grid, theta, x0, keys):
        outs = sharded(grid, *_pad_batch((theta, x0, keys), len(devices)))
        return jax.tree_util.tree_map(lambda a: a[: x0.shape[0]], outs)

    return split_run


def _parameter_matrix(network: ReactionNetwork, params, runs: int):
    """(B, P) parameter values: network defaults overridden by ``params`` (scalars or (B,) arrays)."""
    columns = []
    for name, value in network.parameter_values(params).items():
        value = jnp.asarray(value, dtype=jnp.float32)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, runs)):
            raise ValueError(f"parameter {name!r} must be a scalar or have shape ({runs},), got {value.shape}")
        if not isinstance(value, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(value))):
            raise ValueError(f"parameter {name!r} must be finite, got {np.asarray(value)}")
        columns.append(jnp.broadcast_to(value, (runs,)))
    if not columns:
        return jnp.zeros((runs, 0), jnp.float32)
    return jnp.stack(columns, axis=1)


def _initial_matrix(network: ReactionNetwork, initial, runs: int):
    if initial is None or isinstance(initial, Mapping):
        return jnp.broadcast_to(jnp.asarray(network.initial_state(initial)), (runs, len(network.species)))
    x0 = np.asarray(initial, dtype=np.float64)
    n_species = len(network.species)
    if x0.shape not in ((n_species,), (runs, n_species)):
        raise ValueError(f"initial state must have shape ({n_species},) or ({runs}, {n_species}), got {x0.shape}")
    if not (np.all(np.isfinite(x0)) and np.all(x0 >= 0) and np.all(x0 == np.round(x0))):
        raise ValueError("initial counts must be finite non-negative integers")
    return jnp.broadcast_to(jnp.asarray(x0, jnp.float32), (runs, n_species))


def _has_tracer(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _as_key(key):
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


def simulate(
    network: ReactionNetwork,
    times,
    *,
    key,
    runs: int = 1,
    params: Mapping[str, object] | None = None,
    initial=None,
    max_steps: int = 100_000,
    estimator: Estimator | str = "thinning",
    differentiable: bool | None = None,
    chunk: int | None = None,
    on_exhausted: str = "warn",
    method: str = "direct",
    devices=None,
) -> Trajectories:
    """Simulate ``runs`` exact trajectories of ``network`` and record them at ``times``.

    Parameters
    ----------
    times: (T,) non-decreasing observation times (>= 0); the simulation starts at time 0.
    key: a JAX PRNG key or an integer seed. Every random number comes from it.
    runs: number of trajectories B.
    params: parameter values overriding the network's (name -> scalar or (B,) array); may be JAX
        tracers, e.g. inside ``jax.grad``.
    initial: initial counts (name -> count mapping, (S,) or (B, S) array); default the network's.
    max_steps: budget of events per trajectory (null events of a thinning clock count).
    estimator: gradient surrogate (name or :class:`Estimator`) used when differentiable.
    differentiable: ``None`` (default) uses the differentiable path when ``params`` hold JAX tracers
        and the forward-only direct method otherwise.
    chunk: steps per rematerialised chunk of the differentiable path (default about sqrt of the
        number of iterations); backward memory grows with the chunk and the number of chunks.
    on_exhausted: ``"warn"``, ``"raise"`` or ``"ignore"`` when some trajectory runs out of budget.
    method: ``"direct"`` (default; also the differentiable path's clocks) or ``"next-reaction"``
        (forward only, no events): one random stream per reaction channel, so that simulations with
        the same key at different parameters share every channel's Poisson process
        (:mod:`diffssa.next_reaction`; the coupling that finite differences want).
    devices: the devices the batch is split over (default ``jax.local_devices()``; see
        :func:`diffssa.use_cpu_cores`); with a single one the batch is not split and runs where JAX
        places it. Pass one device where the results feed a host callback
        (``jax.pure_callback``) inside ``jit``: XLA's CPU collectives between the devices and the
        callback were seen to deadlock.
    """
    compiled = network.compile()
    grid = np.asarray(times, dtype=np.float32).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0) or np.any(np.diff(grid) < 0):
        raise ValueError("times must be a non-empty, finite, non-negative, non-decreasing sequence")
    if int(runs) != runs or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if on_exhausted not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_exhausted must be 'warn', 'raise' or 'ignore', got {on_exhausted!r}")
    if method not in ("direct", "next-reaction"):
        raise ValueError(f"method must be 'direct' or 'next-reaction', got {method!r}")
    runs, max_steps = int(runs), int(max_steps)
    theta = _parameter_matrix(network, params, runs)
    x0 = _initial_matrix(network, initial, runs)
    if differentiable is None:
        differentiable = _has_tracer(params)
    if method == "next-reaction":
        _check_next_reaction(network, compiled, differentiable)
    est = get_estimator(estimator) if differentiable else None
    if chunk is None:
        chunk = max(8, int(math.sqrt(max_steps + grid.size)))
    keys = jax.random.bits(_as_key(key), (runs, 2), jnp.uint32)  # one Threefry key per trajectory

    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    cache_key = (grid.size, max_steps, est, int(chunk) if est is not None else 0, method, devices)
    runner = compiled.cache.get(cache_key)
    if runner is None:
        if method == "next-reaction":
            from .next_reaction import build_next_reaction_runner

            runner = build_next_reaction_runner(compiled, grid.size, max_steps, devices)
        else:
            runner = _build_runner(compiled, grid.size, max_steps, est, int(chunk), devices)
        compiled.cache[cache_key] = runner
    states, exhausted, events, log_likelihood, invalid = runner(jnp.asarray(grid), theta, x0, keys)
    _check_laws(invalid, compiled.reactions)
    result = Trajectories(jnp.asarray(grid), states, exhausted, events, compiled.species, log_likelihood)
    _check_budget(exhausted, max_steps, on_exhausted)
    return result


def _check_next_reaction(network: ReactionNetwork, compiled: CompiledNetwork, differentiable: bool):
    from .next_reaction import MAX_CHANNELS

    if differentiable:
        raise ValueError("method='next-reaction' is forward only; gradients use method='direct' with an estimator")
    if network.events:
        raise ValueError(f"method='next-reaction' does not support events; network {network.name!r} has "
                         f"{len(network.events)}: use method='direct'")
    if compiled.stoichiometry.shape[0] > MAX_CHANNELS:
        raise ValueError(f"method='next-reaction' supports at most {MAX_CHANNELS} reactions, "
                         f"got {compiled.stoichiometry.shape[0]}")


def _report_invalid(counts, runs, reactions):
    """``counts`` (R + 1,): trajectories per first offending reaction (index 0: none)."""
    counts = np.asarray(counts)
    bad = int(counts[1:].sum())
    if bad:
        worst = reactions[int(counts[1:].argmax())]
        raise ValueError(
            f"reaction {worst}: its kinetic law was negative or not finite (NaN/inf) in a reached state "
            f"(or its rate constant was), in {bad} of {runs} trajectories; a propensity must be finite and "
            ">= 0 in every reachable state (check the law, or gate it, e.g. max(0, ...))"
        )


def _check_laws(invalid, reactions):
    counts = jnp.zeros((len(reactions) + 1,), jnp.int32).at[invalid].add(1)  # a small replicated array
    if isinstance(invalid, jax.core.Tracer):
        jax.debug.callback(lambda c: _report_invalid(c, invalid.shape[0], reactions), counts)
    else:
        _report_invalid(counts, invalid.shape[0], reactions)


def _report_exhausted(count, runs, max_steps, on_exhausted):
    count = int(count)
    if count == 0 or on_exhausted == "ignore":
        return
    message = (
        f"{count} of {runs} trajectories ran out of the step budget (max_steps={max_steps}) before the last "
        "observation time; their unreached rows are NaN. Raise max_steps."
    )
    if on_exhausted == "raise":
        raise SimulationBudgetError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _check_budget(exhausted, max_steps, on_exhausted):
    if isinstance(exhausted, jax.core.Tracer):
        jax.debug.callback(
            lambda c: _report_exhausted(c, exhausted.shape[0], max_steps, on_exhausted), jnp.sum(exhausted)
        )
    else:
        _report_exhausted(jnp.sum(exhausted), exhausted.shape[0], max_steps, on_exhausted)
