"""Random numbers: PRNG keys from seeds, and counter-based uniforms per trajectory.

Every trajectory has its own (2,) uint32 Threefry-2x32 key. A draw is addressed by a counter pair
``(n, stream * 2**16 + i)``: event ``n`` of the trajectory, a stream (what the number is for) and an
index within the draw, so the same event always gets the same numbers (a pending event can be
recomputed exactly in a later iteration) and different uses never share them. Streams in use: 0 the
direct method's clock and choice, 1 Gumbel noise, ``k + 1`` the next-reaction method's channel ``k``,
``SAMPLER_STREAM`` the pairs estimator's placement and its pairs' keys, ``TAU_LEAP_STREAM`` the
tau-leaping engine's draws (its own method: no simulation uses it together with the next-reaction
channels, whose streams end at ``2**16 - 2``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry_2x32

__all__ = ["as_key", "batches", "bits_to_uniform", "bits", "uniforms", "derived_key", "SAMPLER_STREAM", "TAU_LEAP_STREAM"]

SAMPLER_STREAM = 0xFFFF  # above the next-reaction channels' streams 1 .. 2**16 - 2
TAU_LEAP_STREAM = 0xFFFE  # diffssa.simulation.tau_leap: one draw of words per step


def as_key(key):
    """A JAX PRNG key from a key or an integer seed (every one of a seed's 64 bits counts)."""
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"a seed must be an integer or a JAX key, got {key!r}")
    if isinstance(key, (int, np.integer)):
        seed = int(key)
        if not -(2**63) <= seed < 2**64:
            raise ValueError(f"seed {seed} does not fit in 64 bits")
        seed %= 2**64
        return jnp.array([seed >> 32, seed & 0xFFFFFFFF], dtype=jnp.uint32)
    return key


def batches(key, runs: int, size: int):
    """``runs`` trajectories in batches of at most ``size``: yields ``(batch_key, start, count)``,
    batch ``i`` with key ``fold_in(as_key(key), i)``, so a result does not depend on how a caller
    consumes the batches."""
    if runs < 1 or size < 1:
        raise ValueError(f"runs and the batch size must be positive, got runs={runs}, size={size}")
    key = as_key(key)
    for i, start in enumerate(range(0, runs, size)):
        yield jax.random.fold_in(key, i), start, min(size, runs - start)


def bits_to_uniform(bits):
    """uint32 random bits -> float32 uniforms in [0, 1) (23 mantissa bits, as ``jax.random.uniform``)."""
    return jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0


def bits(key, n, stream: int, size: int):
    """``size`` uint32 random words for event ``n`` of a trajectory (``key``: its (2,) uint32 key)."""
    pairs = -(-size // 2)
    counts = jnp.concatenate([
        jnp.full((pairs,), n, jnp.uint32),
        jnp.uint32(stream << 16) + jnp.arange(pairs, dtype=jnp.uint32),
    ])
    return threefry_2x32(key, counts)[:size]


def uniforms(key, n, stream: int, size: int):
    """``size`` uniforms in [0, 1) for event ``n`` of a trajectory (``key``: its (2,) uint32 key)."""
    return bits_to_uniform(bits(key, n, stream, size))


def derived_key(key, index, stream: int):
    """A (2,) uint32 key for sub-stream ``index`` (>= 1) of ``stream``: the counter pair
    ``(index, stream * 2**16)``, which :func:`uniforms` never addresses with ``n = index >= 1`` on that
    stream as long as the stream's own draws use ``n = 0`` only."""
    return threefry_2x32(key, jnp.stack([jnp.asarray(index, jnp.uint32), jnp.uint32(stream << 16)]))
