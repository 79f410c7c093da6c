"""Tau-leaping for large counts, differentiable through its Poisson counts.

The forward algorithm is the modified Poisson tau-leap of Cao, Gillespie & Petzold (J. Chem. Phys.
123, 054104, 2005; step selection from J. Chem. Phys. 124, 044109, 2006). One step of one trajectory
at state ``x`` (S,) and time ``t`` (time units of the rate constants), propensities ``a`` (R,):

1. *Critical reactions*: those with ``a_j > 0`` that can fire fewer than ``n_c`` (``critical``,
   default 10) more times before a reactant runs out: ``L_j = min_i floor(x_i / |nu_ji|)`` over the
   species it consumes (``nu_ji < 0``).
2. *Step size* (CGP 2006, eq. 33): over the species ``i`` that are reactants, with
   ``mu_i = sum_j nu_ji a_j`` and ``sigma_i^2 = sum_j nu_ji^2 a_j`` over the non-critical reactions,
   ``tau' = min_i min(max(eps x_i / g_i, 1) / |mu_i|, max(eps x_i / g_i, 1)^2 / sigma_i^2)``. ``g_i``
   (dimensionless) is CGP's factor for the highest-order reaction consuming ``i``, generalised to
   ``(order / n) (n + sum_{m<n} m / (x_i - m))`` for a reaction of ``order`` that needs ``n`` copies
   of ``i``, maximised over the reactions (the 2006 paper's table for orders 1-3). By default, not in
   CGP: also ``tau' <= max(eps x_i / g_i, 1) / sum_j |nu_ji| a_j`` (``TauLeap(flux_bound=False)``:
   CGP's rule alone, measured up to 2.75% off in means and 6.8% in gradients, docs/tau-leap.md).
3. If ``tau' < exact_below / a0`` (a leap would fire fewer than about 10 reactions) the step is one
   exact event of the direct method instead.
4. Otherwise ``tau'' ~ Exp(a0_critical)``; ``tau = min(tau', tau'', g - t)`` with ``g`` the next grid
   time. Non-critical reaction ``j`` fires ``K_j ~ Poisson(a_j tau)`` times; if ``tau''`` is the
   smallest, exactly one critical reaction fires (chosen with probability ``a_j / a0_critical``).
   A step that would make a count negative is rejected and retried with ``tau'`` halved (no count is
   negative, ever); if ``g - t`` is the smallest the step ends exactly at ``g`` and the state is
   recorded there (grid rows hold the state at the grid time, as in the exact engines).

Randomness: step ``n`` of a trajectory draws six words on ``TAU_LEAP_STREAM`` (:mod:`diffssa.rng`):
two uniforms (the critical/exact waiting time and choice), a key for the Poisson counts
(``jax.random.poisson``, exact) and a key for the surrogate's noise. ``n`` counts steps (leaps, exact
events and rejected leaps), which are bounded by ``max_steps``; a trajectory that runs out is flagged
``exhausted``. Counts are floats of the state's type: float32 keeps them exact below 2**24 (a
trajectory reaching it is flagged, as in the exact engines; ``precision="float64"`` to 2**53).

Gradients (backward pass only; the forward counts are the exact Poisson draws above). The step size
and every discrete decision are functions of the stopped state; derivatives flow through the Poisson
means ``Lambda_j = a_j(x, theta) tau`` into the counts ``K_j``:

* ``"eat"`` (exponential arrival times, arXiv:2602.03896): ``K_j`` is the number of arrivals of a
  unit-rate Poisson process in ``[0, Lambda_j]``. The arrivals nearest ``Lambda_j`` are drawn
  consistently with the count (given ``K = n`` the arrivals below are ``n`` ordered uniforms on
  ``[0, Lambda]``, Renyi's representation; those above are ``Lambda + `` Exp(1) sums) and the
  indicators ``1[S_k <= Lambda]`` are replaced, backward only, by a compact-support smoothstep
  ``H((Lambda - S_k) / c)``, ``c = min(width, Lambda)`` expected arrivals. For a Poisson process
  ``E[sum_k H'((Lambda - S_k)/c)/c] = H(Lambda / c) = 1``: the surrogate derivative of each count is
  unbiased for ``d E[K] / d Lambda``, the first moment is exact. ``arrivals`` per side are drawn (the
  chance that more fall in the window is below 1e-6 for ``width = 1``).
* ``"gumbel"``: a Gumbel-softmax relaxation of the Poisson law on ``categories`` support points
  spanning the mean +- 5 SD (a stride above 1 beyond ~10 counts of SD), temperature ``temperature``;
  its soft count (noise independent of the forward count) carries the derivative. The comparison.

Exact events (critical firings, exact steps) carry, straight-through, the derivative of their
expected count over the step, ``a_j tau`` (the first-moment part of the EAT without its noise): an
exact step then still feeds the state back on the derivative (without it, a run made mostly of exact
steps was measured 3x off). Networks with events are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..compiled import CompiledNetwork
from ..estimators import EXACT, Estimator, straight_through
from ..rng import TAU_LEAP_STREAM, bits, bits_to_uniform
from .drivers import jit_runner, recorded_states, run_loop
from .engine import (
    checked_propensities,
    flag_counts,
    initial_carry,
    invalid_rate_constants,
    reaction_index,
)

__all__ = ["TauLeap", "PoissonSurrogate", "EAT", "GUMBEL_POISSON", "TAU_LEAP_ESTIMATORS", "tau_leap_estimator",
           "build_tau_leap_runner"]


@dataclass(frozen=True)
class TauLeap:
    """Configuration of ``simulate(..., method=TauLeap(...))`` (``method="tau-leap"``: the defaults).

    epsilon: CGP's bound on the relative change of each propensity per leap, in (0, 1).
    critical: ``n_c``: a reaction that can fire fewer times than this is critical (fired exactly).
    exact_below: an exact event instead of a leap when the leap would be shorter than this many mean
        waiting times ``1 / a0`` (CGP suggest 10).
    flux_bound: also bound the gross flux through each species, ``tau <= max(eps x_i / g_i, 1) /
        sum_j |nu_ji| a_j`` (not in CGP). CGP's bound on the *net* drift ``mu_i`` vanishes near an
        equilibrium, where it lets ``tau`` grow until ``mu tau`` (decay rate times step) is of order 1 and
        the leap inflates the variance (by ``2 / (2 - mu tau)`` for a linear decay); this bound keeps
        ``mu tau <= epsilon`` there, at the cost of more leaps (docs/tau-leap.md). On by default: CGP's
        rule alone missed the issue's accuracy bars on Lotka-Volterra (means 2.75% off at epsilon 0.05,
        gradients 6.8% at 0.03); with the bound every measured mean is within 1.5% and every EAT
        derivative within 0.8%, still 13x faster than exact at 1e4 molecules.
    """

    epsilon: float = 0.03
    critical: int = 10
    exact_below: float = 10.0
    flux_bound: bool = True

    def __post_init__(self):
        if not (isinstance(self.epsilon, (int, float)) and 0.0 < self.epsilon < 1.0):
            raise ValueError(f"tau-leap epsilon must lie in (0, 1), got {self.epsilon!r}")
        if isinstance(self.critical, bool) or int(self.critical) != self.critical or self.critical < 1:
            raise ValueError(f"tau-leap critical (n_c) must be a positive integer, got {self.critical!r}")
        if not self.exact_below >= 0:
            raise ValueError(f"tau-leap exact_below must be >= 0, got {self.exact_below!r}")


@dataclass(frozen=True)
class PoissonSurrogate(Estimator):
    """A surrogate derivative of the tau-leap's Poisson counts (module docstring); biased for nonlinear
    networks through the path, not per count (``"eat"``: each count's derivative is unbiased).

    kind: ``"eat"`` or ``"gumbel"``. width: EAT smoothstep half-width in expected arrivals.
    arrivals: EAT arrivals drawn each side of ``Lambda``. temperature, categories: Gumbel-softmax.
    """

    kind: str = "eat"
    width: float = 1.0
    arrivals: int = 8
    temperature: float = 0.5
    categories: int = 33

    unbiased = False

    def __post_init__(self):
        if self.kind not in ("eat", "gumbel"):
            raise ValueError(f"Poisson surrogate kind must be 'eat' or 'gumbel', got {self.kind!r}")
        if not self.width > 0 or not self.temperature > 0:
            raise ValueError("Poisson surrogate width and temperature must be positive")
        if self.arrivals < 1 or self.categories < 2:
            raise ValueError("Poisson surrogate needs arrivals >= 1 and categories >= 2")

    @property
    def name(self) -> str:
        return "tau-leap-eat" if self.kind == "eat" else "tau-leap-gumbel"

    def soft_counts(self, lam, hard, key):
        """``hard`` (R,) Poisson counts forward, the surrogate's derivative in ``lam`` (R,) backward."""
        return (_eat if self.kind == "eat" else _gumbel)(self, lam, hard, key)


EAT = PoissonSurrogate("eat")
GUMBEL_POISSON = PoissonSurrogate("gumbel")
TAU_LEAP_ESTIMATORS = {"eat": EAT, "tau-leap-eat": EAT, "gumbel": GUMBEL_POISSON, "tau-leap-gumbel": GUMBEL_POISSON}


def tau_leap_estimator(estimator, network) -> Estimator:
    """The tau-leap's estimator: ``"auto"`` (EAT), ``"eat"``, ``"gumbel"``, a :class:`PoissonSurrogate`
    or ``None`` (forward only); anything else, and networks with events, refused by name."""
    if network.events:
        raise ValueError(f"method='tau-leap' does not support events; network {network.name or '(unnamed)'!r} has "
                         f"{len(network.events)}: use method='direct'")
    if estimator is None:
        return EXACT
    if isinstance(estimator, PoissonSurrogate):
        return estimator
    if isinstance(estimator, str) and (estimator == "auto" or estimator in TAU_LEAP_ESTIMATORS):
        return EAT if estimator == "auto" else TAU_LEAP_ESTIMATORS[estimator]
    raise ValueError(f"estimator {estimator!r} does not apply to method='tau-leap' (its derivatives are those of "
                     "the Poisson counts): choose 'auto' (= 'eat'), 'eat', 'gumbel', a PoissonSurrogate or None")


def _smoothstep(z):
    """0 below -1, 1 above 1, ``(2 + 3z - z^3) / 4`` between: C1, symmetric (``H(z) + H(-z) = 1``)."""
    z = jnp.clip(z, -1.0, 1.0)
    return 0.5 + 0.75 * z - 0.25 * z**3


def _eat(s: PoissonSurrogate, lam, hard, key):
    lam_s = jax.lax.stop_gradient(lam)
    e = jax.random.exponential(key, (2, lam.shape[0], s.arrivals), lam.dtype)
    left = hard[:, None] - jnp.arange(s.arrivals, dtype=lam.dtype)  # n, n - 1, ...: arrivals still below
    exists = left > 0
    # Renyi: the top order statistics of n uniforms on [0, 1] are exp(-(E_1/n + E_2/(n-1) + ...)).
    below = lam_s[:, None] * jnp.exp(-jnp.cumsum(jnp.where(exists, e[0] / jnp.maximum(left, 1.0), 0.0), axis=1))
    above = lam_s[:, None] + jnp.cumsum(e[1], axis=1)
    c = jnp.minimum(s.width, lam_s)[:, None]
    c = jnp.where(c > 0, c, 1.0)
    soft = (jnp.sum(jnp.where(exists, _smoothstep((lam[:, None] - below) / c), 0.0), axis=1)
            + jnp.sum(_smoothstep((lam[:, None] - above) / c), axis=1))
    return straight_through(hard, jnp.where(lam_s > 0, soft, 0.0))


def _gumbel(s: PoissonSurrogate, lam, hard, key):
    lam_s = jax.lax.stop_gradient(lam)
    k = s.categories
    stride = jnp.maximum(1.0, jnp.ceil(10.0 * jnp.sqrt(lam_s) / (k - 1)))
    low = jnp.maximum(0.0, jnp.floor(lam_s - stride * (k - 1) / 2))
    support = low[:, None] + stride[:, None] * jnp.arange(k, dtype=lam.dtype)
    safe = jnp.where(lam_s > 0, lam, 1.0)[:, None]
    logp = support * jnp.log(safe) - safe - jax.lax.lgamma(support + 1.0)
    g = jax.random.gumbel(key, (lam.shape[0], k), lam.dtype)
    soft = jnp.sum(jax.nn.softmax((logp + g) / s.temperature, axis=1) * support, axis=1)
    return straight_through(hard, jnp.where(lam_s > 0, soft, 0.0))


def _make_step(compiled: CompiledNetwork, grid, max_steps: int, config: TauLeap, surrogate):
    """Single-trajectory step ``(carry, theta) -> (carry, stuck)``: record a grid row already reached,
    or take one step (leap, exact event, or rejected leap), recording if it ends at the grid time."""
    nu = jnp.asarray(compiled.stoichiometry)
    n_reactions = nu.shape[0]
    n_grid, n_counts = grid.shape[0], compiled.n_counts
    coef_np = compiled.reactants
    coef, order = jnp.asarray(coef_np), jnp.asarray(coef_np.sum(axis=1))[:, None]
    consumes = jnp.asarray(np.maximum(-compiled.stoichiometry, 0.0))
    reactant = jnp.asarray(coef_np.sum(axis=0) > 0)  # (S,) species CGP's bound applies to
    extra = [(m, jnp.asarray(coef_np > m)) for m in range(1, int(coef_np.max(initial=0)))]
    eps, n_c = float(config.epsilon), float(config.critical)

    def g_factor(x):
        more = sum((jnp.where(mask, m / jnp.maximum(x - m, 1.0), 0.0) for m, mask in extra), jnp.zeros_like(coef))
        return jnp.max(jnp.where(coef > 0, order / jnp.maximum(coef, 1.0) * (coef + more), 0.0), axis=0)

    def step(c, theta):
        shrink = c.engine
        active = c.r < n_grid
        row = jnp.minimum(c.r, n_grid - 1)
        g = grid[row]
        h = g - c.t
        at_grid = active & (h <= 0)
        a_live, invalid = checked_propensities(compiled, c.x, theta, c.invalid, active)
        # The step size and every decision are functions of the stopped state: differentiating the step
        # size too (through |mu_i| near 0) was measured to give heavy-tailed, unusable derivatives.
        a, x = jax.lax.stop_gradient(a_live), jax.lax.stop_gradient(c.x)
        firings_left = jnp.min(jnp.where(consumes > 0, jnp.floor(x / jnp.where(consumes > 0, consumes, 1.0)), jnp.inf),
                               axis=1)
        critical = (a > 0) & (firings_left < n_c)
        a_nc = jnp.where(critical, 0.0, a)
        mu, var = a_nc @ nu, a_nc @ (nu * nu)
        bound = jnp.maximum(eps * x / jnp.maximum(g_factor(x), 1.0), 1.0)
        by_mean = jnp.where(jnp.abs(mu) > 0, bound / jnp.where(jnp.abs(mu) > 0, jnp.abs(mu), 1.0), jnp.inf)
        by_var = jnp.where(var > 0, bound**2 / jnp.where(var > 0, var, 1.0), jnp.inf)
        tau1 = jnp.min(jnp.where(reactant, jnp.minimum(by_mean, by_var), jnp.inf))
        if config.flux_bound:
            flux = a_nc @ jnp.abs(nu)
            tau1 = jnp.minimum(tau1, jnp.min(jnp.where(reactant & (flux > 0), bound / jnp.where(flux > 0, flux, 1.0),
                                                       jnp.inf)))
        a0 = jnp.sum(a)
        a_c = jnp.where(critical, a, 0.0)
        a0c = jnp.sum(a_c)
        exact = (a0 > 0) & (tau1 * a0 < config.exact_below)
        words = bits(c.key, c.n, TAU_LEAP_STREAM, 6)
        u = bits_to_uniform(words[:2])
        rate = jnp.where(exact, a0, a0c)
        wait = jnp.where(rate > 0, -jnp.log1p(-u[0]) / jnp.where(rate > 0, rate, 1.0), jnp.inf)
        leap = jnp.where(exact, jnp.inf, tau1 * shrink)
        hit = h <= jnp.minimum(leap, wait)  # the step ends at the grid time, nothing exact fires
        one = ~hit & (wait <= leap)  # one exact event: a critical reaction, or any in an exact step
        tau = jnp.where(hit, h, jnp.minimum(leap, wait))
        pool = jnp.where(exact, a, a_c)
        index = reaction_index(pool, jnp.cumsum(pool), u[1] * jnp.sum(pool), null_event=False)
        mean = jnp.where(exact | critical, 0.0, a * tau)
        hard = jax.random.poisson(words[2:4], mean, dtype=jnp.int32).astype(c.x.dtype)
        single = jnp.where(one, jax.nn.one_hot(index, n_reactions, dtype=c.x.dtype), 0.0)
        fired = hard + single
        if surrogate is not None:
            by_exact = exact | critical
            fired = (surrogate.soft_counts(jnp.where(by_exact, 0.0, a_live * tau), hard, words[4:6])
                     # an exact event carries the derivative of its expected count over the step, a_j tau:
                     # without it, exact steps would not feed the state back on the tangent at all
                     + straight_through(single, jnp.where(by_exact, a_live * tau, 0.0)))
        x_new = c.x + fired @ nu
        negative = jnp.any(jax.lax.stop_gradient(x_new[:n_counts]) < 0)
        go = active & ~at_grid & (c.n < max_steps)
        accept = go & ~negative
        x_next = jnp.where(accept, x_new, c.x)
        record = at_grid | (accept & hit)
        new = c._replace(
            x=x_next,
            t=jnp.where(accept, jnp.where(hit, g, c.t + tau), c.t),
            n=c.n + go.astype(c.n.dtype),
            r=c.r + record.astype(c.r.dtype),
            buf=c.buf.at[jnp.where(record, row, n_grid)].set(x_next, mode="drop"),
            engine=jnp.where(accept, 1.0, jnp.where(go, 0.5 * shrink, shrink)),
            invalid=flag_counts(compiled, 0, invalid, x_next),
        )
        return new, active & ~at_grid & ~go

    return step


def build_tau_leap_runner(compiled: CompiledNetwork, n_grid: int, max_steps: int, config: TauLeap,
                          estimator: Estimator, differentiable: bool, chunk: int, devices: tuple):
    """A jitted ``run(grid, theta (B,P), x0 (B,S), keys (B,2), None) -> (states, exhausted, steps,
    invalid, ())`` (as the direct method's runner; ``steps``: leaps, exact events and rejected leaps)."""
    surrogate = estimator if differentiable and isinstance(estimator, PoissonSurrogate) else None

    def core(grid, theta, x0, keys, state0):
        step = jax.vmap(_make_step(compiled, grid, max_steps, config, surrogate))
        carry = initial_carry(x0, keys, n_grid, invalid=invalid_rate_constants(compiled, theta),
                              engine=jnp.ones(x0.shape[:1], x0.dtype))
        carry = run_loop(step, carry, theta, n_grid, max_steps, differentiable, chunk)
        states, exhausted = recorded_states(carry, n_grid)
        return states, exhausted, carry.n, carry.invalid, ()

    return jit_runner(core, differentiable, devices)
