"""Gradients of expected observables, with per-trajectory standard errors.

The per-trajectory trick: each trajectory gets its own copy of the parameters (a (B,) array), so
one backward pass of ``sum_b X_b(t)`` yields every trajectory's own gradient ``d X_b(t) / d theta_b``.
Their mean is the gradient estimate and their spread gives its standard error.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .estimators import Estimator
from .model import ReactionNetwork
from .simulate import SimulationBudgetError, _as_key, simulate

__all__ = ["GradientEstimate", "estimate_gradient"]


class GradientEstimate(NamedTuple):
    """Estimates of E[X_s(t)] and d E[X_s(t)] / d theta on a time grid.

    value, value_stderr: (T,) mean of the species count and its standard error.
    gradient, stderr: parameter name -> (T,) gradient estimate (natural parameters) and its standard
        error (sample SD of the per-trajectory gradients / sqrt(runs)).
    per_run_sd: parameter name -> (T,) SD of the per-trajectory gradients (the estimator's noise).
    runs: number of trajectories.
    """

    times: np.ndarray
    value: np.ndarray
    value_stderr: np.ndarray
    gradient: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    per_run_sd: dict[str, np.ndarray]
    runs: int


def estimate_gradient(
    network: ReactionNetwork,
    times,
    species: str,
    wrt: Sequence[str],
    *,
    key,
    runs: int,
    params: Mapping[str, float] | None = None,
    estimator: Estimator | str = "thinning",
    max_steps: int = 10_000,
    batch_size: int = 10_000,
    chunk: int | None = None,
) -> GradientEstimate:
    """Estimate E[species(t)] and its gradient in the parameters ``wrt`` with a surrogate estimator.

    Runs ``runs`` trajectories in batches of ``batch_size`` (each batch with its own key folded from
    ``key``). Raises ``ValueError`` for unknown species or parameter names.
    """
    wrt = list(wrt)
    for name in wrt:
        if name not in network.parameters:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(network.parameters)}")
    if species not in network.species:
        raise ValueError(f"unknown species {species!r}; known: {', '.join(network.species)}")
    base = {**network.parameters, **dict(params or {})}
    index = network.species_names.index(species)
    key = _as_key(key)

    def per_run(theta, batch_key, size):
        def total(theta):
            values = {name: theta[name] for name in wrt}
            tr = simulate(
                network, times, key=batch_key, runs=size, params={**base, **values},
                estimator=estimator, max_steps=max_steps, chunk=chunk, differentiable=True, on_exhausted="ignore",
            )
            x = tr.states[:, :, index]  # (B, T)
            return jnp.sum(x, axis=0), (x, jnp.sum(tr.exhausted))

        jac, (x, exhausted) = jax.jacrev(total, has_aux=True)(theta)
        return x, jac, exhausted  # x (B, T); jac[name] (T, B)

    per_run = jax.jit(per_run, static_argnums=2)
    values, grads = [], {name: [] for name in wrt}
    done, batch = 0, 0
    while done < runs:
        size = min(batch_size, runs - done)
        theta = {name: jnp.full((size,), base[name], jnp.float32) for name in wrt}
        x, jac, exhausted = per_run(theta, jax.random.fold_in(key, batch), size)
        if int(exhausted):
            raise SimulationBudgetError(
                f"{int(exhausted)} of {size} trajectories ran out of max_steps={max_steps}; raise max_steps"
            )
        values.append(np.asarray(x))
        for name in wrt:
            grads[name].append(np.asarray(jac[name]).T)
        done += size
        batch += 1
    x = np.concatenate(values)
    g = {name: np.concatenate(v) for name, v in grads.items()}
    sqrt_n = np.sqrt(runs)
    return GradientEstimate(
        times=np.asarray(times, dtype=np.float64),
        value=x.mean(axis=0),
        value_stderr=x.std(axis=0, ddof=1) / sqrt_n,
        gradient={name: v.mean(axis=0) for name, v in g.items()},
        stderr={name: v.std(axis=0, ddof=1) / sqrt_n for name, v in g.items()},
        per_run_sd={name: v.std(axis=0, ddof=1) for name, v in g.items()},
        runs=runs,
    )
