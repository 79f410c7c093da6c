"""A batch of independent trajectories split evenly over devices (no communication between them)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["over_devices", "pad_batch"]


def pad_batch(arrays, multiple: int):
    """The (B, ...) leaves of ``arrays`` with their first row repeated up to a multiple of ``multiple``
    rows (callers drop the results of the copies)."""
    leaves, tree = jax.tree_util.tree_flatten(arrays)
    pad = -leaves[0].shape[0] % multiple
    if not pad:
        return arrays
    return jax.tree_util.tree_unflatten(tree, [jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) for a in leaves])


def over_devices(run, devices: tuple):
    """``run(grid, *batched)`` with the batch split evenly over ``devices``.

    Each device simulates its share independently (its own early exit; no communication), so on a
    CPU with ``jax.config.update("jax_num_cpu_devices", cores)`` every core works, and on a machine
    with several accelerators every one does. With one device ``run`` is returned unchanged.
    """
    if len(devices) == 1:
        return run
    mesh = jax.sharding.Mesh(np.array(devices), ("runs",))
    spec = jax.sharding.PartitionSpec("runs")

    def split_run(grid, *batched):
        sharded = jax.shard_map(run, mesh=mesh, in_specs=(jax.sharding.PartitionSpec(),) + (spec,) * len(batched),
                                out_specs=spec, check_vma=False)
        batch = jax.tree_util.tree_leaves(batched)[0].shape[0]
        outs = sharded(grid, *pad_batch(batched, len(devices)))
        return jax.tree_util.tree_map(lambda a: a[:batch], outs)

    return split_run
