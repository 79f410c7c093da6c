"""Exact simulation by the next-reaction method: one random stream per reaction channel.

Anderson's modified next-reaction method (J. Chem. Phys. 127, 214107, 2007) simulates the random
time-change representation ``X(t) = X(0) + sum_k nu_k Y_k(int_0^t a_k(X(s)) ds)``, the ``Y_k``
independent unit-rate Poisson processes. Each channel ``k`` keeps the internal time left until its
next firing, ``remaining_k`` (an Exp(1) draw when it last fired, used up at rate ``a_k``); the next
reaction is the channel with the smallest ``remaining_k / a_k``. The law is exactly that of the
direct method.

What it adds: channel ``k``'s Exp(1) draws are indexed by the trajectory key, ``k`` and ``k``'s own
firing count, so two simulations with the same key at different parameter values share every
channel's Poisson process (the *common reaction path* coupling of Rathinam, Sheppard & Khammash,
J. Chem. Phys. 132, 034103, 2010). They stay close long after the direct method's event-indexed
random numbers have drifted apart, which makes finite differences between them far less noisy
(:func:`diffssa.reference.finite_differences.finite_difference_gradient`). Forward only; networks with events
are refused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.random import threefry_2x32

from ..compiled import CompiledNetwork
from ..rng import bits_to_uniform
from .drivers import forward_loop, recorded_states
from .engine import (
    checked_propensities,
    flag_counts,
    initial_carry,
    invalid_rate_constants,
)
from .sharding import over_devices

__all__ = ["MAX_CHANNELS", "build_next_reaction_runner"]

MAX_CHANNELS = 2**16 - 2  # channel k draws from stream k + 1 of the trajectory's 2**16 counter streams


def channel_exponentials(key, channels, counts):
    """Exp(1) draws number ``counts[i]`` of channel ``channels[i]``'s stream; (m,) int arrays -> (m,)."""
    words = jnp.concatenate([counts.astype(jnp.uint32), (channels.astype(jnp.uint32) + 1) << 16])
    return -jnp.log1p(-bits_to_uniform(threefry_2x32(key, words)[: counts.shape[0]]))


def _make_step(compiled: CompiledNetwork, grid, max_steps: int):
    """Single-trajectory step ``(carry, theta) -> (carry, stuck)``: record the next grid row or fire."""
    nu = jnp.asarray(compiled.stoichiometry)
    n_grid = grid.shape[0]

    def step(c, theta):
        remaining, fired = c.engine
        active = c.r < n_grid
        row = jnp.minimum(c.r, n_grid - 1)
        a, invalid = checked_propensities(compiled, c.x, theta, c.invalid, active)
        positive = a > 0
        wait = jnp.where(positive, remaining / jnp.where(positive, a, 1.0), jnp.inf)
        mu = jnp.argmin(wait)
        tau = wait[mu]
        # compare waiting times with time differences: t + tau can round to t in float32
        record = active & (tau > grid[row] - c.t)
        due = active & ~record
        fire = due & (c.n < max_steps)
        buf = c.buf.at[jnp.where(record, row, n_grid)].set(c.x, mode="drop")
        used = jnp.maximum(remaining - jnp.where(positive, a * tau, 0.0), 0.0)
        count = fired[mu] + 1
        fresh = channel_exponentials(c.key, mu[None], count[None])[0]
        new = c._replace(
            x=jnp.where(fire, c.x + nu[mu], c.x),
            t=jnp.where(fire, c.t + tau, c.t),
            n=c.n + fire.astype(c.n.dtype),
            r=c.r + record.astype(c.r.dtype),
            buf=buf,
            engine=(jnp.where(fire, used.at[mu].set(fresh), remaining), jnp.where(fire, fired.at[mu].set(count), fired)),
            invalid=invalid,
        )
        return new._replace(invalid=flag_counts(compiled, 0, new.invalid, new.x)), due & ~fire

    return step


def build_next_reaction_runner(compiled: CompiledNetwork, n_grid: int, max_steps: int, devices: tuple):
    """A jitted ``run(grid, theta (B,P), x0 (B,S), keys (B,2), None) -> (states, exhausted, events, invalid,
    ())`` (as the direct method's runner, with no estimator state)."""
    n_reactions = compiled.stoichiometry.shape[0]

    def core(grid, theta, x0, keys, state0):
        channels = jnp.arange(n_reactions)
        first = jax.vmap(lambda k: channel_exponentials(k, channels, jnp.zeros_like(channels)))(keys)
        carry = initial_carry(x0, keys, n_grid, engine=(first, jnp.zeros((x0.shape[0], n_reactions), jnp.int32)),
                              invalid=invalid_rate_constants(compiled, theta))
        step = jax.vmap(_make_step(compiled, grid, max_steps))
        carry = forward_loop(step, carry, theta, n_grid)
        states, exhausted = recorded_states(carry, n_grid)
        return states, exhausted, carry.n, carry.invalid, ()

    return jax.jit(over_devices(core, devices))
