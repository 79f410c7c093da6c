"""``simulate``: exact trajectories of a network on a time grid, with the derivatives of an estimator.

The mode is explicit. The trajectories depend on the key, the network, ``method`` and the
estimator's clock only (:mod:`diffssa.estimators`): the same call gives the same trajectories
whether or not it is differentiated or wrapped in ``jax.jit``. What tracing changes is what is
attached to them: when ``params`` hold JAX tracers, the estimator's machinery runs (the pairs, the
path log-likelihood, or a surrogate's rematerialised scan); with ``estimator=None`` nothing is, and
differentiating the call raises an error that says so.

The engine is in :mod:`diffssa.simulation.engine` (direct method), :mod:`diffssa.simulation.next_reaction` and
:mod:`diffssa.simulation.pairs`; the result type in :mod:`diffssa.simulation.trajectories`.
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..compiled import CompiledNetwork
from ..estimators import EXACT, Estimator, PoissonPairs, ScoreFunction, get_estimator
from ..expressions import evaluate
from ..model import ReactionNetwork
from ..rng import as_key
from .arguments import guard_parameters, initial_matrix, parameter_matrix
from .engine import build_runner, exact_count_limit, problem_labels
from .problems import check
from .tau_leap import TauLeap, build_tau_leap_runner, tau_leap_estimator
from .trajectories import Trajectories, _pair_term, _score_term

__all__ = ["simulate"]


def simulate(
    network: ReactionNetwork,
    times,
    *,
    key,
    runs: int = 1,
    params: Mapping[str, object] | None = None,
    initial=None,
    max_steps: int = 100_000,
    estimator: Estimator | str | None = "auto",
    chunk: int | None = None,
    on_exhausted: str = "warn",
    method: str | TauLeap = "direct",
    devices=None,
    precision: str = "auto",
) -> Trajectories:
    """Simulate ``runs`` exact trajectories of ``network`` and record them at ``times``.

    Parameters
    ----------
    times: (T,) non-decreasing observation times (>= 0); the simulation starts at time 0.
    key: a JAX PRNG key or an integer seed (all 64 bits count). Every random number comes from it.
    runs: number of trajectories B.
    params: parameter values overriding the network's (name -> scalar or (B,) array); may be JAX
        tracers, e.g. inside ``jax.grad``: derivatives are then those of ``estimator``.
    initial: initial counts (name -> count mapping, (S,) or (B, S) array); default the network's.
    max_steps: budget of events per trajectory (null events of a thinning clock count; each of the
        pairs estimator's pairs has the same budget).
    estimator: how derivatives are estimated (:mod:`diffssa.estimators`): ``"auto"`` (default: the
        unbiased pairs, or the score function for networks with events), ``"pairs"``,
        ``"score-function"``, a biased surrogate (``"thinning"`` ...), an :class:`Estimator`, or
        ``None``: forward only (differentiating then raises). Surrogates on a thinning clock draw
        their trajectories from that clock, traced or not; every other estimator's trajectories are
        those of the direct method.
    chunk: steps per rematerialised chunk of a surrogate's or the score function's differentiable
        scan (default about sqrt of the number of iterations).
    on_exhausted: ``"warn"``, ``"raise"`` or ``"ignore"`` when some trajectory runs out of budget.
    method: ``"direct"`` (default) or ``"next-reaction"`` (forward only, no events): one random stream
        per reaction channel, so that simulations with the same key at different parameters share
        every channel's Poisson process (:mod:`diffssa.simulation.next_reaction`; the coupling finite
        differences want); or ``"tau-leap"`` / :class:`~diffssa.simulation.tau_leap.TauLeap` ``(epsilon=0.03)``:
        approximate, for large counts (:mod:`diffssa.simulation.tau_leap`; no events), its derivatives those of
        its Poisson counts: ``estimator`` is then ``"auto"`` (= ``"eat"``, exponential arrival times),
        ``"gumbel"`` (Gumbel-softmax), a :class:`~diffssa.simulation.tau_leap.PoissonSurrogate` or ``None``;
        ``max_steps`` bounds its steps (leaps, exact events, rejected leaps).
    devices: the devices the batch is split over (default ``jax.local_devices()``; see
        :func:`diffssa.use_cpu_cores`); with a single one the batch is not split. Pass one device
        where the results feed a host callback (``jax.pure_callback``) inside ``jit``: XLA's CPU
        collectives between the devices and the callback were seen to deadlock.
    precision: the float type of the state: ``"float32"`` (counts exact below 2**24 = 16,777,216),
        ``"float64"`` (exact below 2**53; forward only: derivatives are refused) or ``"auto"``
        (default: float64 when an initial count reaches 2**24). A trajectory whose count reaches the
        limit of its type is flagged, like an invalid kinetic law: the call raises (or, traced, warns
        and sets it to NaN), naming the species. float64 states are computed with JAX's 64-bit mode on
        for the call; compute with them under ``jax.enable_x64(True)`` (or in NumPy) to keep them exact.

    The network's variables are recorded after its species (``Trajectories.species`` names them);
    its observables are in ``Trajectories.observables``.
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
    if isinstance(method, str) and method == "tau-leap":
        method = TauLeap()
    if not isinstance(method, TauLeap) and method not in ("direct", "next-reaction"):
        raise ValueError(f"method must be 'direct', 'next-reaction', 'tau-leap' or a TauLeap, got {method!r}")
    if precision not in ("auto", "float32", "float64"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'float64', got {precision!r}")
    runs, max_steps = int(runs), int(max_steps)
    x0 = initial_matrix(network, initial, runs)
    if precision == "auto":
        precision = "float64" if np.max(x0[:, :len(network.species)]) >= exact_count_limit(np.float32) else "float32"
    traced_names = [name for name, value in (params or {}).items() if isinstance(value, jax.core.Tracer)]
    if chunk is None:
        chunk = max(8, int(math.sqrt(max_steps + grid.size)))
    setup = (network, compiled, grid, key, runs, params, traced_names, max_steps, estimator, int(chunk), on_exhausted,
             method, devices)
    if precision == "float64":
        if traced_names:
            raise ValueError(f"simulate with counts in float64 (precision='float64', or an initial count of 2**24 "
                             f"or more) is forward only; it was traced in parameter {traced_names[0]!r}")
        with jax.enable_x64(True):
            return _simulate(jnp.asarray(x0, jnp.float64), *setup)
    return _simulate(jnp.asarray(x0, jnp.float32), *setup)


def _simulate(x0, network, compiled, grid, key, runs, params, traced_names, max_steps, estimator, chunk, on_exhausted,
              method, devices):
    """:func:`simulate` after its checks, with the initial states ``x0`` (B, S) in the state's float type,
    ``traced_names`` the parameters given as tracers, ``chunk`` resolved."""
    if isinstance(method, TauLeap):
        est = tau_leap_estimator(estimator, network)
    elif method == "next-reaction":
        est = _next_reaction_estimator(network, compiled, estimator)
    else:
        est = get_estimator(estimator, network)
    theta = parameter_matrix(network, guard_parameters(network, params, est), runs)
    keys = jax.random.bits(as_key(key), (runs, 2), jnp.uint32)  # one Threefry key per trajectory
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    traced = bool(traced_names) and est is not EXACT
    common = dict(grid=jnp.asarray(grid), species=compiled.species, estimator=est,
                  observables=_observables(network, theta))
    reactions = ()
    if traced and isinstance(est, PoissonPairs):
        from .pairs import differentiated_reactions

        reactions = differentiated_reactions(compiled, traced_names)  # none: nothing to differentiate

    if isinstance(method, TauLeap):
        differentiable = traced
        chunk = chunk if differentiable else 0
        run = _runner(compiled, ("tau-leap", grid.size, max_steps, method, est, differentiable, chunk, devices),
                      lambda: build_tau_leap_runner(compiled, grid.size, max_steps, method, est,
                                                    differentiable, chunk, devices))
        states, exhausted, events, invalid, _ = run(jnp.asarray(grid), theta, x0, keys, None)
        result = _trajectories(states, exhausted, events, invalid, **common)
    elif method == "next-reaction":
        states, exhausted, events, invalid, _ = _runner(
            compiled, ("next-reaction", grid.size, max_steps, devices),
            lambda: _build_next_reaction(compiled, grid.size, max_steps, devices))(
            jnp.asarray(grid), theta, x0, keys, None)
        result = _trajectories(states, exhausted, events, invalid, **common)
    elif reactions:
        from .pairs import build_pair_runner, pair_paths

        run = _runner(compiled, ("pairs", grid.size, max_steps, est, reactions, devices),
                      lambda: build_pair_runner(compiled, grid.size, max_steps, est, reactions, devices))
        states, exhausted, events, invalid, out = run(jnp.asarray(grid), jax.lax.stop_gradient(theta), x0, keys)
        pairs = pair_paths(compiled, theta, reactions, est.per_reaction, out, est.full_paths)
        states = states + _pair_term(pairs, lambda paths: paths)
        result = _trajectories(states, exhausted, events, invalid, pairs=pairs, **common)
    else:
        differentiable = traced and not isinstance(est, PoissonPairs)
        engine_estimator = est if (differentiable or est.thinning_factor is not None) else EXACT
        chunk = chunk if differentiable else 0
        run = _runner(compiled, ("direct", grid.size, max_steps, engine_estimator, differentiable, chunk, devices),
                      lambda: build_runner(compiled, grid.size, max_steps, engine_estimator, differentiable, chunk,
                                           devices))
        states, exhausted, events, invalid, final = run(jnp.asarray(grid), theta, x0, keys, None)
        log_likelihood = None
        if differentiable and isinstance(est, ScoreFunction):
            log_likelihood = final[1]
            states = states + _score_term(log_likelihood, jax.lax.stop_gradient(states))
        result = _trajectories(states, exhausted, events, invalid, log_likelihood=log_likelihood, **common)
    return check(result, _problem_labels(compiled), max_steps, on_exhausted)


def _trajectories(states, exhausted, events, invalid, *, grid, species, estimator, observables, log_likelihood=None,
                  pairs=None):
    return Trajectories(grid, states, exhausted, events, species, log_likelihood, pairs, estimator.name, invalid,
                        observables(states))


def _observables(network: ReactionNetwork, theta):
    """``states (B, T, S) -> {name: (B, T)}``: the network's observables at every recorded time."""
    if not network.observables:
        return lambda states: {}
    names, params = network.state_names, network.parameter_names

    def compute(states):
        env = {s: states[..., i] for i, s in enumerate(names)}
        env.update({p: theta[:, j, None] for j, p in enumerate(params)})
        return {o: jnp.broadcast_to(jnp.asarray(evaluate(e, env), states.dtype), states.shape[:2])
                for o, e in network.observables.items()}

    return compute


def _problem_labels(compiled: CompiledNetwork):
    """:func:`~diffssa.simulation.engine.problem_labels`, computed once per network."""
    return _runner(compiled, "problem labels", lambda: problem_labels(compiled))


def _runner(compiled: CompiledNetwork, cache_key, build):
    """The network's jitted runner for ``cache_key``, built once."""
    runner = compiled.cache.get(cache_key)
    if runner is None:
        runner = compiled.cache[cache_key] = build()
    return runner


def _build_next_reaction(compiled, n_grid, max_steps, devices):
    from .next_reaction import build_next_reaction_runner

    return build_next_reaction_runner(compiled, n_grid, max_steps, devices)


def _next_reaction_estimator(network: ReactionNetwork, compiled: CompiledNetwork, estimator) -> Estimator:
    from .next_reaction import MAX_CHANNELS

    if estimator not in (None, "auto"):
        raise ValueError("method='next-reaction' is forward only: pass estimator=None (or 'auto'); "
                         "gradients use method='direct'")
    if network.events:
        raise ValueError(f"method='next-reaction' does not support events; network {network.name!r} has "
                         f"{len(network.events)}: use method='direct'")
    if compiled.stoichiometry.shape[0] > MAX_CHANNELS:
        raise ValueError(f"method='next-reaction' supports at most {MAX_CHANNELS} reactions, "
                         f"got {compiled.stoichiometry.shape[0]}")
    return EXACT


