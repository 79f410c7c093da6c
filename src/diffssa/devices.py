"""Spread simulations over every CPU core: one JAX CPU device per core.

:func:`diffssa.simulate` splits its batch of trajectories evenly over ``jax.local_devices()`` (each
device runs its share independently), so several GPUs are used as they are. On a CPU, JAX exposes a
single device that runs the simulator's loop on one core; :func:`use_cpu_cores` asks JAX for one CPU
device per core instead. It must run before JAX creates its backends (before the first JAX operation):
the command line and the benchmarks call it first thing; a library user calls it right after
``import diffssa``. Results do not depend on the number of devices (every trajectory has its own key).
"""

from __future__ import annotations

import os

import jax

__all__ = ["available_cores", "use_cpu_cores"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_cores(count: int | None = None) -> int:
    """Expose ``count`` (default: :func:`available_cores`) CPU devices to JAX; returns the CPU device count.

    Does nothing if JAX's backends already exist (some JAX operation has run), or if the user chose a
    count already (``jax_num_cpu_devices`` set, or ``--xla_force_host_platform_device_count`` in
    ``XLA_FLAGS``); the returned count is then the one in effect.
    """
    from jax._src import (
        xla_bridge,  # the only way to ask whether the backends exist yet
    )

    if count is not None and (int(count) != count or count < 1):
        raise ValueError(f"count must be a positive integer, got {count!r}")
    chosen = jax.config.jax_num_cpu_devices > 0 or "xla_force_host_platform_device_count" in os.environ.get(
        "XLA_FLAGS", ""
    )
    if not chosen and not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", int(count or available_cores()))
    return len(jax.devices("cpu"))
