"""Local linear models of the statistics in the log rates, from one batch of simulations.

:func:`local_model` regresses antithetic forward pairs at ``u +- d`` on ``d`` (the fit's default
Jacobian); :func:`pairs_local_model` differentiates the pairs estimator instead. Both return a
:class:`LocalModel`: the statistics at the current rates, their Jacobian and its noise.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ...estimators import PoissonPairs
from ...model import ReactionNetwork
from ...rng import batches
from ...simulation.api import simulate
from .features import MAX_STEPS, Design, _features, simulate_features
from .metric import Metric
from .network import RATE_NAMES


class LocalModel(NamedTuple):
    """A local linear model of the statistics in log rates, from one batch.

    center: (D,) statistics at the current rates (mean over ``center_runs`` trajectories);
    jacobian: (D, P) derivative in the free log rates (regression on ``pairs`` antithetic pairs);
    halves: the Jacobian fitted on each half of the pairs (independent: their cross product is an
    unbiased Fisher matrix); jac_var: (P, P) ``(X^T X)^-1`` of the pair design and residual_cov_trace:
    the trace of the whitened residual covariance of a pair, so that in whitened units
    ``E[J^T J] = J_true^T J_true + residual_cov_trace * jac_var``; step: the perturbation h;
    events: mean and max events per trajectory.
    """

    center: np.ndarray
    jacobian: np.ndarray
    halves: tuple[np.ndarray, np.ndarray]
    jac_var: np.ndarray
    residual_cov_trace: float
    center_runs: int
    pairs: int
    step: float
    events: tuple[float, float]


def _rates(log_rates: dict[str, float], free: Sequence[str], deltas: np.ndarray) -> dict[str, np.ndarray]:
    """Per-trajectory rates: name -> (K,) float32 ``exp(u + delta)``, ``deltas`` (K, P) on the ``free`` log rates."""
    u = np.array([log_rates[k] for k in RATE_NAMES])[None, :].repeat(len(deltas), axis=0)
    for j, name in enumerate(free):
        u[:, RATE_NAMES.index(name)] += deltas[:, j]
    return {k: np.exp(u[:, i]).astype(np.float32) for i, k in enumerate(RATE_NAMES)}


def antithetic_pairs(log_rates: dict[str, float], free: Sequence[str], *, seed: int, pairs: int,
                     step: float) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The pair design around ``log_rates``: ``d`` (pairs, P) and the per-trajectory rates at ``u + d`` and ``u - d``.

    ``d``: random signs (``numpy.random.default_rng(seed)``) times ``step`` in every ``free`` log rate
    at once; the rates are name -> (pairs,) arrays (:func:`_rates`). Simulate both members of a pair
    with the same key, so that they share their random numbers.
    """
    d = step * np.random.default_rng(seed).choice([-1.0, 1.0], size=(pairs, len(free)))
    return d, _rates(log_rates, free, d), _rates(log_rates, free, -d)


def _pair_regression(d: np.ndarray, plus: np.ndarray, minus: np.ndarray, metric: Metric):
    """Least squares of ``(plus - minus) / 2`` on the perturbations ``d`` (pairs, P).

    ``plus``, ``minus``: (pairs, D) features of the two members of each pair. Returns the Jacobian
    (D, P), the Jacobians of the two halves of the pairs, ``(d^T d)^-1`` (P, P) and the trace of the
    whitened residual covariance of one pair.
    """
    pairs, p = d.shape
    y = (np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / 2
    xtx_inv = np.linalg.inv(d.T @ d)
    beta = xtx_inv @ d.T @ y  # (P, D)
    resid = y - d @ beta
    halves = tuple(np.linalg.lstsq(d[part], y[part], rcond=None)[0].T
                   for part in (slice(0, pairs // 2), slice(pairs // 2, pairs)))
    trace = float(np.sum(metric.whiten(resid.T) ** 2) / max(pairs - p, 1))
    return beta.T, halves, xtx_inv, trace


def local_model(
    network: ReactionNetwork,
    log_rates: dict[str, float],
    free: Sequence[str],
    metric: Metric,
    *,
    seed: int,
    center_runs: int,
    pairs: int,
    step: float = 0.05,
    design: Design = Design(),
    batch: int = 512,
) -> LocalModel:
    """Simulate one batch around ``log_rates``: the statistics there and their Jacobian by regression.

    ``center_runs`` trajectories run at the current rates (key ``seed``). ``pairs`` antithetic pairs
    run at ``u + d`` and ``u - d`` (:func:`antithetic_pairs`, key ``seed + 1``), ``d`` of random signs
    times ``step`` in every free log rate at once, the two members of a pair with the same random
    numbers. The regression of the half-differences ``(f(u + d) - f(u - d)) / 2 = J d + O(h^3) +
    noise`` on ``d`` gives the Jacobian of every rate from every pair (even-order terms cancel
    exactly), which for the same number of trajectories is several times less noisy than
    coordinate-wise finite differences.
    """
    free = list(free)
    center, ev_c = simulate_features(network, {k: math.exp(v) for k, v in log_rates.items()}, key=seed,
                                     runs=center_runs, design=design, batch=batch)
    d, up, down = antithetic_pairs(log_rates, free, seed=seed, pairs=pairs, step=step)
    plus, ev_p = simulate_features(network, up, key=seed + 1, runs=pairs, design=design, batch=batch)
    minus, ev_m = simulate_features(network, down, key=seed + 1, runs=pairs, design=design, batch=batch)
    beta, halves, xtx_inv, trace = _pair_regression(d, plus, minus, metric)
    events = np.concatenate([ev_c, ev_p, ev_m])
    return LocalModel(
        center=center.mean(axis=0), jacobian=beta, halves=halves, jac_var=xtx_inv,
        residual_cov_trace=trace, center_runs=center_runs, pairs=pairs, step=step,
        events=(float(events.mean()), float(events.max())),
    )


def pairs_local_model(
    network: ReactionNetwork,
    log_rates: dict[str, float],
    free: Sequence[str],
    metric: Metric,
    *,
    seed: int,
    runs: int,
    design: Design = Design(),
    batch: int = 64,
    per_reaction: int = 1,
) -> LocalModel:
    """The statistics at ``log_rates`` and their Jacobian in the free log rates from the pairs estimator.

    ``runs`` exact trajectories in batches of ``batch`` (batch ``i`` with key ``fold_in(seed, i)``); for
    each batch the Jacobian of its mean features comes from ``Trajectories.expect_path`` under
    ``jax.jacfwd`` (:class:`~diffssa.PoissonPairs` with ``per_reaction`` pairs per differentiated
    reaction, simulated to the end because the autocorrelation features combine several times). It is
    unbiased: no perturbation step, no regression. The halves are the mean Jacobians of the even and
    odd batches; the Jacobian's noise (``jac_var`` times ``residual_cov_trace = 1``) is the whitened
    batch-to-batch covariance over the number of batches. ``pairs`` reports the trajectories and
    ``step`` is 0.
    """
    free = list(free)
    if runs < 2 * batch:
        raise ValueError(f"runs ({runs}) must cover at least two batches of {batch}")
    estimator = PoissonPairs(per_reaction=per_reaction, full_paths=True)
    fixed = {k: math.exp(v) for k, v in log_rates.items() if k not in free}
    u0 = jnp.asarray([log_rates[k] for k in free], jnp.float32)
    species = network.species_names

    def statistics(u, key, size):
        params = {**fixed, **{k: jnp.exp(u[i]) for i, k in enumerate(free)}}
        tr = simulate(network, design.times, key=key, runs=size, params=params, estimator=estimator,
                      max_steps=MAX_STEPS, on_exhausted="raise")
        mean = tr.expect_path(lambda path: _features(jnp, path[None], design, species)[0])
        return mean, (mean, tr.events)

    jacobian_of = jax.jit(jax.jacfwd(statistics, has_aux=True), static_argnums=2)
    centers, jacobians, events = [], [], []
    for batch_key, _, size in batches(seed, runs, batch):
        jac, (mean, ev) = jacobian_of(u0, batch_key, size)
        centers.append((size, np.asarray(mean, np.float64)))
        jacobians.append((size, np.asarray(jac, np.float64)))
        events.append(np.asarray(ev))
    weights = np.array([n for n, _ in jacobians], float)

    def pooled(items, which=slice(None)):
        chosen = items[which]
        w = np.array([n for n, _ in chosen], float)
        return sum(n * a for n, a in chosen) / w.sum()

    jacobian = pooled(jacobians)
    whitened = np.stack([metric.whiten(j) for _, j in jacobians])  # (K, D_kept, P)
    spread = whitened - metric.whiten(jacobian)[None]
    k = len(jacobians)
    noise = np.einsum("k,kdp,kdq->pq", weights**2, spread, spread) / weights.sum() ** 2 * k / max(k - 1, 1)
    events = np.concatenate(events)
    return LocalModel(
        center=pooled(centers), jacobian=jacobian, halves=(pooled(jacobians, slice(0, None, 2)),
                                                             pooled(jacobians, slice(1, None, 2))),
        jac_var=noise, residual_cov_trace=1.0, center_runs=runs, pairs=runs, step=0.0,
        events=(float(events.mean()), float(events.max())),
    )
