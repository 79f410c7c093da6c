"""Exact chemical master equation (CME) solutions by finite state projection, for small networks.

The reference that simulations and gradient estimators are checked against. The state space is
enumerated by breadth-first search from the initial state: a reaction can fire in a state when its
reactants are present (structural reachability, so the space does not depend on parameter values),
optionally capped per species with ``bounds``. Transitions that leave the enumerated space go to an
absorbing sink, and the probability mass lost there by the last time is the FSP error
``truncation_error`` (Munsky & Khammash 2006). A reaction whose reactants are absent has zero
propensity here, whatever its (custom) law says.

The generator ``Q(theta)`` is built from the network's own compiled propensity function, so the
solution ``p(t) = expm(Q t) p(0)`` is a JAX function of the parameters: gradients of the moments
come from forward-mode autodiff. All of this runs in float64 (inside a ``jax.enable_x64`` context,
leaving the global setting alone).

Cost and limits: every distinct interval between consecutive times needs one dense matrix
exponential of the (N, N) generator (plus its tangents, one per parameter): memory O(N^2) and time
O(N^3). That is fast up to a few hundred states and fine up to a couple of thousand (seconds per
exponential on a CPU); beyond that, bound the species more tightly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..model import ReactionNetwork

__all__ = ["CMESolution", "solve_cme"]


@dataclass(frozen=True)
class CMESolution:
    """The projected CME solution on a time grid (float64 throughout).

    Attributes
    ----------
    times: (T,) observation times (same units as the rate constants' inverse).
    states: (N, S) integer counts of the enumerated states, the initial state first.
    probabilities: (T, N) probability of each state at each time; rows sum to
        ``1 - (mass lost to the sink by that time)``.
    mean, variance: (T, S) moments of the counts over the enumerated states (exact when
        ``truncation_error`` is 0; otherwise the mean is a lower bound and both are FSP approximations).
    truncation_error: probability mass that left the truncated space by the last time.
    mean_gradient: (T, S, P) d E[X_s(t)] / d theta_p in natural parameters, in the order of
        ``parameter_names``.
    species, parameter_names: names along the S and P axes.
    """

    times: np.ndarray
    states: np.ndarray
    probabilities: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    truncation_error: float
    mean_gradient: np.ndarray
    species: tuple[str, ...]
    parameter_names: tuple[str, ...]

    @property
    def sd(self) -> np.ndarray:
        """(T, S) standard deviation of the counts."""
        return np.sqrt(np.maximum(self.variance, 0.0))

    def marginal(self, species: str) -> np.ndarray:
        """(T, M + 1) distribution of one species' count 0..M, M its largest enumerated count."""
        if species not in self.species:
            raise ValueError(f"unknown species {species!r}; known: {', '.join(self.species)}")
        counts = self.states[:, self.species.index(species)]
        out = np.zeros((self.times.shape[0], int(counts.max()) + 1))
        for row, p in zip(out, self.probabilities):
            np.add.at(row, counts, p)
        return out


def _enumerate(network: ReactionNetwork, bounds: Mapping[str, int], max_states: int):
    """BFS over structurally reachable states.

    Returns (N, S) states, (N, R) target state indices (N: the sink) and an (N, R) mask of the
    reactions whose reactants are present.
    """
    species = network.species_names
    nu = network.stoichiometry
    need = np.array([[r.reactants.get(s, 0) for s in species] for r in network.reactions], dtype=np.int64)
    cap = np.array([bounds.get(s, np.iinfo(np.int64).max) for s in species], dtype=np.int64)
    x0 = tuple(int(n) for n in network.species.values())
    if np.any(np.array(x0) > cap):
        raise ValueError(f"the initial state {dict(zip(species, x0))} exceeds bounds {dict(bounds)}")
    index = {x0: 0}
    queue = deque([x0])
    rows = []  # rows[i][j]: index of the state reaction j leads to from state i (-1: the sink)
    while queue:  # states leave the queue in index order
        x = np.array(queue.popleft())
        row = np.full(len(nu), -1, dtype=np.int64)
        for j in np.flatnonzero(np.all(x >= need, axis=1)):
            y = x + nu[j]
            key = tuple(int(v) for v in y)
            if key not in index and np.all(y <= cap):
                if len(index) >= max_states:
                    raise ValueError(
                        f"the state space exceeds max_states={max_states}; pass bounds={{species: max_count}} "
                        "to truncate it (or raise max_states)"
                    )
                index[key] = len(index)
                queue.append(key)
            row[j] = index.get(key, -1)
        rows.append(row)
    states = np.array(list(index), dtype=np.int64)
    targets = np.array(rows)
    targets[targets < 0] = len(states)
    return states, targets, np.all(states[:, None, :] >= need[None], axis=2)


def _check_inputs(network, times, params, bounds):
    if network.events:
        raise ValueError("solve_cme does not support networks with events")
    grid = np.asarray(times, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0) or np.any(np.diff(grid) < 0):
        raise ValueError("times must be a non-empty, finite, non-negative, non-decreasing sequence")
    bounds = dict(bounds or {})
    for s, cap in bounds.items():
        if s not in network.species:
            raise ValueError(f"bounds: unknown species {s!r}; known: {', '.join(network.species)}")
        if int(cap) != cap or cap < 0:
            raise ValueError(f"bounds: the cap of {s!r} must be a non-negative integer, got {cap!r}")
    theta = np.array([float(v) for v in network.parameter_values(params).values()], dtype=np.float64)
    return grid, theta, {s: int(c) for s, c in bounds.items()}


@partial(jax.jit, static_argnums=0)
def _solve(propensities, x, targets, possible, dts, which, theta):
    """(T, S, P) mean gradient and (T, N) probabilities; ``dts[which[i]]`` is the i-th time step."""
    n = x.shape[0]
    sources = jnp.broadcast_to(jnp.arange(n)[:, None], targets.shape)

    def solve(theta):
        a = jax.vmap(propensities, in_axes=(0, None))(x, theta)  # (N, R) events per unit time
        a = jnp.where(possible, a, 0.0)  # a custom law cannot fire a reaction without its reactants
        q = jnp.zeros((n, n), a.dtype).at[targets, sources].add(a, mode="drop") - jnp.diag(a.sum(axis=1))
        steps = jax.vmap(lambda dt: jax.scipy.linalg.expm(q * dt))(dts)  # (U, N, N)

        def advance(p, k):
            p = steps[k] @ p
            return p, p

        probs = jax.lax.scan(advance, jnp.zeros(n, a.dtype).at[0].set(1.0), which)[1]  # (T, N)
        return probs @ x, probs

    return jax.jacfwd(solve, has_aux=True)(theta)


def solve_cme(
    network: ReactionNetwork,
    times,
    params: Mapping[str, float] | None = None,
    *,
    max_states: int = 20_000,
    bounds: Mapping[str, int] | None = None,
) -> CMESolution:
    """Solve the CME of ``network`` on ``times`` by finite state projection, with mean gradients.

    Parameters
    ----------
    times: (T,) non-decreasing observation times >= 0; ``p(0)`` is a point mass at the initial state.
    params: parameter values overriding the network's (name -> float).
    max_states: the enumeration stops with ``ValueError`` beyond this many states. Note the dense
        solver's practical limit is a couple of thousand states (see the module docstring).
    bounds: species name -> largest count kept; transitions beyond it go to the sink.
    """
    grid, theta0, bounds = _check_inputs(network, times, params, bounds)
    states, targets, possible = _enumerate(network, bounds, int(max_states))
    dts, which = np.unique(np.diff(grid, prepend=0.0), return_inverse=True)
    with jax.enable_x64(True):
        args = [jnp.asarray(v) for v in (states.astype(np.float64), targets, possible, dts, which, theta0)]
        jac, probs = _solve(network.compile().propensities, *args)
        probs, mean_gradient = np.asarray(probs), np.asarray(jac)
    mean = probs @ states
    variance = probs @ states.astype(np.float64) ** 2 - mean**2
    return CMESolution(
        times=grid,
        states=states,
        probabilities=probs,
        mean=mean,
        variance=variance,
        truncation_error=float(max(0.0, 1.0 - probs[-1].sum())),
        mean_gradient=mean_gradient,
        species=network.species_names,
        parameter_names=network.parameter_names,
    )
