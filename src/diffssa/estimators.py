"""Gradient surrogates: how the exact simulation is made differentiable in the backward pass only.

Every estimator here leaves the forward pass exact: the waiting times and the reaction choices have
the law of Gillespie's direct method. What differs is the continuous surrogate that carries
derivatives backwards through the discrete choices.

* ``THINNING`` (default): a thinning clock ticks at a bound ``L = c * a0(x)`` with the gradient
  stopped, so the clock does not depend on the parameters; each tick picks reaction ``j`` with
  probability ``a_j / L`` or a null event with ``1 - a0 / L``. The hard one-hot choice is
  straight-through: its backward pass is the gradient of those probabilities. A rate change then
  moves "how many events happen before t" through the null-event probability.
* ``THINNING_GUMBEL``: the same clock, with a Gumbel-softmax straight-through choice at a temperature.
* ``DIRECT``: the direct method (``L = a0``), straight-through over the choice, reparameterised
  waiting times ``tau = E / a0``. Known to be badly biased for E[X(t)] (see ``docs/gradients.md``).
* ``DIRECT_RELAXED``: ``DIRECT`` plus a backward-only smooth step on the indicator "event before the
  observation time" for the events either side of each grid time.
* ``SCORE``: the score-function (likelihood-ratio) estimator: the direct method with no surrogate at
  all; the simulator accumulates the path log-likelihood ``sum log a_j(fired) - integral a0 dt`` up to
  each grid time, and ``grad E[f] = E[(f - b) grad log L]`` (see :mod:`diffssa.gradients`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Estimator",
    "THINNING",
    "THINNING_GUMBEL",
    "DIRECT",
    "DIRECT_RELAXED",
    "SCORE",
    "ESTIMATORS",
    "get_estimator",
]


class Estimator(NamedTuple):
    """Configuration of the backward-pass surrogate.

    clock: ``"thinning"`` (bound ``clock_factor * a0``, gradient stopped, null events) or ``"direct"``.
    choice: ``"straight-through"`` (hard forward, gradient of the probabilities backward),
        ``"gumbel-softmax"`` (hard forward, gradient of a tempered softmax of log-probabilities plus the
        same Gumbel noise backward) or ``"score-function"`` (no surrogate; the path log-likelihood is
        recorded instead, direct clock only).
    temperature: Gumbel-softmax temperature (dimensionless).
    clock_factor: thinning bound multiplier ``c >= 1``; larger means more null events.
    observation_width: direct clock only: width (time units) of the backward-only sigmoid that
        relaxes "event before the observation time"; ``None`` disables it.
    """

    clock: str = "thinning"
    choice: str = "straight-through"
    temperature: float = 0.5
    clock_factor: float = 1.2
    observation_width: float | None = None

    def validate(self) -> "Estimator":
        if self.clock not in ("thinning", "direct"):
            raise ValueError(f"estimator clock must be 'thinning' or 'direct', got {self.clock!r}")
        if self.choice not in ("straight-through", "gumbel-softmax", "score-function"):
            raise ValueError(
                f"estimator choice must be 'straight-through', 'gumbel-softmax' or 'score-function', got {self.choice!r}"
            )
        if self.choice == "score-function" and (self.clock != "direct" or self.observation_width is not None):
            raise ValueError("the score-function estimator uses the direct clock and no observation relaxation")
        if not self.temperature > 0:
            raise ValueError(f"Gumbel-softmax temperature must be positive, got {self.temperature!r}")
        if self.clock == "thinning" and not self.clock_factor >= 1:
            raise ValueError(f"thinning clock_factor must be >= 1, got {self.clock_factor!r}")
        if self.observation_width is not None:
            if self.clock != "direct":
                raise ValueError("observation_width (smooth observation step) applies to the direct clock only")
            if not self.observation_width > 0:
                raise ValueError(f"observation_width must be positive, got {self.observation_width!r}")
        return self


THINNING = Estimator()
THINNING_GUMBEL = Estimator(choice="gumbel-softmax", temperature=0.5)
DIRECT = Estimator(clock="direct")
DIRECT_RELAXED = Estimator(clock="direct", observation_width=0.1)
SCORE = Estimator(clock="direct", choice="score-function")

ESTIMATORS = {
    "thinning": THINNING,
    "thinning-gumbel": THINNING_GUMBEL,
    "direct": DIRECT,
    "direct-relaxed": DIRECT_RELAXED,
    "score-function": SCORE,
}


def get_estimator(name: str | Estimator) -> Estimator:
    """Look an estimator up by name (``thinning``, ``thinning-gumbel``, ``direct``, ``direct-relaxed``,
    ``score-function``)."""
    if isinstance(name, Estimator):
        return name.validate()
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}") from None


def straight_through(hard, soft):
    """Forward value ``hard``, exactly (``soft - soft`` is 0; ``(hard + soft) - soft`` would round),
    backward gradient of ``soft``."""
    return hard + (soft - jax.lax.stop_gradient(soft))


def choice_weights(estimator: Estimator, probs, index, uniforms):
    """Surrogate one-hot weights (K,) for the categorical choice ``index`` made with ``probs`` (K,).

    Straight-through: forward one-hot, backward d probs. Gumbel-softmax: the hard choice is the
    argmax of ``log probs + G`` with ``G = -log(-log(uniforms))`` (an exact categorical draw, so ``index``
    is ignored and redrawn), and the backward pass is that of ``softmax((log probs + G) / temperature)``.
    Returns the weights and the index actually chosen.
    """
    k = probs.shape[0]
    if estimator.choice == "straight-through":
        return straight_through(jax.nn.one_hot(index, k, dtype=probs.dtype), probs), index
    gumbel = -jnp.log(-jnp.log(jnp.clip(uniforms, 2.0**-24, 1.0 - 2.0**-24)))
    logits = jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-30)) + gumbel, -1e30)
    index = jnp.argmax(logits)
    soft = jax.nn.softmax(logits / estimator.temperature)
    return straight_through(jax.nn.one_hot(index, k, dtype=probs.dtype), soft), index
