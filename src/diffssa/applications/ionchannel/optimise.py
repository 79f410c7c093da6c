"""The optimiser of the simulation-based fit: Adam on log rate constants through :func:`diffssa.fitting.fit`.

The settings of the ion-channel fits on top of ``fit``: a learning rate decaying (cosine) from
``learning_rate`` to ``final_learning_rate``, gradient clipping, steps with a non-finite loss or
gradient skipped (``skip_nonfinite``), log rates kept within ``bounds`` of their initial values
(``project``) and the average of the last iterates, taken in float64 from the iterates ``fit``
reports to its callback.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...fitting import fit

__all__ = ["optimise"]


def optimise(loss: Callable[[Mapping[str, jax.Array], jax.Array], jax.Array], initial: Mapping[str, float], *,
             key, steps: int, learning_rate: float = 0.05, final_learning_rate: float = 0.005, clip: float = 2.0,
             average_last: int = 1, bounds: tuple[float, float] = (-4.0, 4.0),
             callback: Callable[[int, float], None] | None = None, every: int = 10):
    """Adam on log rate constants (one compiled step per iteration), through the exact simulator.

    ``loss(rates, key)``: a scalar (e.g. :class:`.loss.SimulationLoss`); ``initial``: name -> rate
    constant (> 0, units of the scheme). Step ``i`` uses the key ``fold_in(key, i)``. The learning rate
    decays (cosine) from ``learning_rate`` to ``final_learning_rate``, the global gradient norm is
    clipped to ``clip``, a step with a non-finite loss or gradient is skipped, log rates stay within
    ``bounds`` (natural-log units) of their initial values, and the average of the last
    ``average_last`` (>= 1) iterates (in log space) is returned. ``callback(step, loss)`` every
    ``every`` steps and after the last, with the mean loss of the steps since the previous call.
    Returns ``(rates, losses (steps,), skipped)``: the fitted rate constants, the loss of every
    step and the number of skipped steps.
    """
    if average_last < 1:
        raise ValueError(f"average_last must be at least 1, got {average_last}")
    start = {k: jnp.asarray(np.log(float(v)), jnp.float32) for k, v in initial.items()}
    lo = {k: v + bounds[0] for k, v in start.items()}
    hi = {k: v + bounds[1] for k, v in start.items()}
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=final_learning_rate / learning_rate)
    iterates, losses = [], []

    def record(step, iterate, value):
        iterates.append(iterate)
        losses.append(value)
        if callback is not None and (step % every == 0 or step == steps):
            callback(step, float(np.mean(losses[-every:])))

    result = fit(loss, initial, key=key, steps=steps,
                 optimizer=optax.chain(optax.clip_by_global_norm(clip), optax.adam(schedule)),
                 skip_nonfinite=True, project=lambda u: {k: jnp.clip(v, lo[k], hi[k]) for k, v in u.items()},
                 callback=record, progress=False)
    tail = iterates[-average_last:]
    rates = {k: float(np.exp(np.mean([u[k] for u in tail]))) for k in initial}
    return rates, result.losses, int(result.skipped.sum())
