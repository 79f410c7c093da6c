"""The pairs estimator: unbiased parameter sensitivities from coupled pairs of exact paths.

The representation (Gupta & Khammash, SIAM J. Sci. Comput. 2013; J. R. Soc. Interface 2014): for a
network with propensities ``a_k(x; theta)`` and stoichiometries ``nu_k``,

    d E[f(X(t))] / d theta = E[ int_0^t sum_k d a_k(X(s)) / d theta * D_k(s) ds ],
    D_k(s) = E[f(X(t)) | X(s) = X(s-) + nu_k] - E[f(X(t)) | X(s) = X(s-)],

the effect on the outcome of reaction ``k`` firing once more at time ``s``. It is exact, with no
linearisation of the counts, which is why it stays right on genes with 0/1 copies and steep Hill
functions, where pathwise surrogates are biased.

The estimator (what :func:`build_pair_runner` computes, per trajectory):

1. **Placement.** For every reaction ``k`` whose law reads a differentiated parameter, ``m`` points
   along the trajectory (``m = PoissonPairs.per_reaction``), placed by stratified sampling of the
   reaction's *activity* ``h_k(X(s))``: a mass-action law without its rate constant (so a reaction
   with rate 0 is still sampled where its derivative is not 0), a custom law itself. Point ``i`` sits
   where the cumulative activity reaches ``(i + U_k) / m * Lambda_k``, ``Lambda_k = int_0^T h_k``,
   ``U_k`` uniform. The trajectory is simulated twice with the same key (the same path): once to
   measure ``Lambda_k``, once to find the points. Their density ``h_k / Lambda_k`` depends on the path
   only, so ``Lambda_k / (m h_k(x_i)) * d a_k(x_i) / d theta * D_k`` summed over the points is an
   unbiased estimate of the integral.
2. **Pairs.** At each point a pair of paths starts from the trajectory's state ``x_i``: the reference
   from ``x_i``, the perturbed from ``x_i + nu_k``, coupled by Anderson's split coupling (each reaction
   fires in both at rate ``min(a_j(y), a_j(z))`` and in the one with the larger propensity alone at
   rate ``|a_j(y) - a_j(z)|``), so their difference is an unbiased, low-variance estimate of ``D_k``.
   Each path alone has the law of the network; once they meet they stay together, and the pair stops
   there (their differences are 0 from then on) unless ``full_paths``.

The trajectories themselves are untouched: the pairs run after them, from their own random streams.
Derivatives then come out of ``weight_i * (f(perturbed) - f(reference))`` with ``weight_i`` exactly
0 forward and ``Lambda_k / (m h_k(x_i)) * d a_k(x_i) / d theta`` backward
(:class:`~diffssa.simulation.trajectories.PairPaths`).

Cost: ``m`` pairs per differentiated reaction and trajectory, each simulated from its point to the
last grid time or until its paths meet; measured in docs/gradients.md. Networks with events are
refused (the representation would miss derivatives of event times and assignments).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..compiled import CompiledNetwork
from ..estimators import Estimator, PoissonPairs
from ..rng import SAMPLER_STREAM, derived_key, uniforms
from .drivers import forward_loop
from .engine import (
    Carry,
    checked_propensities,
    initial_carry,
    make_core,
    reaction_index,
)
from .sharding import over_devices
from .trajectories import PairPaths

__all__ = ["PairOutputs", "build_pair_runner", "differentiated_reactions", "pair_paths"]


class PairOutputs(NamedTuple):
    """What the pair runner returns besides the trajectories (B trajectories, P pairs each).

    branch: (B, P, S) the trajectory's state at each pair's branch point; start (B, P) its time;
    first_row (B, P) the first grid row at or after it; scale (B, P) ``Lambda_k / (m h_k(x_i))`` (0 for
    a reaction never active on the trajectory); reference, perturbed (B, P, T, S) the pairs' paths;
    exhausted (B,) pairs of the trajectory that ran out of the step budget; invalid (B,) 1 + the first
    reaction with a negative or non-finite law in a pair's state, else 0.
    """

    branch: jax.Array
    start: jax.Array
    first_row: jax.Array
    scale: jax.Array
    reference: jax.Array
    perturbed: jax.Array
    exhausted: jax.Array
    invalid: jax.Array


def differentiated_reactions(compiled: CompiledNetwork, names) -> tuple[int, ...]:
    """The reactions whose kinetic law reads one of the parameters ``names``."""
    names = frozenset(names)
    return tuple(k for k, reads in enumerate(compiled.reads) if reads & names)


class _Placement(Estimator):
    """Hooks on the trajectory's own steps that measure the reactions' activity and place the pairs'
    branch points (see the module).

    The activity ``h_k(X(s)) ds`` is weighted by ``w_k(s)``, constant on each grid segment
    ``(t_{j-1}, t_j]``. Per trajectory the state is ``cumulative`` (Rd,) weighted activity so far,
    ``upto`` the time it covers, ``at_rows`` (T, Rd) its value at each grid time, ``segment`` (T, Rd)
    the weights, ``targets`` (P,) the cumulative weighted activity of each point (``inf``: none, the
    first pass), and for each point ``branch`` (P, S) the state there, ``start`` (P,) its time,
    ``density`` (P,) ``h_k w_k`` there, ``found`` (P,).
    """

    name = "pairs placement"

    def __init__(self, compiled: CompiledNetwork, reactions: tuple[int, ...], per_reaction: int):
        # numpy constants: the runner may be built while some caller's function is being traced
        self.compiled, self.reactions, self.per_reaction = compiled, np.asarray(reactions), per_reaction
        self.slot = np.repeat(np.arange(len(reactions)), per_reaction)  # (P,) index into reactions

    def initial(self, batch: int, n_grid: int, n_species: int, segment, targets):
        n_pairs, n_reactions = self.slot.shape[0], self.reactions.shape[0]
        zeros = lambda *shape, dtype=jnp.float32: jnp.zeros((batch,) + shape, dtype)  # noqa: E731
        return (zeros(n_reactions), zeros(), zeros(n_grid, n_reactions), segment, targets,
                zeros(n_pairs, n_species), zeros(n_pairs), zeros(n_pairs), zeros(n_pairs, dtype=bool))

    def _cover(self, state, x, rate, length, last=False):
        """Extend the covered time by ``length`` at weighted activity ``rate`` (Rd,) in state ``x``,
        placing the points whose targets fall inside (``last``: the piece that ends at the last grid
        time, which also takes a target that float rounding left just past the end)."""
        cumulative, upto, at_rows, segment, targets, branch, start, density, found = state
        before, r = cumulative[self.slot], rate[self.slot]
        hit = ~found & (length > 0) & (before <= targets) & (targets < before + r * length)
        hit = hit | (~found & last & (length > 0) & (r > 0) & jnp.isfinite(targets))
        offset = jnp.clip((targets - before) / jnp.where(r > 0, r, 1.0), 0.0, length)
        return (cumulative + rate * length, upto + length, at_rows, segment, targets,
                jnp.where(hit[:, None], x[None, :], branch), jnp.where(hit, upto + offset, start),
                jnp.where(hit, r, density), found | hit)

    def update(self, state, view, delta):
        segment = state[3]
        n_grid = segment.shape[0]
        activity = self.compiled.intensities(view.x, view.a)[self.reactions]  # the step's own propensities
        # up to the grid time recorded now (segment ``row``), then up to the event fired (the next one)
        state = self._cover(state, view.x, activity * segment[view.row],
                            jnp.where(view.record, jnp.maximum(view.g - state[1], 0.0), 0.0), view.finishing)
        cumulative, upto, at_rows = state[:3]
        at_rows = at_rows.at[jnp.where(view.record, view.row, n_grid)].set(cumulative, mode="drop")
        upto = jnp.where(view.record, view.g, upto)
        state = (cumulative, upto, at_rows) + state[3:]
        following = jnp.minimum(view.row + view.record.astype(view.row.dtype), n_grid - 1)
        state = self._cover(state, view.x, activity * segment[following],
                            jnp.where(view.fire, jnp.maximum(view.t + view.tau - upto, 0.0), 0.0))
        cumulative, upto = state[:2]
        return (cumulative, jnp.where(view.fire, view.t + view.tau, upto)) + state[2:]


def _segment_weights(at_rows):
    """(B, T, Rd) activity integrated up to each grid time -> (B, T, Rd) weights of the grid segments
    and (B, Rd) the total weighted activity (0 for a reaction never active).

    Half the points follow the activity over the whole horizon, half are shared evenly between the
    grid times, each spreading its share over its own ``[0, t_j]`` in proportion to the activity
    there: ``w_j = 1/2 / Lambda_T + 1/2 / n sum_{i >= j} 1 / Lambda_i`` (``n`` the grid times with
    activity), so early grid times get points of their own and the total weighted activity is 1.
    """
    active = at_rows > 0
    inverse = jnp.where(active, 1.0 / jnp.where(active, at_rows, 1.0), 0.0)
    tail = jnp.flip(jnp.cumsum(jnp.flip(inverse, axis=1), axis=1), axis=1)  # sum over i >= j
    count = jnp.maximum(jnp.sum(active, axis=1, keepdims=True), 1)
    final = inverse[:, -1:, :]
    weights = 0.5 * final + 0.5 * tail / count
    increments = jnp.diff(at_rows, axis=1, prepend=jnp.zeros_like(at_rows[:, :1]))
    return weights, jnp.sum(weights * increments, axis=1)


def _pair_step(compiled: CompiledNetwork, grid, max_steps: int, full_paths: bool):
    """Single-pair step on a :class:`~diffssa.simulation.engine.Carry` whose ``x`` (2S,) holds the reference and
    the perturbed state: the split coupling's 2R channels (both paths / the one with the larger
    propensity alone), recorded on the grid like the direct method."""
    nu = jnp.asarray(compiled.stoichiometry)
    n_reactions, n_species = nu.shape
    n_grid = grid.shape[0]

    def step(c: Carry, theta):
        reference, perturbed = c.x[:n_species], c.x[n_species:]
        active = (c.r < n_grid) & (full_paths | jnp.any(reference != perturbed))
        row = jnp.minimum(c.r, n_grid - 1)
        a_ref, invalid = checked_propensities(compiled, reference, theta, c.invalid, active)
        a_per, invalid = checked_propensities(compiled, perturbed, theta, invalid, active)
        rates = jnp.concatenate([jnp.minimum(a_ref, a_per), jnp.abs(a_per - a_ref)])
        cum = jnp.cumsum(rates)
        total = cum[-1]
        u = uniforms(c.key, c.n, 0, 2)
        positive = total > 0
        tau = jnp.where(positive, -jnp.log1p(-u[0]) / jnp.where(positive, total, 1.0), jnp.inf)
        channel = reaction_index(rates, cum, u[1] * total, null_event=False)
        record = active & (tau > grid[row] - c.t)
        r_next = c.r + record.astype(c.r.dtype)
        due = active & (r_next < n_grid) & (tau <= grid[jnp.minimum(r_next, n_grid - 1)] - c.t)
        fire = due & (c.n < max_steps)
        k = channel % n_reactions
        both = channel < n_reactions
        perturbed_larger = a_per[k] > a_ref[k]
        change = jnp.concatenate([nu[k] * (both | ~perturbed_larger), nu[k] * (both | perturbed_larger)])
        new = c._replace(
            x=jnp.where(fire, c.x + change, c.x),
            t=jnp.where(fire, c.t + tau, c.t),
            n=c.n + fire.astype(c.n.dtype),
            r=r_next,
            buf=c.buf.at[jnp.where(record, row, n_grid)].set(c.x, mode="drop"),
            invalid=invalid,
        )
        return new, due & ~fire

    return step


def _pair_running(full_paths: bool, n_species: int):
    def running(c: Carry, stuck, n_grid):
        apart = jnp.any(c.x[:, :n_species] != c.x[:, n_species:], axis=1)
        return (c.r < n_grid) & (full_paths | apart) & ~stuck

    return running


def build_pair_runner(compiled: CompiledNetwork, n_grid: int, max_steps: int, estimator: PoissonPairs,
                      reactions: tuple[int, ...], devices: tuple):
    """A jitted ``run(grid, theta (B,P), x0 (B,S), keys (B,2)) -> (states, exhausted, events, invalid,
    PairOutputs)``: the trajectories (exactly those of the direct method with the same key) and their
    pairs for the differentiated ``reactions``. No derivatives flow through it (``theta`` is used as a
    constant); :func:`pair_paths` attaches them."""
    m = estimator.per_reaction
    placement = _Placement(compiled, reactions, m)
    path = make_core(compiled, n_grid, max_steps, placement)
    nu = np.asarray(compiled.stoichiometry)
    n_species = nu.shape[1]
    n_pairs = len(reactions) * m
    pair_reaction = np.asarray(reactions)[placement.slot]  # (P,)
    stratum = np.tile(np.arange(m, dtype=np.float32), len(reactions))  # (P,)

    def core(grid, theta, x0, keys):
        batch = x0.shape[0]
        ones = jnp.ones((batch, n_grid, len(reactions)), jnp.float32)
        empty = placement.initial(batch, n_grid, n_species, ones, jnp.full((batch, n_pairs), jnp.inf))
        states, exhausted, events, invalid, first = path(grid, theta, x0, keys, empty)
        segment, total = _segment_weights(first[2])  # activity integrated up to each grid time
        offsets = jax.vmap(lambda k: uniforms(k, 0, SAMPLER_STREAM, len(reactions)))(keys)  # (B, Rd)
        mass = total[:, placement.slot]
        targets = jnp.where(mass > 0, jnp.minimum((stratum + offsets[:, placement.slot]) / m * mass,
                                                  jnp.nextafter(mass, 0.0)), jnp.inf)
        second = path(grid, theta, x0, keys, placement.initial(batch, n_grid, n_species, segment, targets))[4]
        branch, start, density, found = second[5:]
        used = found & (density > 0)
        scale = jnp.where(used, mass / (m * jnp.where(used, density, 1.0)), 0.0)
        first_row = jnp.where(used, jnp.searchsorted(grid, start, side="left"), n_grid).astype(jnp.int32)
        pair_keys = jax.vmap(lambda k: jax.vmap(lambda p: derived_key(k, p + 1, SAMPLER_STREAM))(
            jnp.arange(n_pairs)))(keys)  # (B, P, 2)
        kicked = branch + jnp.where(used[:, :, None], nu[pair_reaction][None], 0.0)
        flat = lambda a: a.reshape((batch * n_pairs,) + a.shape[2:])  # noqa: E731
        carry = initial_carry(flat(jnp.concatenate([branch, kicked], axis=2)), flat(pair_keys), n_grid,
                              invalid=jnp.zeros((batch * n_pairs,), jnp.int32))._replace(t=flat(start), r=flat(first_row))
        step = jax.vmap(_pair_step(compiled, grid, max_steps, estimator.full_paths))
        running = _pair_running(estimator.full_paths, n_species)
        done = forward_loop(step, carry, jnp.repeat(theta, n_pairs, axis=0), n_grid, running=running)
        left = running(done, jnp.zeros_like(done.r, bool), n_grid)
        buf = done.buf.reshape((batch, n_pairs, n_grid, 2 * n_species))
        pair_invalid = jnp.max(done.invalid.reshape(batch, n_pairs), axis=1)
        outputs = PairOutputs(branch, start, first_row, scale, buf[..., :n_species], buf[..., n_species:],
                              jnp.sum(left.reshape(batch, n_pairs), axis=1), pair_invalid)
        return states, exhausted, events, jnp.where(invalid > 0, invalid, pair_invalid), outputs

    return jax.jit(over_devices(core, devices))


def pair_paths(compiled: CompiledNetwork, theta, reactions: tuple[int, ...], per_reaction: int,
               outputs: PairOutputs, full_paths: bool) -> PairPaths:
    """The pairs with their derivative-carrying weights: ``scale * (a_k(x_i; theta) - stop_gradient(...))``,
    exactly 0 forward, ``scale * d a_k(x_i) / d theta`` backward; ``theta`` (B, P) may be traced."""
    pair_reaction = np.repeat(np.asarray(reactions), per_reaction)

    def law(x, k, th):
        return compiled.laws(x, th)[k]

    a = jax.vmap(jax.vmap(law, in_axes=(0, 0, None)), in_axes=(0, None, 0))(outputs.branch, pair_reaction, theta)
    weight = outputs.scale * (a - jax.lax.stop_gradient(a))
    return PairPaths(weight, outputs.start, outputs.first_row, outputs.reference, outputs.perturbed,
                     outputs.exhausted, full_paths)
