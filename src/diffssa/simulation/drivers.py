"""The drivers that run a batched step function until every trajectory has filled its grid.

* :func:`forward_loop`: a ``lax.while_loop`` that stops as soon as every trajectory has filled its
  grid (no derivatives through it);
* :func:`differentiable_loop`: a ``lax.scan`` of fixed length ``max_steps + len(times)``, cut in
  chunks that are rematerialised in the backward pass (memory grows with the chunk, not with the
  number of steps) and skipped once every trajectory is finished;
* :func:`jit_runner`: a one-device batch runner jitted, split over devices
  (:mod:`~diffssa.simulation.sharding`) and, when differentiable, cut in rematerialised slices.

A carry is any pytree with ``r`` (B,) the next grid row to record and ``buf`` (B, T, S) the recorded
rows (:class:`~diffssa.simulation.engine.Carry`); a step maps ``(carry, theta) -> (carry, stuck)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .sharding import over_devices, pad_batch

__all__ = ["jit_runner", "forward_loop", "run_loop", "differentiable_loop", "recorded_states", "running"]


UNROLL = 4  # forward-path steps per while-loop iteration (fewer loop-condition checks)


BATCH_SLICE = 10_000  # differentiable path: trajectories per rematerialised slice of the batch


def jit_runner(core, differentiable: bool, devices: tuple):
    """``core(grid, theta, x0, keys, state0)`` (one device, a batch) jitted, with the batch split over
    ``devices`` and, on the differentiable path, cut in rematerialised slices of ``BATCH_SLICE``
    trajectories (the drivers of every engine with a differentiable path)."""
    if not differentiable:
        return jax.jit(over_devices(core, devices))

    def run(grid, theta, x0, keys, state0):
        """Differentiable path: slices of the batch, each rematerialised whole in the backward pass,
        so backward memory is that of one slice (at the cost of one more forward recomputation)."""
        batch = x0.shape[0]
        if batch <= BATCH_SLICE:
            return core(grid, theta, x0, keys, state0)
        slices = -(-batch // BATCH_SLICE)
        padded = pad_batch((theta, x0, keys, state0), BATCH_SLICE)
        one = jax.checkpoint(lambda args: core(grid, *args))
        outs = jax.lax.map(one, jax.tree_util.tree_map(lambda a: a.reshape((slices, BATCH_SLICE) + a.shape[1:]), padded))
        return jax.tree_util.tree_map(lambda a: a.reshape((slices * BATCH_SLICE,) + a.shape[2:])[:batch], outs)

    return jax.jit(over_devices(run, devices))


def running(c, stuck, n_grid):
    """(B,) trajectories of carry ``c`` still to record a grid row and not stopped by their step budget."""
    return (c.r < n_grid) & ~stuck


def forward_loop(step, carry, theta, n_grid, running=running):
    """Iterate the batched ``step`` in a ``while_loop`` until no trajectory is ``running``."""

    def cond(state):
        return jnp.any(running(*state, n_grid))

    def body(state):
        for _ in range(UNROLL):
            state = step(state[0], theta)
        return state

    return jax.lax.while_loop(cond, body, (carry, jnp.zeros(carry.r.shape, bool)))[0]


def run_loop(step, carry, theta, n_grid, max_steps, differentiable: bool, chunk: int):
    """The finished carry: :func:`differentiable_loop` when derivatives must flow through the steps,
    else the early-exit :func:`forward_loop`."""
    if differentiable:
        return differentiable_loop(step, carry, theta, n_grid, max_steps, chunk)
    return forward_loop(step, carry, theta, n_grid)


def differentiable_loop(step, carry, theta, n_grid, max_steps, chunk):
    """Iterate the batched ``step`` ``max_steps + n_grid`` times in rematerialised chunks."""
    n_chunks = -(-(max_steps + n_grid) // chunk)

    @jax.checkpoint
    def run_chunk(state, theta):
        # Each step is rematerialised too: the backward pass of a chunk keeps only the carries.
        remat_step = jax.checkpoint(step, policy=jax.checkpoint_policies.nothing_saveable)

        def body(s, _):
            return remat_step(s[0], theta), None

        return jax.lax.scan(body, state, None, length=chunk)[0]

    def outer(state, _):
        go = jnp.any(running(*state, n_grid))
        return jax.lax.cond(go, run_chunk, lambda s, th: s, state, theta), None

    batch = carry.r.shape[0]
    return jax.lax.scan(outer, (carry, jnp.zeros((batch,), bool)), None, length=n_chunks)[0][0]


def recorded_states(carry, n_grid):
    """``(states (B, T, S) with unreached rows NaN, exhausted (B,))`` from a finished carry."""
    unreached = jnp.arange(n_grid)[None, :] >= carry.r[:, None]
    return jnp.where(unreached[:, :, None], jnp.nan, carry.buf), carry.r < n_grid
