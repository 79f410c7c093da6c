"""Fitting parameters by gradient descent through the exact simulator.

``fit`` is a small optax loop: a user loss ``loss(params, key) -> scalar`` over a dict of positive
parameters, optimised in log space (rates are positive and span decades), a fresh PRNG key per
iteration folded from the seed key, a progress bar, and the loss and parameter history.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .progress import progress_bar
from .rng import as_key
from .simulation.trajectories import Trajectories

__all__ = ["FitResult", "fit", "moment_loss"]


class FitResult(NamedTuple):
    """``params``: fitted values; ``losses`` (steps,); ``history``: name -> (steps,) values before each update."""

    params: dict[str, float]
    losses: np.ndarray
    history: dict[str, np.ndarray]


def moment_loss(trajectories: Trajectories, species: str, target_mean, target_sd=None):
    """Mean squared standardised error of the mean (and SD) time course of one species.

    ``target_mean``, ``target_sd``: (T,) exact or observed moments on the trajectories' grid. Errors
    are divided by ``max(target_sd, 1)`` so every time point weighs alike whatever its scale. The
    moments come from :meth:`Trajectories.mean` and :meth:`Trajectories.sd`, whose derivatives are
    the estimator's own for the first and second moments (unbiased under the pairs and score-function
    estimators).
    """
    index = trajectories.index(species)
    mean = trajectories.mean()[:, index]
    target_mean = jnp.asarray(target_mean, mean.dtype)
    scale = jnp.maximum(jnp.asarray(target_sd, mean.dtype), 1.0) if target_sd is not None else 1.0
    loss = jnp.mean(((mean - target_mean) / scale) ** 2)
    if target_sd is not None:
        sd = trajectories.sd()[:, index]
        loss = loss + jnp.mean(((sd - jnp.asarray(target_sd, mean.dtype)) / scale) ** 2)
    return loss


def fit(
    loss: Callable[[Mapping[str, jax.Array], jax.Array], jax.Array],
    initial: Mapping[str, float],
    *,
    key,
    steps: int,
    optimizer: optax.GradientTransformation | None = None,
    log_space: bool = True,
    progress: bool = True,
    description: str = "fitting",
    average_last: int = 0,
) -> FitResult:
    """Minimise ``loss(params, key)`` from ``initial`` with optax (default Adam, learning rate 0.05).

    With ``log_space`` (default) the optimiser works on log parameters, so every value stays positive
    and a step is a relative change. ``average_last = n`` returns the average of the last ``n``
    iterates (Polyak-Ruppert averaging, in the optimised space), which averages the Monte Carlo noise
    of the gradients down; otherwise the final iterate. Returns the parameters and the history.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    for name, value in initial.items():
        if log_space and not float(value) > 0:
            raise ValueError(f"parameter {name!r} must be positive to be fitted in log space, got {value}")
    optimizer = optimizer or optax.adam(0.05)
    to_params = (lambda u: jax.tree_util.tree_map(jnp.exp, u)) if log_space else (lambda u: u)
    u = {k: jnp.asarray(np.log(v) if log_space else v, jnp.float32) for k, v in initial.items()}
    state = optimizer.init(u)

    @jax.jit
    def update(u, state, key):
        value, grads = jax.value_and_grad(lambda u: loss(to_params(u), key))(u)
        updates, state = optimizer.update(grads, state, u)
        return optax.apply_updates(u, updates), state, value

    key = as_key(key)
    first_averaged, total = max(steps - average_last, 0), None  # the running sum of the averaged iterates
    losses, history = [], {k: [] for k in initial}
    bar = progress_bar(range(steps), desc=description, disable=not progress, leave=False, mininterval=1.0)
    for i in bar:
        for k, v in to_params(u).items():
            history[k].append(float(v))
        u, state, value = update(u, state, jax.random.fold_in(key, i))
        losses.append(float(value))
        if not np.isfinite(losses[-1]) or not all(np.all(np.isfinite(np.asarray(v))) for v in u.values()):
            raise FloatingPointError(
                f"{description}: the loss or the parameters became NaN or infinite at step {i} (loss "
                f"{losses[-1]}); a simulation warning above names the cause if one was found (an invalid "
                "kinetic law, an exhausted step budget), else lower the learning rate")
        bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        if average_last and i >= first_averaged:
            total = u if total is None else jax.tree_util.tree_map(jnp.add, total, u)
    if average_last:
        u = jax.tree_util.tree_map(lambda v: v / min(average_last, steps), total)
    final = {k: float(v) for k, v in to_params(u).items()}
    return FitResult(final, np.array(losses), {k: np.array(v) for k, v in history.items()})
