"""Tau-leaping (diffssa.simulation.tau_leap): forward accuracy against exact values, no negative counts,
reproducibility, refused input, and EAT gradients against the closed form and finite differences.

Tau-leaping is approximate: its means and SDs carry a bias of the step size (of order epsilon), which
the issue bounds (means within 2%, gradients within 5%). Where a bias is tested, the sampling error of
the estimate is stated and is small against the bound; where a statistical statement is tested (no
bias), it is a z-score bound with a fixed seed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization, immigration_death

from diffssa import Event, MassAction, Reaction, ReactionNetwork, simulate
from diffssa.simulation.tau_leap import PoissonSurrogate, TauLeap

K, MU, X0 = 1e4, 1.0, 5000  # immigration-death at 1e4 molecules, from 5000
TIMES = np.linspace(0.0, 2.0, 5)


def id_mean(t, k=K, mu=MU, x0=X0):
    return k / mu * (1 - np.exp(-mu * t)) + x0 * np.exp(-mu * t)


def id_sd(t, k=K, mu=MU, x0=X0):
    """Poisson(k/mu (1 - e^{-mu t})) + Binomial(x0, e^{-mu t})."""
    p = np.exp(-mu * t)
    return np.sqrt(k / mu * (1 - p) + x0 * p * (1 - p))


def sd64(states):
    return np.asarray(states, np.float64).std(axis=0, ddof=1)


def test_bad_input_is_refused_by_name():
    net = immigration_death(k=K, mu=MU, x0=X0)
    for eps in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="epsilon must lie in"):
            TauLeap(epsilon=eps)
    with pytest.raises(ValueError, match="critical"):
        TauLeap(critical=0)
    for name in ("pairs", "score-function", "thinning", "direct-relaxed"):
        with pytest.raises(ValueError, match=f"estimator '{name}' does not apply to method='tau-leap'"):
            simulate(net, TIMES, key=0, method="tau-leap", estimator=name)
    with pytest.raises(ValueError, match="method must be"):
        simulate(net, TIMES, key=0, method="tau")
    with pytest.raises(ValueError, match="Poisson surrogate kind"):
        PoissonSurrogate("normal")
    timed = ReactionNetwork({"X": 10}, {"mu": 1.0}, [Reaction({"X": 1}, {}, MassAction("mu"))],
                            events=[Event("geq(time, 1)", {"X": 5}, "reset")])
    with pytest.raises(ValueError, match="method='tau-leap' does not support events"):
        simulate(timed, TIMES, key=0, method="tau-leap")


def test_immigration_death_means_and_sds_at_1e4():
    """CGP's rule alone (flux_bound=False). 4000 runs: the sampling error of a mean is about SD/sqrt(4000) = 1.5 (0.02%), of an SD about
    1.1%: small against the 2% bound on the means. The SDs carry the leap's variance excess (for this
    linear model 2 / (2 - mu tau) in the variance at stationarity; CGP's rule lets tau grow to ~0.14 near
    t = 2 at epsilon 0.01): measured +5.0% at t = 2 with this key (+6.3% with the benchmark's,
    docs/tau-leap.md), bounded here by 8%."""
    net = immigration_death(k=K, mu=MU, x0=X0)
    exact_mean, exact_sd = id_mean(TIMES[1:]), id_sd(TIMES[1:])
    for eps in (0.01, 0.03):
        tr = simulate(net, TIMES, key=0, runs=4000, method=TauLeap(epsilon=eps, flux_bound=False), estimator=None)
        x = np.asarray(tr.states[:, :, 0])
        assert np.all(x[:, 0] == X0)
        np.testing.assert_array_less(np.abs(x[:, 1:].mean(axis=0) / exact_mean - 1), 0.02)
        if eps == 0.01:
            np.testing.assert_array_less(np.abs(sd64(x[:, 1:]) / exact_sd - 1), 0.08)
        assert tr.estimator == "exact" and not np.any(tr.exhausted)
        assert np.mean(tr.events) < 100  # leaps, where the exact engine fires about 36,000 events


def test_flux_bound_keeps_the_variance():
    """With ``flux_bound`` (the default) the decay's ``mu tau`` stays <= epsilon = 0.03, so the leap's variance excess
    2 / (2 - mu tau) - 1 is at most 1.5% (0.8% in the SD); 4000 runs give the SD a standard error of
    1 / sqrt(2 * 3999) = 1.1%: the SDs are within 0.8% + 4 SE of the exact ones (CGP alone: up to 8.7%
    at this epsilon, docs/tau-leap.md)."""
    net = immigration_death(k=K, mu=MU, x0=X0)
    tr = simulate(net, TIMES, key=0, runs=4000, method=TauLeap(epsilon=0.03), estimator=None)
    x = np.asarray(tr.states[:, 1:, 0])
    np.testing.assert_array_less(np.abs(x.mean(axis=0) / id_mean(TIMES[1:]) - 1), 0.02)
    np.testing.assert_array_less(np.abs(sd64(x) / id_sd(TIMES[1:]) - 1), 0.008 + 4 / np.sqrt(2 * 3999))
    assert np.mean(tr.events) < 400  # more leaps than CGP alone (23), far fewer than 36,000 events


def test_dimerisation_at_1e4_against_exact_ssa():
    """2 P -> P2 @ 1e-4, P2 -> 2 P @ 0.01 from P = 10,000: tau-leap (2000 runs) against diffssa's exact
    direct method (500 runs). Standard errors: P about 1.5 (exact) and 0.8 (tau-leap) on means of
    1000-1800, P2 about 0.8: below 0.2% of the means, against the 2% bound. The SDs are compared within
    15%: four combined standard errors of the SD ratio (3.2% from 500 runs, 1.6% from 2000)."""
    net = dimerization(k1=1e-4, k2=0.01, p0=10_000)
    times = np.linspace(0.0, 20.0, 5)
    exact = np.asarray(simulate(net, times, key=1, runs=500, estimator=None, max_steps=20_000).states, np.float64)
    tau = np.asarray(simulate(net, times, key=2, runs=2000, method="tau-leap", estimator=None).states, np.float64)
    rel = tau[:, 1:].mean(axis=0) / exact[:, 1:].mean(axis=0) - 1
    np.testing.assert_array_less(np.abs(rel), 0.02)
    # P + 2 P2 is conserved by every leap
    assert np.all(tau[:, :, 0] + 2 * tau[:, :, 1] == 10_000)
    np.testing.assert_array_less(np.abs(sd64(tau[:, 1:]) / sd64(exact[:, 1:]) - 1), 0.15)


def test_no_negative_counts_where_naive_leaps_overshoot():
    """X -> 0 @ 1 from 60 with epsilon 0.9 and no critical reactions above one copy: the first leap is
    tau = 0.9, and a naive Poisson(54) leap removes more than 60 molecules with probability 0.19. The
    engine rejects such leaps (halving tau) and fires the last copies exactly: no count is ever negative,
    and the extinction law is respected in the mean (X(3) ~ Binomial(60, e^-3), mean 2.99)."""
    net = ReactionNetwork({"X": 60}, {"mu": 1.0}, [Reaction({"X": 1}, {}, MassAction("mu"))])
    times = np.linspace(0.0, 3.0, 7)
    tr = simulate(net, times, key=3, runs=2000, method=TauLeap(epsilon=0.9, critical=1), estimator=None)
    x = np.asarray(tr.states)
    assert np.all(x >= 0) and np.all(x == np.round(x))
    naive = np.random.default_rng(0).poisson(54.0, 100_000)
    assert np.mean(naive > 60) > 0.15  # what a leap without the rejection would do
    # Monotone decrease: a death-only network never gains molecules.
    assert np.all(np.diff(x[:, :, 0], axis=1) <= 0)


def test_reproducible_and_jit_invariant():
    net = immigration_death(k=K, mu=MU, x0=X0)
    a = simulate(net, TIMES, key=7, runs=2000, method="tau-leap", estimator=None).states
    b = simulate(net, TIMES, key=7, runs=2000, method="tau-leap", estimator=None).states
    c = simulate(net, TIMES, key=8, runs=2000, method="tau-leap", estimator=None).states
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    jitted = jax.jit(lambda key: simulate(net, TIMES, key=key, runs=2000, method="tau-leap", estimator=None).states)
    np.testing.assert_array_equal(a, jitted(jnp.array([0, 7], jnp.uint32)))  # the integer seed 7 as a key


@pytest.mark.slow
def test_eat_gradients_immigration_death():
    """Per-trajectory derivatives of X(2) (params as (B,) arrays, B = 2000) in k and mu, EAT surrogate.

    * epsilon 0.03 (adaptive CGP steps): within 5% of the exact closed form (measured +2.2% and +2.9%
      with this key; the tau-leap's own bias, docs/tau-leap.md). The forward trajectories are those of
      the untraced call.
    * fixed steps (grid spacing 0.05 caps every leap; epsilon 0.5 never binds): each count's EAT
      derivative is unbiased for d E[K] / d Lambda and the network is linear, so the estimate is unbiased
      for the derivative of the scheme's own mean, E X_N = x0 q^N + (k / mu)(1 - q^N), q = 1 - mu tau:
      a z-score bound (4 SE) against that closed form.
    """
    net = immigration_death(k=K, mu=MU, x0=X0)
    runs, t = 2000, TIMES[-1]

    def per_run_gradients(times, method):
        def final(k, mu):
            tr = simulate(net, times, key=2, runs=runs, params={"k": k, "mu": mu}, method=method)
            return tr.states[:, -1, 0].sum(), (tr.states, tr.estimator)

        grads, aux = jax.grad(final, argnums=(0, 1), has_aux=True)(jnp.full(runs, K), jnp.full(runs, MU))
        return [np.asarray(g, np.float64) for g in grads], aux

    grads, (states, name) = per_run_gradients(TIMES, TauLeap(epsilon=0.03))
    assert name == "tau-leap-eat"
    forward = simulate(net, TIMES, key=2, runs=runs, method="tau-leap", estimator=None).states
    np.testing.assert_array_equal(states, forward)
    exact = [(1 - np.exp(-MU * t)) / MU,
             -K / MU**2 * (1 - np.exp(-MU * t)) + K / MU * t * np.exp(-MU * t) - X0 * t * np.exp(-MU * t)]
    for g, e in zip(grads, exact):
        assert abs(g.mean() / e - 1) < 0.05, (g.mean(), e)

    tau = 0.05
    times = np.linspace(0.0, t, int(round(t / tau)) + 1)
    grads, (states, _) = per_run_gradients(times, TauLeap(epsilon=0.5, flux_bound=False))
    n, q = times.size - 1, 1 - MU * tau
    scheme = [(1 - q**n) / MU,
              -X0 * n * q ** (n - 1) * tau - K / MU**2 * (1 - q**n) + K / MU * n * q ** (n - 1) * tau]
    for g, e in zip(grads, scheme):
        z = (g.mean() - e) / (g.std(ddof=1) / np.sqrt(runs))
        assert abs(z) < 4, (g.mean(), e, z)


def test_gumbel_surrogate_is_named_and_leaves_the_forward_counts():
    """The comparison option: exact forward counts, a finite derivative, results named by it (its bias
    is measured in docs/tau-leap.md, not asserted here)."""
    net = immigration_death(k=K, mu=MU, x0=X0)

    def final(k):
        tr = simulate(net, TIMES, key=4, runs=256, params={"k": k}, method="tau-leap", estimator="gumbel")
        return tr.mean()[-1, 0], (tr.states, tr.estimator)

    grad, (states, name) = jax.grad(final, has_aux=True)(K)
    assert name == "tau-leap-gumbel" and np.isfinite(grad) and grad > 0
    np.testing.assert_array_equal(states, simulate(net, TIMES, key=4, runs=256, method="tau-leap",
                                                   estimator=None).states)
