"""Gradients of E[X(t)] against exact values: the default (``"auto"``: the unbiased pairs estimator)
and the thinning surrogate, on the textbook cases where both are right.

Each case: 20,000 trajectories (per-trajectory gradients), times in a transient and a near-stationary
regime. Asserted: relative bias within 3% of the exact gradient, with the standard error small enough
(< 1% of it) that the check can fail. The gene circuits where the surrogate fails are in test_pairs.py.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import dimerization, immigration_death

from diffssa import MassAction, Reaction, ReactionNetwork, parse_network, simulate
from diffssa.fitting import fit, moment_loss
from diffssa.gradients import estimate_gradient, gradcheck
from diffssa.reference.cme import solve_cme

RUNS = 20_000


def check(est, exact: dict):
    for name, values in exact.items():
        for i, value in enumerate(values):
            g, se = est.gradient[name][i], est.stderr[name][i]
            assert se < 0.01 * abs(value), (name, i, se, value)
            assert abs(g / value - 1) < 0.03, (name, est.times[i], g, value, se)


ESTIMATORS = pytest.mark.parametrize("estimator", ["auto", "thinning"])


@ESTIMATORS
def test_pure_birth(estimator):
    """0 -> X @ k: E X(t) = k t, d/dk = t."""
    net = ReactionNetwork({"X": 0}, {"k": 20.0}, [Reaction({}, {"X": 1}, MassAction("k"))])
    times = np.array([0.2, 1.0])
    est = estimate_gradient(net, times, "X", ["k"], key=11, runs=RUNS, max_steps=100, estimator=estimator)
    check(est, {"k": times})


@ESTIMATORS
def test_linear_birth_death(estimator):
    """X -> 2X @ b, X -> 0 @ d from x0 = 20: E X(t) = x0 e^{(b-d)t}; d/db = t E X(t) = -d/dd."""
    net = ReactionNetwork(
        {"X": 20}, {"b": 0.5, "d": 1.0},
        [Reaction({"X": 1}, {"X": 2}, MassAction("b")), Reaction({"X": 1}, {}, MassAction("d"))],
    )
    times = np.array([0.3, 1.5])
    est = estimate_gradient(net, times, "X", ["b", "d"], key=12, runs=RUNS, max_steps=200, estimator=estimator)
    mean = 20 * np.exp(-0.5 * times)
    check(est, {"b": times * mean, "d": -times * mean})


@ESTIMATORS
def test_immigration_death_transient_and_stationary(estimator):
    k, mu = 10.0, 0.5
    times = np.array([0.5, 10.0])
    est = estimate_gradient(immigration_death(k, mu), times, "X", ["k", "mu"], key=13, runs=RUNS, max_steps=600,
                            estimator=estimator)
    e = np.exp(-mu * times)
    check(est, {"k": (1 - e) / mu, "mu": -(k / mu**2) * (1 - e) + (k / mu) * times * e})
    z = (est.value - (k / mu) * (1 - e)) / est.value_stderr
    assert np.all(np.abs(z) < 4)


@ESTIMATORS
def test_dimerization_against_the_master_equation(estimator):
    """2P <-> P2 (P0 = 100): the regime where a choice-only surrogate is off by -97% (docs/gradients.md)."""
    net = dimerization()
    times = np.array([2.0, 20.0])
    exact = solve_cme(net, times)
    est = estimate_gradient(net, times, "P", ["k1", "k2"], key=14, runs=RUNS, max_steps=250, estimator=estimator)
    check(est, {p: exact.mean_gradient[:, 0, i] for i, p in enumerate(exact.parameter_names)})


def test_jax_grad_of_a_user_loss_over_a_parameter_dict():
    net = immigration_death(10.0, 0.5)

    def loss(params):
        tr = simulate(net, [1.0, 4.0], key=0, runs=2000, params=params, max_steps=300)
        return jnp.mean((tr.mean()[:, 0] - jnp.array([5.0, 12.0])) ** 2)

    grads = jax.grad(loss)({"k": 10.0, "mu": 0.5})
    assert set(grads) == {"k", "mu"}
    assert all(np.isfinite(float(v)) and float(v) != 0.0 for v in grads.values())


def test_fit_recovers_immigration_death_rates_with_optax():
    """Fit k and mu of immigration-death from exact mean and SD curves, starting 3x off."""
    k, mu = 10.0, 0.5
    net = immigration_death(k, mu)
    times = np.linspace(0.5, 8.0, 8)
    mean = (k / mu) * (1 - np.exp(-mu * times))

    def loss(params, key):
        tr = simulate(net, times, key=key, runs=1000, params=params, max_steps=2000)
        return moment_loss(tr, "X", mean, np.sqrt(mean))

    result = fit(loss, {"k": 30.0, "mu": 0.15}, key=1, steps=150,
                 optimizer=optax.adam(optax.cosine_decay_schedule(0.08, 150, 0.05)), progress=False)
    assert result.losses[-10:].mean() < 0.05 * result.losses[:3].mean()
    assert result.params["k"] == pytest.approx(k, rel=0.1)
    assert result.params["mu"] == pytest.approx(mu, rel=0.1)


def test_gradient_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown parameter 'kk'"):
        estimate_gradient(immigration_death(), [1.0], "X", ["kk"], key=0, runs=10)
    with pytest.raises(ValueError, match="unknown species 'Y'"):
        estimate_gradient(immigration_death(), [1.0], "Y", ["k"], key=0, runs=10)


def test_score_function_estimator_is_unbiased():
    """Likelihood ratio with a leave-one-out baseline: within 4 standard errors of exact; n = 20,000."""
    k, mu = 10.0, 0.5
    times = np.array([0.5, 3.0])
    est = estimate_gradient(immigration_death(k, mu), times, "X", ["k", "mu"], key=15, runs=RUNS,
                            estimator="score-function", max_steps=300)
    e = np.exp(-mu * times)
    exact = {"k": (1 - e) / mu, "mu": -(k / mu**2) * (1 - e) + (k / mu) * times * e}
    for name, values in exact.items():
        z = (est.gradient[name] - values) / est.stderr[name]
        assert np.all(np.abs(z) < 4), (name, z)
        assert np.all(est.stderr[name] < 0.1 * np.abs(values))


def test_gradcheck_reports_bias_against_the_master_equation():
    """The direct clock's bias is detected (|z| huge), the pairs' and thinning's are not (dimerisation,
    n = 4,000)."""
    report = gradcheck(dimerization(), [2.0], "P", ["k1"], key=16, runs=4000, max_steps=200,
                       estimators=("pairs", "thinning", "direct"))
    rows = {r.estimator: r for r in report.rows}
    assert "master equation" in report.exact_source
    assert rows["thinning"].exact == pytest.approx(-13689.3, rel=1e-4)
    assert abs(rows["pairs"].z) < 4 and abs(rows["thinning"].z) < 4 and abs(rows["direct"].z) > 20
    assert "thinning" in report.table()


@pytest.mark.parametrize("law", ["@ g", "@= g * O"])
def test_thinning_keeps_the_state_derivative_of_a_law_without_reactants(law):
    """0 -> O @ b, O -> 0 (mass action or custom law): d E[O(1)] / d b = (1 - e^-1) / g, d / d g =
    -b (1 - e^-1) + b e^-1, exactly; 20,000 trajectories, |z| < 4. When the engine cut the derivative of
    the death law at O = 0 the thinning surrogate gave 0.672 (z = +25) and -0.812 (z = -4)."""
    net = parse_network(f"species O = 0\nparameter b = 3\nparameter g = 1\n0 -> O @ b\nO -> 0 {law}")
    runs = 20_000

    def total(theta):
        tr = simulate(net, [0.0, 1.0], key=0, runs=runs, params=theta, estimator="thinning")
        return jnp.sum(tr.states[:, -1, 0])

    grads = jax.grad(total)({"b": jnp.full((runs,), 3.0), "g": jnp.full((runs,), 1.0)})
    exact = {"b": 1 - math.exp(-1), "g": -3 * (1 - math.exp(-1)) + 3 * math.exp(-1)}
    for name, value in exact.items():
        g = np.asarray(grads[name])
        z = (g.mean() - value) / (g.std(ddof=1) / math.sqrt(runs))
        assert abs(z) < 4, (name, g.mean(), value, z)
