"""Simulated trajectories on a time grid, and the expectations computed from them.

A :class:`Trajectories` holds the exact counts of every trajectory at every grid time. When the
simulation ran with traced parameters (inside ``jax.grad``, ``jax.jit`` ...) it also holds what its
gradient estimator attached, and its expectations differentiate correctly:

* :meth:`Trajectories.expect` (``E[f(X(t))]`` for any function ``f`` of the counts at one time),
  :meth:`~Trajectories.mean` and :meth:`~Trajectories.sd`: exact for every estimator (the pairs' and
  the score function's derivatives of ``f`` are of ``f`` itself, not of a linearisation of it);
* ``states`` itself carries derivatives that are right for anything **linear** in each trajectory's
  counts (means, weighted sums over trajectories). A nonlinear function of one trajectory's counts
  (``jnp.std(tr.states, axis=0)``, ``(X - target) ** 2`` per run) differentiated through ``states``
  is biased under the unbiased estimators: use :meth:`~Trajectories.expect` for those.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..io.tables import write_csv
from ..optional import require

__all__ = ["Trajectories", "PairPaths", "time_grid"]


@jax.tree_util.register_pytree_node_class
class PairPaths:
    """The coupled pairs of the pairs estimator (:mod:`diffssa.simulation.pairs`), P per trajectory.

    weight: (B, P) exactly 0 forward; its derivative is the pair's weight in the integral
        representation, ``d a_k(x_p) / d theta * Lambda_k / (m h_k(x_p))``.
    start: (B, P) the time each pair branches off its trajectory; first_row (B, P) int32 the first
        grid row at or after it.
    reference, perturbed: (B, P, T, S) the pair's two paths on the grid (the trajectory's state at the
        branch time, and that state plus one more firing of the pair's reaction), from ``first_row``
        until they meet (rows outside are 0 in both), or to the last row with ``full_paths``.
    exhausted: (B,) pairs of each trajectory that ran out of the step budget (their unreached rows
        are 0: the gradient misses them, and the simulation warned or raised).
    full_paths: whether the pairs were simulated to the last grid row after meeting.
    """

    def __init__(self, weight, start, first_row, reference, perturbed, exhausted, full_paths: bool = False):
        self.weight, self.start, self.first_row = weight, start, first_row
        self.reference, self.perturbed, self.exhausted, self.full_paths = reference, perturbed, exhausted, full_paths

    def tree_flatten(self):
        return (self.weight, self.start, self.first_row, self.reference, self.perturbed, self.exhausted), self.full_paths

    @classmethod
    def tree_unflatten(cls, full_paths, leaves):
        return cls(*leaves, full_paths)


@jax.tree_util.register_pytree_node_class
class Trajectories:
    """Simulated trajectories on a time grid.

    Attributes
    ----------
    times: (T,) grid times.
    states: (B, T, S) species counts after the last event at or before each time (float32, or float64
        for counts of 2**24 and more), then the network's variables.
    exhausted: (B,) True where the step budget ran out (those rows past the last reached time are NaN).
    events: (B,) events fired per trajectory (null events of a thinning clock included).
    species: species names (then variable names), in the order of the last axis of ``states``.
    estimator: name of the gradient estimator whose derivatives the trajectories carry
        (``"exact"``: none).
    log_likelihood: (B, T) path log-likelihood up to each time, differentiable in the parameters
        (score-function estimator under tracing, else None).
    pairs: :class:`PairPaths` (pairs estimator under tracing, else None).
    invalid: (B,) int32: 0, or the code of the first problem the trajectory met
        (:func:`diffssa.simulation.engine.problem_labels`: a kinetic law negative or not finite, an event
        assignment that gave no count, a count beyond exact); such trajectories are NaN when the call
        was traced; untraced, the simulation raised.
    observables: name -> (B, T) values of the network's observables at the grid times.
    """

    def __init__(self, times, states, exhausted, events, species, log_likelihood=None, pairs=None,
                 estimator: str = "exact", invalid=None, observables=None):
        self.times, self.states, self.exhausted, self.events = times, states, exhausted, events
        self.species = tuple(species)
        self.log_likelihood = log_likelihood
        self.pairs = pairs
        self.estimator = estimator
        self.invalid = jnp.zeros(exhausted.shape, jnp.int32) if invalid is None else invalid
        self.observables = dict(observables or {})

    def tree_flatten(self):
        leaves = (self.times, self.states, self.exhausted, self.events, self.log_likelihood, self.pairs, self.invalid,
                  self.observables)
        return leaves, (self.species, self.estimator)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        species, estimator = aux
        return cls(*leaves[:4], species, leaves[4], leaves[5], estimator, leaves[6], leaves[7])

    @classmethod
    def concatenate(cls, parts: list[Trajectories]) -> Trajectories:
        """Forward-only trajectories of several batches on one grid, as one (numpy arrays).

        Raises ``ValueError`` for parts that carry an estimator's derivative terms (a batch's score or
        pairs belong to its own mean) or that differ in grid or species."""
        first = parts[0]
        for p in parts:
            if p.log_likelihood is not None or p.pairs is not None:
                raise ValueError("only forward-only trajectories can be concatenated (these carry derivative terms)")
            if p.species != first.species or not np.array_equal(np.asarray(p.times), np.asarray(first.times)):
                raise ValueError("trajectories on different grids or species cannot be concatenated")

        def joined(field):
            return np.concatenate([np.asarray(field(p)) for p in parts])

        return cls(first.times, joined(lambda p: p.states), joined(lambda p: p.exhausted), joined(lambda p: p.events),
                   first.species, estimator=first.estimator, invalid=joined(lambda p: p.invalid),
                   observables={o: joined(lambda p, o=o: p.observables[o]) for o in first.observables})

    def __repr__(self):
        b, t, s = self.states.shape
        return f"Trajectories(runs={b}, times={t}, species={self.species}, estimator={self.estimator!r})"

    def index(self, species: str) -> int:
        try:
            return self.species.index(species)
        except ValueError:
            raise ValueError(f"unknown species {species!r}; known: {', '.join(self.species)}") from None

    def __getitem__(self, name: str):
        """(B, T) counts of one species (or values of a variable or an observable)."""
        if name in self.observables:
            return self.observables[name]
        return self.states[..., self.index(name)]

    # ------------------------------------------------------------ expectations
    def expect(self, f: Callable | None = None):
        """``E[f(X(t))]`` at every grid time, averaged over the trajectories: (T, ...).

        ``f`` maps one state, an (S,) count vector, to an array (default: the counts themselves); it
        is applied at each time separately. Derivatives with respect to traced parameters are those of
        the simulation's estimator applied to ``f`` itself, so they are unbiased for any ``f`` under
        the pairs and score-function estimators.
        """
        return self._expect_grid(jax.vmap(jax.vmap(f or (lambda x: x))))  # (B, T, S) -> (B, T, ...)

    def _expect_grid(self, per_grid):
        """(T, ...) mean over runs of ``per_grid``: recorded states (B, T, S) -> (B, T, ...), applied
        to the trajectories and to the pairs' paths, with the estimator's derivative terms."""
        return self._expectation(per_grid, self.log_likelihood,
                                 lambda pairs, exact: _pair_term(pairs, jax.vmap(per_grid)))

    def expect_path(self, f: Callable):
        """``E[f(path)]`` for a function of a whole recorded path, ``f``: (T, S) -> array.

        Needs, under the pairs estimator, pairs simulated to the end (``PoissonPairs(full_paths=True)``):
        a functional of several times (an autocorrelation, say) reads the pairs' paths after they meet.
        """
        per_run = jax.vmap(f)

        def pair_term(pairs, exact):
            if not pairs.full_paths:
                raise ValueError("expect_path under the pairs estimator needs pairs simulated to the end: "
                                 "simulate with estimator=PoissonPairs(full_paths=True)")
            rows = jnp.arange(exact.shape[1])
            before = (rows[None, None, :] < pairs.first_row[:, :, None])[..., None]  # (B, P, T, 1)
            both = jax.vmap(per_run)
            difference = (both(jnp.where(before, exact[:, None], pairs.perturbed))
                          - both(jnp.where(before, exact[:, None], pairs.reference)))  # (B, P, ...)
            return _weighted_sum(pairs.weight, difference)

        log_likelihood = None if self.log_likelihood is None else self.log_likelihood[:, -1]
        return self._expectation(per_run, log_likelihood, pair_term)

    def _expectation(self, per_run, log_likelihood, pair_term):
        """The mean over runs of ``per_run(states)`` (B, ...) with the estimator's derivative terms:
        the score function's with ``log_likelihood`` (B, ...) and the pairs' ``pair_term(pairs,
        states)``; without either, the states' own (pathwise) derivatives. float64 states (forward
        only) are averaged with JAX's 64-bit mode on, so that counts beyond 2**24 stay exact."""
        if self.pairs is None and self.log_likelihood is None:
            if self.states.dtype == np.float64:
                with jax.enable_x64(True):
                    return jnp.mean(per_run(self.states), axis=0)
            return jnp.mean(per_run(self.states), axis=0)  # pathwise (surrogates) or no derivatives
        exact = jax.lax.stop_gradient(self.states)
        values = per_run(exact)
        total = jnp.mean(values, axis=0)
        if log_likelihood is not None:
            total = total + jnp.mean(_score_term(log_likelihood, values), axis=0)
        if self.pairs is not None:
            total = total + jnp.mean(pair_term(self.pairs, exact), axis=0)
        return total

    def mean(self):
        """(T, S) mean over runs."""
        return self.expect()

    def sd(self):
        """(T, S) standard deviation over runs (n - 1 in the denominator), differentiable exactly
        through the first and second moments (about the mean rounded, held constant)."""
        runs = self.states.shape[0]
        if self.states.dtype == np.float64:  # forward only (float64 counts): deviations, in 64-bit mode
            with jax.enable_x64(True):
                return jnp.std(self.states, axis=0, ddof=1 if runs > 1 else 0)
        # Moments about a constant c, the mean rounded to a whole count: Var = E[(X - c)^2] - E[X - c]^2
        # with exact derivatives (c's cancel), and no float32 cancellation of E[X^2] - E[X]^2 (which
        # read an SD of 2.8 for a constant 10,000): the deviations of counts from c are exact.
        centre = jnp.round(jax.lax.stop_gradient(self.expect()))
        shift = self._expect_grid(lambda states: states - centre)
        second = self._expect_grid(lambda states: jnp.square(states - centre))
        variance = (second - shift**2) * (runs / (runs - 1) if runs > 1 else 1.0)
        positive = variance > 0  # sqrt has no derivative at 0 (all runs equal, e.g. at time 0): 0 there
        return jnp.where(positive, jnp.sqrt(jnp.where(positive, variance, 1.0)), 0.0)

    # ----------------------------------------------------------------- export
    def summary_table(self) -> dict[str, np.ndarray]:
        """Columns ``time``, ``<species>-mean``, ``<species>-sd`` (the DSMTS layout), variables and
        observables after the species."""
        table = {"time": np.asarray(self.times)}
        ddof = 1 if self.states.shape[0] > 1 else 0
        for name, values in self._columns().items():
            table[f"{name}-mean"] = values.mean(axis=0)
            table[f"{name}-sd"] = values.std(axis=0, ddof=ddof)
        return table

    def _columns(self) -> dict[str, np.ndarray]:
        """name -> (B, T) float64 values of every species, variable and observable (one column at a
        time in float64: no float64 copy of every state)."""
        states = np.asarray(self.states)
        columns = {s: states[:, :, i].astype(np.float64) for i, s in enumerate(self.species)}
        columns.update({o: np.asarray(v, dtype=np.float64) for o, v in self.observables.items()})
        return columns

    def long_table(self) -> dict[str, np.ndarray]:
        """One row per run and time (B * T rows, run-major): columns ``run``, ``time``, then every
        species, variable and observable (float64, NaN where the step budget ran out)."""
        b, t, _ = self.states.shape
        table = {"run": np.repeat(np.arange(b), t), "time": np.tile(np.asarray(self.times), b)}
        table.update({name: values.ravel() for name, values in self._columns().items()})
        return table

    def to_dataframe(self, summary: bool = True):
        """A pandas DataFrame (the ``dataframe`` extra): :meth:`summary_table`, or (``summary=False``)
        :meth:`long_table`."""
        pd = require("pandas", "dataframe", "Trajectories.to_dataframe")

        return pd.DataFrame(self.summary_table() if summary else self.long_table())

    def to_csv(self, path, summary: bool = True) -> None:
        """Write :meth:`summary_table` (or, ``summary=False``, :meth:`long_table`) to ``path`` as CSV, as
        pandas' ``to_csv`` would (no index column; blank where NaN), without needing pandas."""
        write_csv(path, self.summary_table() if summary else self.long_table())


def leave_one_out_mean(values):
    """(B, ...) -> (B, ...): for each run the mean of the others (NaN rows left out), no gradient."""
    values = jax.lax.stop_gradient(values)
    ok = ~jnp.isnan(values)
    clean = jnp.where(ok, values, 0.0)
    total, count = jnp.sum(clean, axis=0), jnp.sum(ok, axis=0)
    return (total - clean) / jnp.maximum(count - ok, 1)


def _score_term(log_likelihood, values):
    """(B, T, ...) ``(log L - stop_gradient(log L)) (f - b)``: 0 forward, the score-function derivative."""
    centred = jax.lax.stop_gradient(values - leave_one_out_mean(values))
    score = log_likelihood - jax.lax.stop_gradient(log_likelihood)
    return score.reshape(score.shape + (1,) * (centred.ndim - score.ndim)) * centred


def _pair_term(pairs: PairPaths, per_pair):
    """(B, T, ...) ``sum_p weight_p (f(perturbed_p) - f(reference_p))`` over the rows where the pair's
    two paths differ: 0 forward, the pairs estimator's derivative."""
    differ = jnp.any(pairs.perturbed != pairs.reference, axis=-1)  # (B, P, T)
    difference = per_pair(pairs.perturbed) - per_pair(pairs.reference)  # (B, P, T, ...)
    mask = differ.reshape(differ.shape + (1,) * (difference.ndim - 3))
    return _weighted_sum(pairs.weight, jnp.where(mask, difference, 0.0))


def _weighted_sum(weight, difference):
    """``sum_p weight_p difference_p``: weight (B, P), difference (B, P, ...) -> (B, ...)."""
    return jnp.sum(weight.reshape(weight.shape + (1,) * (difference.ndim - 2)) * difference, axis=1)


def time_grid(t_end: float, points: int) -> np.ndarray:
    """``points + 1`` equally spaced times from 0 to ``t_end`` (both included)."""
    if not (math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be positive and finite, got {t_end!r}")
    if int(points) != points or points < 1:
        raise ValueError(f"points must be a positive integer, got {points!r}")
    return np.linspace(0.0, float(t_end), int(points) + 1, dtype=np.float32)
