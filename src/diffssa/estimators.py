"""Gradient estimators: strategy objects that say how derivatives come out of an exact simulation.

Every estimator leaves the trajectories exact: hard categorical choices and exponential waiting
times with the law of Gillespie's direct method. An estimator decides two things:

* its **clock**, which fixes the random stream of the trajectories: the direct method's
  (``thinning_factor = None``), or a thinning clock with a rate bound ``c * a0`` detached from the
  parameters and null events (``thinning_factor = c``). The trajectories depend on the key, the network
  and the clock only: never on whether the call is differentiated or wrapped in ``jax.jit``;
* what it attaches to them when the parameters are traced, through a small interface the simulator
  calls at every step of one trajectory: :meth:`Estimator.init` (its own per-trajectory state),
  :meth:`Estimator.transition` (the state change of the chosen event), :meth:`Estimator.record`
  (the value written at a grid time), :meth:`Estimator.update` (its state after the step).

The estimators (``docs/gradients.md`` has their measured bias and noise):

* :class:`PoissonPairs` (``"pairs"``, unbiased): the exact integral representation
  ``d E[f(X(t))] / d theta = E[int_0^t sum_k d a_k(X(s)) / d theta (Psi_k(s) - Psi(s)) ds]``
  (Gupta & Khammash), ``Psi_k - Psi`` the change of the expected outcome if reaction ``k`` fired once
  more at time ``s``, estimated by coupled pairs of paths (:mod:`diffssa.simulation.pairs`).
* :class:`ScoreFunction` (``"score-function"``, unbiased): the path log-likelihood is recorded and
  ``grad E[f] = E[(f - b) grad log L]``; noisier.
* :class:`Surrogate` (``"thinning"``, ``"thinning-gumbel"``, ``"direct"``, ``"direct-relaxed"``,
  biased): a continuous surrogate of the choices in the backward pass only (straight-through or
  Gumbel-softmax), on a thinning or the direct clock. Cheap and low-variance; the thinning clock with
  the propensity straight-through is within 2-10% on gene circuits with 0/1 copies, but up to 121%
  off on steep Hill functions (docs/gradients.md).
* ``"auto"`` (:func:`resolve`): the pairs where they apply (networks without events), else the score
  function: the unbiased choice with the lower variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Estimator",
    "Surrogate",
    "ScoreFunction",
    "PoissonPairs",
    "EXACT",
    "THINNING",
    "THINNING_GUMBEL",
    "DIRECT",
    "DIRECT_RELAXED",
    "SCORE",
    "PAIRS",
    "ESTIMATORS",
    "get_estimator",
    "resolve",
    "straight_through",
]


class StepView(NamedTuple):
    """One iteration of the direct-method step of one trajectory, as an estimator sees it.

    ``x`` (S,) counts before the iteration, ``t`` its time, ``theta`` (P,) parameters, ``a`` (R,)
    propensities at ``x`` (``a0`` their sum), ``tau`` the waiting time to the pending event, ``index``
    the pending event (``R``: a thinning clock's null event), ``fire`` / ``record`` / ``timed`` whether
    it fires, whether grid row ``row`` (time ``g``) is recorded, whether a time event applies instead
    (at ``t_event``), ``finishing`` whether the last grid row is recorded now, ``t_end`` the last
    grid time.
    """

    x: jax.Array
    t: jax.Array
    theta: jax.Array
    a: jax.Array
    a0: jax.Array
    tau: jax.Array
    index: jax.Array
    fire: jax.Array
    record: jax.Array
    timed: jax.Array
    row: jax.Array
    g: jax.Array
    t_event: jax.Array
    finishing: jax.Array
    t_end: jax.Array


class Choice(NamedTuple):
    """The categorical choice of one step: ``probs`` (K,) of the events (the null event last for a
    thinning clock), ``index`` chosen by inversion, ``noise(size)`` fresh uniforms of the step, ``nu``
    (R, S) stoichiometry."""

    probs: jax.Array
    index: jax.Array
    noise: Callable
    nu: jax.Array


class Estimator:
    """Base strategy: exact trajectories, no derivatives (the forward-only simulation).

    Class attributes: ``name`` (how results are labelled), ``unbiased``, ``thinning_factor``
    (``None``: the direct method's clock; ``c``: thinning with bound ``c * a0``), ``reparameterised``
    (waiting times ``E / rate`` carry derivatives; surrogates only), ``needs_probs`` (``transition``
    reads the choice probabilities), ``smooth_absent`` (a reaction whose reactants are absent keeps
    its law's derivative in the state: the state tangent of a count at 0 still decays through it).
    """

    name = "exact"
    unbiased = True
    thinning_factor = None
    reparameterised = False
    needs_probs = False
    smooth_absent = False

    def check(self, network) -> None:
        """Raise ``ValueError`` naming what in ``network`` this estimator cannot differentiate."""

    def init(self, n_species: int, n_grid: int):
        """One trajectory's estimator state at time 0 (a pytree; ``()`` for none)."""
        return ()

    def transition(self, choice: Choice, nu_null):
        """``(delta (S,), index)``: the state change of the chosen event (``nu_null`` (R+1, S) has the
        null event's zero row last) and the index actually chosen."""
        return nu_null[choice.index], choice.index

    def record(self, state, view: StepView, delta):
        """The value recorded at a grid time (default: the counts ``view.x``); ``delta`` is the
        pending event's state change."""
        return view.x

    def update(self, state, view: StepView, delta):
        """The estimator state after the step."""
        return state



EXACT = Estimator()


def straight_through(hard, soft):
    """Forward value ``hard``, exactly (``soft - soft`` is 0; ``(hard + soft) - soft`` would round),
    backward gradient of ``soft``."""
    return hard + (soft - jax.lax.stop_gradient(soft))


def _smooth_step(z, width):
    """Heaviside(z >= 0) forward, sigmoid(z / width) backward."""
    return straight_through((z >= 0).astype(z.dtype), jax.nn.sigmoid(z / width))


@dataclass(frozen=True, repr=True)
class Surrogate(Estimator):
    """A continuous surrogate of the discrete choices in the backward pass only (biased).

    clock: ``"thinning"`` (bound ``clock_factor * a0`` with its gradient stopped, null events) or
        ``"direct"`` (``tau = E / a0`` reparameterised).
    choice: ``"straight-through"`` (hard one-hot forward, gradient of the probabilities backward) or
        ``"gumbel-softmax"`` (hard argmax of ``log p + G`` forward, ``softmax((log p + G) / temperature)``
        backward).
    temperature: Gumbel-softmax temperature (dimensionless).
    clock_factor: thinning bound multiplier ``c >= 1``; larger means more null events.
    observation_width: direct clock only: width (time units) of a backward-only sigmoid on "event
        before the observation time" for the events either side of each grid time; ``None``: off.
    """

    clock: str = "thinning"
    choice: str = "straight-through"
    temperature: float = 0.5
    clock_factor: float = 1.2
    observation_width: float | None = None

    unbiased = False
    reparameterised = True
    needs_probs = True

    def __post_init__(self):
        if self.clock not in ("thinning", "direct"):
            raise ValueError(f"estimator clock must be 'thinning' or 'direct', got {self.clock!r}")
        if self.choice not in ("straight-through", "gumbel-softmax"):
            raise ValueError(f"estimator choice must be 'straight-through' or 'gumbel-softmax', got {self.choice!r}")
        if not self.temperature > 0:
            raise ValueError(f"Gumbel-softmax temperature must be positive, got {self.temperature!r}")
        if self.clock == "thinning" and not self.clock_factor >= 1:
            raise ValueError(f"thinning clock_factor must be >= 1, got {self.clock_factor!r}")
        if self.observation_width is not None:
            if self.clock != "direct":
                raise ValueError("observation_width (smooth observation step) applies to the direct clock only")
            if not self.observation_width > 0:
                raise ValueError(f"observation_width must be positive, got {self.observation_width!r}")

    @property
    def name(self) -> str:
        for key, value in ESTIMATORS.items():
            if value == self:
                return key
        return repr(self)

    @property
    def thinning_factor(self) -> float | None:
        return self.clock_factor if self.clock == "thinning" else None

    @property
    def smooth_absent(self) -> bool:
        """The thinning clock with the propensity straight-through: a law at 0 for want of its
        reactants keeps its state derivative (measured: without it, telegraph d/dkon at t = 4 was -41%,
        with it -0.1%; docs/gradients.md). Not for the Gumbel-softmax choice or the direct clock, whose
        gradients it makes heavy-tailed."""
        return self.clock == "thinning" and self.choice == "straight-through"

    def init(self, n_species, n_grid):
        if self.observation_width is None:
            return ()
        return jnp.zeros((1,), jnp.float32), jnp.zeros((n_species,), jnp.float32)  # last event's time, change

    def transition(self, choice, nu_null):
        probs, k = choice.probs, choice.probs.shape[0]
        index = choice.index
        if self.choice == "straight-through":
            weights = straight_through(jax.nn.one_hot(index, k, dtype=probs.dtype), probs)
        else:
            uniforms = choice.noise(k)
            gumbel = -jnp.log(-jnp.log(jnp.clip(uniforms, 2.0**-24, 1.0 - 2.0**-24)))
            logits = jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-30)) + gumbel, -1e30)
            index = jnp.argmax(logits)  # an exact categorical draw with these probabilities
            soft = jax.nn.softmax(logits / self.temperature)
            weights = straight_through(jax.nn.one_hot(index, k, dtype=probs.dtype), soft)
        return weights[: choice.nu.shape[0]] @ choice.nu, index

    def record(self, state, view, delta):
        if self.observation_width is None:
            return view.x
        t_last, dx_last = state
        w = self.observation_width
        return (view.x + _smooth_step(view.g - (view.t + view.tau), w) * delta
                + (_smooth_step(view.g - t_last[0], w) - 1.0) * dx_last)

    def update(self, state, view, delta):
        if self.observation_width is None:
            return state
        t_last, dx_last = state
        return (jnp.where(view.fire, view.t + view.tau, t_last), jnp.where(view.fire, delta, dx_last))


@dataclass(frozen=True)
class ScoreFunction(Estimator):
    """The score-function (likelihood-ratio) estimator: unbiased, no surrogate.

    The simulator accumulates the path log-likelihood ``log L = sum log a_j(fired) - int a0 dt`` as a
    differentiable function of the parameters and records it at every grid time; the trajectories'
    derivatives are ``(f(X(t)) - b) grad log L(t)`` with ``b`` the leave-one-out batch mean of ``f``.
    """

    name = "score-function"

    def init(self, n_species, n_grid):
        return jnp.zeros((), jnp.float32), jnp.zeros((n_grid,), jnp.float32)  # log L so far, at grid times

    def update(self, state, view, delta):
        logl, logl_buf = state
        n_grid = logl_buf.shape[0]
        logl_buf = logl_buf.at[jnp.where(view.record, view.row, n_grid)].set(
            logl - view.a0 * (view.g - view.t), mode="drop")
        safe_log = jnp.log(jnp.where(view.fire, view.a[jnp.minimum(view.index, view.a.shape[0] - 1)], 1.0))
        elapsed = jnp.where(view.fire, view.tau, jnp.where(view.timed, view.t_event - view.t, 0.0))
        logl = logl + jnp.where(view.fire, safe_log, 0.0) - view.a0 * jax.lax.stop_gradient(elapsed)
        return logl, logl_buf


@dataclass(frozen=True)
class PoissonPairs(Estimator):
    """Unbiased sensitivities from coupled pairs of paths (:mod:`diffssa.simulation.pairs`).

    per_reaction: pairs per trajectory for each reaction whose law reads a differentiated parameter,
        placed along the path in proportion to the reaction's activity (stratified).
    full_paths: simulate each pair to the last grid time even after its two paths have met (needed
        for functionals that combine several times, :meth:`Trajectories.expect_path`); by default a
        pair stops when its paths meet, which is all that functionals of one time at a time need.
    """

    per_reaction: int = 4
    full_paths: bool = False

    name = "pairs"

    def __post_init__(self):
        if isinstance(self.per_reaction, bool) or int(self.per_reaction) != self.per_reaction or self.per_reaction < 1:
            raise ValueError(f"per_reaction must be a positive integer, got {self.per_reaction!r}")

    def check(self, network) -> None:
        if network.events:
            raise ValueError(
                f"the pairs estimator does not support events; network {network.name or '(unnamed)'} has "
                f"{len(network.events)}: use estimator='score-function' (or 'auto')")


THINNING = Surrogate()
THINNING_GUMBEL = Surrogate(choice="gumbel-softmax", temperature=0.5)
DIRECT = Surrogate(clock="direct")
DIRECT_RELAXED = Surrogate(clock="direct", observation_width=0.1)
SCORE = ScoreFunction()
PAIRS = PoissonPairs()

ESTIMATORS = {
    "pairs": PAIRS,
    "score-function": SCORE,
    "thinning": THINNING,
    "thinning-gumbel": THINNING_GUMBEL,
    "direct": DIRECT,
    "direct-relaxed": DIRECT_RELAXED,
}


def resolve(network) -> Estimator:
    """What ``"auto"`` picks for ``network``: the pairs (unbiased, lowest variance measured) unless the
    network has events, then the score function (unbiased, noisier)."""
    return SCORE if network.events else PAIRS


def get_estimator(name, network=None) -> Estimator:
    """An estimator from its name (``auto``, ``pairs``, ``score-function``, ``thinning``,
    ``thinning-gumbel``, ``direct``, ``direct-relaxed``), an :class:`Estimator`, or ``None`` (forward
    only). ``"auto"`` needs the ``network``. The result is checked against the network."""
    if name is None:
        return EXACT
    if isinstance(name, Estimator):
        estimator = name
    elif name == "auto":
        if network is None:
            raise ValueError("estimator='auto' is resolved per network; pass the network")
        estimator = resolve(network)
    else:
        try:
            estimator = ESTIMATORS[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown estimator {name!r}; choose from auto, {', '.join(ESTIMATORS)}") from None
    if network is not None:
        estimator.check(network)
    return estimator
