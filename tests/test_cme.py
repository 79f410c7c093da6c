"""The finite-state-projection CME solver against analytic solutions."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization, immigration_death
from scipy import stats

from diffssa import MassAction, Reaction, ReactionNetwork
from diffssa.reference.cme import solve_cme


def birth(k=2.0):
    return ReactionNetwork({"X": 0}, {"k": k}, [Reaction({}, {"X": 1}, MassAction("k"))])


def test_pure_birth_is_poisson():
    k, t = 2.0, np.array([0.5, 1.0, 2.5, 5.0])  # the grid need not start at 0
    sol = solve_cme(birth(k), t, bounds={"X": 60})
    assert sol.states.shape == (61, 1) and sol.parameter_names == ("k",)
    n = sol.states[:, 0]
    np.testing.assert_allclose(sol.probabilities, stats.poisson.pmf(n[None], k * t[:, None]), atol=1e-12)
    np.testing.assert_allclose(sol.mean[:, 0], k * t, rtol=1e-10)
    np.testing.assert_allclose(sol.variance[:, 0], k * t, rtol=1e-10)
    np.testing.assert_allclose(sol.sd[:, 0], np.sqrt(k * t), rtol=1e-10)
    np.testing.assert_allclose(sol.mean_gradient[:, 0, 0], t, rtol=1e-10)  # d(k t)/dk
    assert sol.truncation_error < 1e-12
    assert jnp.zeros(1).dtype == jnp.float32  # float64 stayed inside the solver


def test_truncation_error_is_the_mass_beyond_the_bound():
    k, t = 2.0, np.array([1.0, 5.0])
    sol = solve_cme(birth(k), t, bounds={"X": 5})
    np.testing.assert_allclose(sol.probabilities.sum(axis=1), stats.poisson.cdf(5, k * t), rtol=1e-10)
    np.testing.assert_allclose(sol.truncation_error, stats.poisson.sf(5, k * t[-1]), rtol=1e-10)


def test_unbounded_state_space_raises():
    with pytest.raises(ValueError, match=r"max_states=500.*bounds"):
        solve_cme(birth(), [1.0], max_states=500)


@pytest.mark.parametrize("x0", [0, 5])
def test_immigration_death_moments_and_gradients(x0):
    k, mu = 10.0, 0.5
    t = np.array([0.0, 1.0, 2.0, 5.0, 10.0])
    sol = solve_cme(immigration_death(k, mu, x0), t, bounds={"X": 80})
    e = np.exp(-mu * t)
    mean = k / mu * (1 - e) + x0 * e
    variance = k / mu * (1 - e) + x0 * e * (1 - e)  # Poisson immigrants + binomial survivors
    np.testing.assert_allclose(sol.mean[:, 0], mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sol.variance[:, 0], variance, rtol=1e-8, atol=1e-12)
    d_k = (1 - e) / mu
    d_mu = -k / mu**2 * (1 - e) + (k / mu - x0) * t * e
    np.testing.assert_allclose(sol.mean_gradient[:, 0, 0], d_k, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.mean_gradient[:, 0, 1], d_mu, rtol=1e-8, atol=1e-12)
    assert sol.truncation_error < 1e-10


def test_isomerisation_is_binomial():
    n, k1, k2 = 20, 1.0, 0.5
    net = ReactionNetwork(
        {"A": n, "B": 0}, {"k1": k1, "k2": k2},
        [Reaction({"A": 1}, {"B": 1}, MassAction("k1")), Reaction({"B": 1}, {"A": 1}, MassAction("k2"))],
    )
    t = np.array([0.0, 0.3, 1.0, 3.0])
    sol = solve_cme(net, t)  # closed system: 21 states, no truncation
    assert sol.states.shape == (n + 1, 2) and sol.truncation_error < 1e-12

    def p_a(k1, k2):
        return k2 / (k1 + k2) + k1 / (k1 + k2) * np.exp(-(k1 + k2) * t)

    marginal = sol.marginal("A")
    assert marginal.shape == (4, n + 1)
    np.testing.assert_allclose(marginal, stats.binom.pmf(np.arange(n + 1)[None], n, p_a(k1, k2)[:, None]), atol=1e-12)
    h = 1e-6
    d_k1 = n * (p_a(k1 + h, k2) - p_a(k1 - h, k2)) / (2 * h)
    np.testing.assert_allclose(sol.mean_gradient[:, 0, 0], d_k1, rtol=1e-7, atol=1e-9)


def test_dimerisation_conserves_mass_and_gradients_match_finite_differences():
    net = dimerization(k1=0.001, k2=0.01, p0=100)  # propensities k1 P (P - 1) / 2 and k2 P2
    t = np.linspace(0.0, 10.0, 6)
    sol = solve_cme(net, t)
    assert sol.states.shape == (51, 2)
    np.testing.assert_array_equal(sol.states @ np.array([1, 2]), 100)
    np.testing.assert_allclose(sol.probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert sol.truncation_error < 1e-12
    assert np.all(np.isfinite(sol.mean)) and np.all(np.isfinite(sol.mean_gradient))
    np.testing.assert_allclose(sol.mean @ np.array([1, 2]), 100.0, rtol=1e-12)
    assert sol.mean[-1, 1] > 10  # dimers form
    for p, name in enumerate(sol.parameter_names):
        h = 1e-4 * net.parameters[name]
        up = solve_cme(net, t, {name: net.parameters[name] + h}).mean
        down = solve_cme(net, t, {name: net.parameters[name] - h}).mean
        np.testing.assert_allclose(sol.mean_gradient[:, :, p], (up - down) / (2 * h), rtol=1e-6, atol=1e-6)


def test_rejects_bad_input():
    net = immigration_death()
    with pytest.raises(ValueError, match="unknown parameter 'kk'"):
        solve_cme(net, [1.0], {"kk": 1.0}, bounds={"X": 10})
    with pytest.raises(ValueError, match="unknown species 'Y'"):
        solve_cme(net, [1.0], bounds={"Y": 10})
    with pytest.raises(ValueError, match="exceeds bounds"):
        solve_cme(immigration_death(x0=20), [1.0], bounds={"X": 10})
    for times in ([2.0, 1.0], [-1.0], []):
        with pytest.raises(ValueError, match="times"):
            solve_cme(net, times, bounds={"X": 10})
    sol = solve_cme(net, [1.0], bounds={"X": 10})
    with pytest.raises(ValueError, match="unknown species 'Y'"):
        sol.marginal("Y")
