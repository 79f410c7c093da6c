"""Problems a simulation meets, reported by name: invalid kinetic laws, event assignments that give no
count, counts beyond exact (codes from :func:`~diffssa.simulation.engine.problem_labels`), exhausted
step budgets.

Untraced calls raise (``ValueError``, :class:`SimulationBudgetError`) or warn at once; traced calls
(inside ``jit``/``grad``) warn from the device and set the affected trajectories to NaN.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .trajectories import Trajectories

__all__ = ["SimulationBudgetError", "report_problems", "check"]


class SimulationBudgetError(RuntimeError):
    """Raised (with ``on_exhausted="raise"``) when trajectories run out of their step budget."""


def _report_invalid(counts, runs, labels):
    """``counts`` (len(labels) + 1,): trajectories per first problem (:func:`~diffssa.simulation.engine.problem_labels`
    codes; index 0: none)."""
    counts = np.asarray(counts)
    bad = int(counts[1:].sum())
    if not bad:
        return
    kind, label = labels[int(counts[1:].argmax())]
    where = f"in {bad} of {runs} trajectories"
    if kind == "reaction":
        raise ValueError(
            f"reaction {label}: its kinetic law was negative or not finite (NaN/inf) in a reached state "
            f"(or its rate constant was), {where}; a propensity must be finite and >= 0 in every reachable "
            "state (check the law, or gate it, e.g. max(0, ...))")
    if kind == "assignment":
        raise ValueError(f"{label}: the value assigned was not a whole number >= 0 ({where}); a count can only be "
                         "set to a non-negative integer (round it explicitly, e.g. floor(X / 2))")
    raise ValueError(
        f"species {label!r} reached the largest count its float type keeps exactly ({where}): 2**24 = 16,777,216 "
        "in float32 (simulate with precision='float64', or --precision float64: exact to 2**53), 2**53 in float64")


def _report_exhausted(count, runs, max_steps, on_exhausted, what="trajectories"):
    count = int(count)
    if count == 0 or on_exhausted == "ignore":
        return
    if what == "trajectories":
        message = (f"{count} of {runs} trajectories ran out of the step budget (max_steps={max_steps}) before the "
                   "last observation time; their unreached rows are NaN. Raise max_steps.")
    else:
        message = (f"{count} pairs of the pairs estimator (from {runs} trajectories) ran out of the step budget "
                   f"(max_steps={max_steps}) before the last observation time; the gradient misses their "
                   "unreached rows. Raise max_steps.")
    if on_exhausted == "raise":
        raise SimulationBudgetError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=5)


def report_problems(invalid, exhausted, pair_exhausted, labels, max_steps, on_exhausted="raise"):
    """Raise (or warn, per ``on_exhausted``) for trajectories flagged with a problem (an invalid kinetic
    law, an event assignment that gave no count, a count beyond exact; ``labels`` from
    :func:`~diffssa.simulation.engine.problem_labels`) or out of budget; concrete (B,) arrays (``pair_exhausted``:
    pairs per trajectory, or None)."""
    invalid = np.asarray(invalid)
    counts = np.bincount(invalid, minlength=len(labels) + 1)
    totals = (np.sum(exhausted), None if pair_exhausted is None else np.sum(pair_exhausted))
    _report_counts(counts, *totals, invalid.shape[0], labels, max_steps, on_exhausted)


def _report_counts(counts, exhausted, pair_exhausted, runs, labels, max_steps, on_exhausted):
    _report_invalid(counts, runs, labels)
    _report_exhausted(exhausted, runs, max_steps, on_exhausted)
    if pair_exhausted is not None:
        _report_exhausted(pair_exhausted, runs, max_steps, on_exhausted, "pairs")


def _warn_traced(*counts):
    """Inside a traced call: the problems as warnings (a callback that raises inside a program that
    spans several devices can leave XLA's collectives waiting forever, and abort the process)."""
    try:
        _report_counts(*counts)
    except (ValueError, SimulationBudgetError) as err:
        warnings.warn(f"{err} [inside a traced call (jit/grad) this cannot raise: the affected trajectories "
                      "are NaN; diffssa.fitting.fit and estimate_gradient raise on them]", RuntimeWarning)


def check(result: Trajectories, labels, max_steps, on_exhausted) -> Trajectories:
    """Report the run's problems: at once when the call is not traced; from the device, as warnings,
    with the trajectories that met an invalid law set to NaN, when it is."""
    pair_exhausted = result.pairs.exhausted if result.pairs is not None else None
    if not isinstance(result.invalid, jax.core.Tracer):
        report_problems(result.invalid, result.exhausted, pair_exhausted, labels, max_steps, on_exhausted)
        return result
    runs = result.invalid.shape[0]
    counts = jnp.zeros((len(labels) + 1,), jnp.int32).at[result.invalid].add(1)  # small, replicated
    pairs_left = None if pair_exhausted is None else jnp.sum(pair_exhausted)
    jax.debug.callback(lambda c, e, p: _warn_traced(c, e, p, runs, labels, max_steps, on_exhausted),
                       counts, jnp.sum(result.exhausted), pairs_left)
    poisoned = jnp.where((result.invalid > 0)[:, None, None], jnp.nan, result.states)
    observables = {o: jnp.where((result.invalid > 0)[:, None], jnp.nan, v) for o, v in result.observables.items()}
    return Trajectories(result.times, poisoned, result.exhausted, result.events, result.species,
                        result.log_likelihood, result.pairs, result.estimator, result.invalid, observables)
