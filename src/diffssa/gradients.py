"""Gradients of expected observables, with per-trajectory standard errors.

The per-trajectory trick: each trajectory gets its own copy of the parameters (a (B,) array), so
one backward pass of ``sum_b X_b(t)`` yields every trajectory's own gradient ``d X_b(t) / d theta_b``
(whatever the estimator: a surrogate's pathwise derivative, the pairs' weighted differences, or the
score function's ``(X_b - b) d log L_b``). Their mean is the gradient estimate and their spread gives
its standard error.

Every result says which estimator made it and whether that estimator is unbiased. A biased one
(a surrogate) is checked where a check is cheap: against the master equation when the state space is
small, else against the unbiased pairs estimator on a pilot batch; a disagreement is warned about
(:class:`BiasWarning`) and recorded in the result.
"""

from __future__ import annotations

import warnings
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .estimators import Estimator, get_estimator
from .model import ReactionNetwork
from .rng import as_key, batches
from .simulation.api import simulate
from .simulation.engine import problem_labels
from .simulation.problems import report_problems

__all__ = ["GradientEstimate", "BiasWarning", "estimate_gradient", "GradCheck", "GradCheckRow", "gradcheck"]

CHECK_MAX_STATES = 500  # master-equation checks of biased estimators up to this many states (seconds)
CHECK_PILOT_RUNS = 2_000  # otherwise: the unbiased pairs estimator on this many trajectories
CHECK_Z = 4.0  # a disagreement is reported beyond |z| = 4 and 3% relative


class BiasWarning(UserWarning):
    """A biased gradient estimator disagrees with an exact or unbiased check."""


class GradientEstimate(NamedTuple):
    """Estimates of E[X_s(t)] and d E[X_s(t)] / d theta on a time grid.

    value, value_stderr: (T,) mean of the species count and its standard error.
    gradient, stderr: parameter name -> (T,) gradient estimate (natural parameters) and its standard
        error (sample SD of the per-trajectory gradients / sqrt(runs)).
    per_run_sd: parameter name -> (T,) SD of the per-trajectory gradients (the estimator's noise).
    runs: number of trajectories.
    estimator: the estimator's name (``"auto"`` resolved); unbiased: whether it is.
    check: for a biased estimator, what it was checked against and the outcome (None: not checked).
    """

    times: np.ndarray
    value: np.ndarray
    value_stderr: np.ndarray
    gradient: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    per_run_sd: dict[str, np.ndarray]
    runs: int
    estimator: str = "pairs"
    unbiased: bool = True
    check: str | None = None


def estimate_gradient(
    network: ReactionNetwork,
    times,
    species: str,
    wrt: Sequence[str],
    *,
    key,
    runs: int,
    params: Mapping[str, float] | None = None,
    estimator: Estimator | str = "auto",
    max_steps: int = 10_000,
    batch_size: int = 10_000,
    chunk: int | None = None,
    check: bool = True,
) -> GradientEstimate:
    """Estimate E[species(t)] and its gradient in the parameters ``wrt``.

    Runs ``runs`` trajectories in batches of ``batch_size`` (each batch with its own key folded from
    ``key``). ``estimator``: see :func:`diffssa.simulate` (default ``"auto"``: unbiased). ``check``:
    check a biased estimator where that is cheap (see the module) and warn if it disagrees. Raises
    ``ValueError`` for unknown species or parameter names or a kinetic law that goes negative,
    ``SimulationBudgetError`` if trajectories (or pairs) run out of ``max_steps``.
    """
    wrt = list(wrt)
    network.check_parameter_names(wrt)
    network.check_species_name(species)
    est = get_estimator(estimator, network)
    base = network.parameter_values(params)
    index = network.species_names.index(species)
    key = as_key(key)

    def per_run(theta, batch_key, size):
        def total(theta):
            values = {name: theta[name] for name in wrt}
            tr = simulate(
                network, times, key=batch_key, runs=size, params={**base, **values},
                estimator=est, max_steps=max_steps, chunk=chunk, on_exhausted="ignore",
            )
            x = tr.states[:, :, index]  # (B, T), its derivative the estimator's per-run derivative
            pair_exhausted = tr.pairs.exhausted if tr.pairs is not None else jnp.zeros_like(tr.invalid)
            return jnp.sum(x, axis=0), (x, tr.invalid, tr.exhausted, pair_exhausted)

        jac, aux = jax.jacrev(total, has_aux=True)(theta)
        return aux, jac  # x (B, T); jac[name] (T, B)

    per_run = jax.jit(per_run, static_argnums=2)
    values, grads = [], {name: [] for name in wrt}
    for batch_key, _, size in batches(key, runs, batch_size):
        theta = {name: jnp.full((size,), base[name], jnp.float32) for name in wrt}
        (x, invalid, exhausted, pair_exhausted), jac = per_run(theta, batch_key, size)
        report_problems(invalid, exhausted, pair_exhausted, problem_labels(network.compile()), max_steps)
        x = np.asarray(x)
        values.append(x)
        for name in wrt:
            grads[name].append(np.asarray(jac[name]).T)
    x = np.concatenate(values)
    g = {name: np.concatenate(v) for name, v in grads.items()}
    sqrt_n = np.sqrt(runs)
    result = GradientEstimate(
        times=np.asarray(times, dtype=np.float64),
        value=x.mean(axis=0),
        value_stderr=x.std(axis=0, ddof=1) / sqrt_n,
        gradient={name: v.mean(axis=0) for name, v in g.items()},
        stderr={name: v.std(axis=0, ddof=1) / sqrt_n for name, v in g.items()},
        per_run_sd={name: v.std(axis=0, ddof=1) for name, v in g.items()},
        runs=runs,
        estimator=est.name,
        unbiased=est.unbiased,
    )
    if check and not est.unbiased:
        result = result._replace(check=_check_biased(network, times, species, wrt, result, key=key, params=params,
                                                     max_steps=max_steps))
    return result


def _check_biased(network, times, species, wrt, result: GradientEstimate, *, key, params, max_steps) -> str:
    """Compare a biased estimate with the master equation (small state spaces) or a pilot of the
    unbiased pairs estimator; warn (:class:`BiasWarning`) where they disagree beyond |z| = 4 and 3%."""
    from .reference.cme import solve_cme

    try:
        solution = solve_cme(network, np.atleast_1d(times), params, max_states=CHECK_MAX_STATES)
        index = solution.species.index(species)
        reference = {p: (solution.mean_gradient[:, index, solution.parameter_names.index(p)], 0.0) for p in wrt}
        source = f"master equation ({len(solution.states)} states)"
    except ValueError:
        if network.events:
            return "not checked: the network has events and its state space is not small"
        pilot = estimate_gradient(network, times, species, wrt, key=jax.random.fold_in(key, 2**31 - 1),
                                  runs=min(result.runs, CHECK_PILOT_RUNS), params=params, estimator="pairs",
                                  max_steps=max_steps, check=False)
        reference = {p: (pilot.gradient[p], pilot.stderr[p]) for p in wrt}
        source = f"the unbiased pairs estimator on {pilot.runs} trajectories"
    worst = None
    for p in wrt:
        exact, exact_se = reference[p]
        se = np.sqrt(result.stderr[p] ** 2 + np.asarray(exact_se) ** 2)
        z = (result.gradient[p] - exact) / np.where(se > 0, se, np.inf)
        relative = np.abs(result.gradient[p] - exact) / np.maximum(np.abs(exact), 1e-30)
        bad = (np.abs(z) > CHECK_Z) & (relative > 0.03)
        for i in np.flatnonzero(bad):
            if worst is None or abs(z[i]) > abs(worst[3]):
                worst = (p, float(result.times[i]), float(relative[i]), float(z[i]), float(result.gradient[p][i]),
                         float(np.asarray(exact)[i]))
    if worst is None:
        return f"checked against {source}: agrees (|z| <= {CHECK_Z:g} or within 3%)"
    p, t, relative, z, estimate, exact = worst
    message = (f"the biased estimator {result.estimator!r} disagrees with {source}: d E[{species}(t={t:g})] / d {p} "
               f"= {estimate:.5g} vs {exact:.5g} ({relative:.1%} off, z = {z:+.1f}); use estimator='auto' (unbiased)")
    warnings.warn(message, BiasWarning, stacklevel=3)
    return "disagrees: " + message


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
    estimators: Sequence[str] = ("pairs", "thinning", "thinning-gumbel", "direct", "score-function",
                                 "finite-difference"),
    max_steps: int = 10_000,
    max_states: int = 20_000,
) -> GradCheck:
    """Compare gradient estimators of d E[species(t)] / d theta, against the master equation if it is small.

    Each estimator runs ``runs`` trajectories from the same ``key``. The exact gradient comes from
    :func:`diffssa.reference.cme.solve_cme` when the reachable state space has at most ``max_states`` states
    (and the network has no events); otherwise only means and standard errors are reported.
    """
    from .reference.cme import solve_cme
    from .reference.finite_differences import finite_difference_gradient

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
                                    max_steps=max_steps, check=False)
            results = {p: (est.gradient[p], est.stderr[p], est.per_run_sd[p]) for p in wrt}
        for p in wrt:
            g, se, sd = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in results[p])
            for i, t in enumerate(times):
                true = float(exact[p][i]) if exact is not None else None
                bias = float(g[i]) - true if true is not None else None
                z = bias / float(se[i]) if bias is not None and se[i] > 0 else None
                rows.append(GradCheckRow(name, p, float(t), float(g[i]), float(se[i]), float(sd[i]), true, bias, z))
    return GradCheck(rows, runs, source)
