"""Fitting parameters by gradient descent through the exact simulator.

``fit`` is a small optax loop: a user loss ``loss(params, key) -> scalar`` over a dict of positive
parameters, optimised in log space (rates are positive and span decades), a fresh PRNG key per
iteration folded from the seed key, a progress bar, and the loss and parameter history. Options for
noisy simulation-based losses: skip a step whose loss or gradient is not finite instead of stopping,
project the iterate after every update (bounds), and a per-step callback that sees every iterate.
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
    """``params``: fitted values; ``losses`` (steps,); ``history``: name -> (steps,) values before each
    update; ``skipped`` (steps,) bool: steps left out for a non-finite loss or gradient (``skip_nonfinite``)."""

    params: dict[str, float]
    losses: np.ndarray
    history: dict[str, np.ndarray]
    skipped: np.ndarray


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
    skip_nonfinite: bool = False,
    project: Callable[[dict[str, jax.Array]], dict[str, jax.Array]] | None = None,
    callback: Callable[[int, dict[str, float], float], None] | None = None,
) -> FitResult:
    """Minimise ``loss(params, key)`` from ``initial`` with optax (default Adam, learning rate 0.05).

    With ``log_space`` (default) the optimiser works on log parameters, so every value stays positive
    and a step is a relative change. Step ``i`` (0-based) evaluates the loss with the key
    ``jax.random.fold_in(key, i)``. ``average_last = n`` returns the average of the last ``n``
    iterates (Polyak-Ruppert averaging, in the optimised space), which averages the Monte Carlo noise
    of the gradients down; otherwise the final iterate. Returns the parameters and the history.

    A loss or parameter that is not finite raises ``FloatingPointError``. With ``skip_nonfinite``, a
    step whose loss or gradient is not finite leaves the iterate unchanged instead (the optimiser
    still advances its state, with a zero gradient) and is marked in ``FitResult.skipped``.
    ``project(iterate) -> iterate`` runs inside the compiled step after every update, on the dict of
    optimised values (log parameters with ``log_space``; float32 scalars), e.g. ``jnp.clip`` to bounds.
    ``callback(step, iterate, loss)`` runs after every step with the number of steps done
    (1..``steps``), the optimised values after the update as floats and the step's loss.
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
        finite = True
        if skip_nonfinite:
            leaves = jax.tree_util.tree_leaves(grads)
            finite = jnp.isfinite(value) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in leaves]))
            grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
        updates, state = optimizer.update(grads, state, u)
        new = optax.apply_updates(u, updates)
        if skip_nonfinite:
            new = jax.tree_util.tree_map(lambda n, old: jnp.where(finite, n, old), new, u)
        if project is not None:
            new = project(new)
        return new, state, value, finite

    key = as_key(key)
    first_averaged = max(steps - average_last, 0)
    total = None  # sum of the averaged iterates
    losses, skipped, history = [], [], {k: [] for k in initial}
    bar = progress_bar(range(steps), desc=description, disable=not progress, leave=False, mininterval=1.0)
    for i in bar:
        for k, v in to_params(u).items():
            history[k].append(float(v))
        u, state, value, finite = update(u, state, jax.random.fold_in(key, i))
        losses.append(float(value))
        skipped.append(not bool(finite))
        if (not skip_nonfinite and not np.isfinite(losses[-1])) or not all(
                np.all(np.isfinite(np.asarray(v))) for v in u.values()):
            raise FloatingPointError(
                f"{description}: the loss or the parameters became NaN or infinite at step {i} (loss "
                f"{losses[-1]}); a simulation warning above names the cause if one was found (an invalid "
                "kinetic law, an exhausted step budget), else lower the learning rate")
        if callback is not None:
            callback(i + 1, {k: float(v) for k, v in u.items()}, losses[-1])
        bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
        if average_last and i >= first_averaged:
            total = u if total is None else jax.tree_util.tree_map(jnp.add, total, u)
    if average_last:
        u = jax.tree_util.tree_map(lambda v: v / min(average_last, steps), total)
    final = {k: float(v) for k, v in to_params(u).items()}
    return FitResult(final, np.array(losses), {k: np.array(v) for k, v in history.items()}, np.array(skipped))
