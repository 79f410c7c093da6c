"""Gradients of expected observables, with per-trajectory standard errors.

Surrogate estimators (straight-through, Gumbel-softmax) differentiate the trajectories themselves.
The score-function estimator differentiates the path log-likelihood instead:
``d E[X(t)] / d theta = E[(X(t) - b) d log L(t) / d theta]`` with ``L(t)`` the likelihood of the path up
to ``t`` and ``b`` the leave-one-out mean of ``X(t)`` over the batch (a baseline that keeps it unbiased).

The per-trajectory trick: each trajectory gets its own copy of the parameters (a (B,) array), so
one backward pass of ``sum_b X_b(t)`` yields every trajectory's own gradient ``d X_b(t) / d theta_b``.
Their mean is the gradient estimate and their spread gives its standard error.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .estimators import Estimator, get_estimator
from .model import ReactionNetwork
from .simulate import SimulationBudgetError, _as_key, simulate

__all__ = ["GradientEstimate", "estimate_gradient", "GradCheck", "GradCheckRow", "gradcheck"]


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
    network.check_parameter_names(wrt)
    network.check_species_name(species)
    base = network.parameter_values(params)
    index = network.species_names.index(species)
    key = _as_key(key)

    score = get_estimator(estimator).choice == "score-function"

    def per_run(theta, batch_key, size):
        def total(theta):
            values = {name: theta[name] for name in wrt}
            tr = simulate(
                network, times, key=batch_key, runs=size, params={**base, **values},
                estimator=estimator, max_steps=max_steps, chunk=chunk, differentiable=True, on_exhausted="ignore",
            )
            x = tr.states[:, :, index]  # (B, T)
            differentiated = tr.log_likelihood if score else x
            return jnp.sum(differentiated, axis=0), (x, jnp.sum(tr.exhausted))

        jac, (x, exhausted) = jax.jacrev(total, has_aux=True)(theta)
        if score:  # (x - leave-one-out mean) * d log L: unbiased, with the baseline reducing variance
            baseline = (jnp.sum(x, axis=0) - x) / (size - 1)
            jac = {name: j * (x - baseline).T for name, j in jac.items()}
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


class GradCheckRow(NamedTuple):
    """One estimator's gradient of E[species(t)] in one parameter at one time."""

    estimator: str
    parameter: str
    time: float
    estimate: float
    stderr: float
    per_run_sd: float
    exact: float | None
    bias: float | None  # estimate - exact
    z: float | None  # bias / stderr: |z| >> 3 means a real bias


class GradCheck(NamedTuple):
    rows: list[GradCheckRow]
    runs: int
    exact_source: str  # "master equation" or "unavailable: <why>"

    def table(self) -> str:
        """A plain-text table, one line per estimator, parameter and time."""
        lines = [f"{'estimator':18s} {'param':8s} {'t':>7s} {'estimate':>12s} {'stderr':>10s} "
                 f"{'sd/run':>10s} {'exact':>12s} {'rel.bias':>9s} {'z':>7s}"]
        for r in self.rows:
            exact = f"{r.exact:12.5g}" if r.exact is not None else f"{'-':>12s}"
            rel = f"{r.bias / abs(r.exact):+9.2%}" if r.exact else f"{'-':>9s}"
            z = f"{r.z:+7.1f}" if r.z is not None else f"{'-':>7s}"
            lines.append(f"{r.estimator:18s} {r.parameter:8s} {r.time:7.3g} {r.estimate:12.5g} {r.stderr:10.3g} "
                         f"{r.per_run_sd:10.3g} {exact} {rel} {z}")
        lines.append(f"{self.runs} trajectories per estimator; exact values: {self.exact_source}")
        return "\n".join(lines)


def gradcheck(
    network: ReactionNetwork,
    times,
    species: str,
    wrt: Sequence[str],
    *,
    key,
    runs: int = 10_000,
    estimators: Sequence[str] = ("thinning", "thinning-gumbel", "direct", "score-function", "finite-difference"),
    max_steps: int = 10_000,
    max_states: int = 20_000,
) -> GradCheck:
    """Compare gradient estimators of d E[species(t)] / d theta, against the master equation if it is small.

    Each estimator runs ``runs`` trajectories from the same ``key``. The exact gradient comes from
    :func:`diffssa.cme.solve_cme` when the reachable state space has at most ``max_states`` states
    (and the network has no events); otherwise only means and standard errors are reported.
    """
    from .cme import solve_cme
    from .finite_differences import finite_difference_gradient

    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    try:
        solution = solve_cme(network, times, max_states=max_states)
        index = solution.species.index(species)
        exact = {p: solution.mean_gradient[:, index, solution.parameter_names.index(p)] for p in wrt}
        source = f"master equation ({len(solution.states)} states, truncation error {solution.truncation_error:.1e})"
    except ValueError as err:
        exact, source = None, f"unavailable: {err}"
    rows = []
    for name in estimators:
        if name == "finite-difference":
            s_index = network.species_names.index(species)
            fd = finite_difference_gradient(network, times, lambda s: s[:, :, s_index], wrt, key=key, runs=runs,
                                            max_steps=max_steps)
            results = {p: (fd[p].gradient, fd[p].stderr, fd[p].stderr * np.sqrt(runs)) for p in wrt}
        else:
            est = estimate_gradient(network, times, species, wrt, key=key, runs=runs, estimator=name,
                                    max_steps=max_steps)
            results = {p: (est.gradient[p], est.stderr[p], est.per_run_sd[p]) for p in wrt}
        for p in wrt:
            g, se, sd = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in results[p])
            for i, t in enumerate(times):
                true = float(exact[p][i]) if exact is not None else None
                bias = float(g[i]) - true if true is not None else None
                z = bias / float(se[i]) if bias is not None and se[i] > 0 else None
                rows.append(GradCheckRow(name, p, float(t), float(g[i]), float(se[i]), float(sd[i]), true, bias, z))
    return GradCheck(rows, runs, source)
