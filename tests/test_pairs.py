"""The pairs estimator (the default, ``estimator="auto"``) against exact derivatives.

The gene circuits where the thinning surrogate was 10-56% off (issue 12): a telegraph gene and a
negatively autoregulated gene, every rate, t = 1 and t = 4, against the master equation. Asserted:
relative error within 3% and within 3 standard errors, the standard error below 1% of the exact
value (so the 3% bound can fail), and a per-trajectory SD below the score function's (the other
unbiased estimator) on the same case.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import immigration_death

from diffssa import (
    MassAction,
    PoissonPairs,
    Propensity,
    Reaction,
    ReactionNetwork,
    SimulationBudgetError,
    simulate,
)
from diffssa.gradients import estimate_gradient
from diffssa.io.language import load_network
from diffssa.reference.cme import solve_cme

EXAMPLES = Path(__file__).parents[1] / "examples"


def telegraph():
    """Goff <-> Gon (kon, koff); Gon -> Gon + M (km); M -> 0 (gm); one gene copy, off at t = 0."""
    return load_network(EXAMPLES / "telegraph.rxn")


def autoregulation():
    """G + P <-> GP (kb, ku); G -> G + P (kp); P -> 0 (kd); the protein represses its own gene."""
    return load_network(EXAMPLES / "autoregulation.rxn")


def exact_gradient(net, times, species, bound=120):
    solution = solve_cme(net, times, bounds={species: bound})
    assert solution.truncation_error < 1e-9
    i = solution.species.index(species)
    return {p: solution.mean_gradient[:, i, solution.parameter_names.index(p)] for p in net.parameters}


@pytest.mark.slow
@pytest.mark.parametrize("case, species, runs", [(telegraph, "M", 50_000), (autoregulation, "P", 120_000)])
def test_gene_circuit_gradients_are_exact_with_less_noise_than_the_score_function(case, species, runs):
    """50,000 (telegraph) / 120,000 (autoregulation: d/dku at t = 1 has a per-run SD 3.4x its value)
    trajectories, seed 0; the score function on 10,000."""
    net, times = case(), np.array([1.0, 4.0])
    exact = exact_gradient(net, times, species)
    est = estimate_gradient(net, times, species, list(net.parameters), key=0, runs=runs, max_steps=2000)
    assert est.estimator == "pairs" and est.unbiased
    score = estimate_gradient(net, times, species, list(net.parameters), key=1, runs=10_000,
                              estimator="score-function", max_steps=2000)
    for name, values in exact.items():
        g, se = est.gradient[name], est.stderr[name]
        assert np.all(se < 0.01 * np.abs(values)), (name, se, values)
        assert np.all(np.abs(g / values - 1) < 0.03), (name, g, values)
        assert np.all(np.abs((g - values) / se) < 3), (name, (g - values) / se)
        assert np.all(est.per_run_sd[name] < score.per_run_sd[name]), (name, est.per_run_sd[name], score.per_run_sd[name])


@pytest.mark.slow
def test_custom_laws_and_a_parameter_shared_by_two_reactions():
    """0 -> P @= v / (1 + (P / K)^2) (Hill repression), P -> 0 @ d, and 0 -> Q @ d (d shared);
    d E[P(2)] (20,000 trajectories), d E[Q(2)] (5,000) against the master equation; Q does not depend
    on v and K, and its estimates are exactly 0 (no pair placed for P's reactions ever changes Q)."""
    net = ReactionNetwork(
        {"P": 0, "Q": 0}, {"v": 20.0, "K": 5.0, "d": 0.5},
        [Reaction({}, {"P": 1}, Propensity("v / (1 + (P / K)^2)")), Reaction({"P": 1}, {}, MassAction("d")),
         Reaction({}, {"Q": 1}, MassAction("d"))],
    )
    times = np.array([2.0])
    solution = solve_cme(net, times, bounds={"P": 40, "Q": 14})
    assert solution.truncation_error < 1e-6
    for species, runs in (("P", 20_000), ("Q", 5_000)):
        est = estimate_gradient(net, times, species, ["v", "K", "d"], key=3, runs=runs)
        i = solution.species.index(species)
        for name in ("v", "K", "d"):
            value = solution.mean_gradient[0, i, solution.parameter_names.index(name)]
            if species == "Q" and name != "d":
                assert abs(value) < 1e-12 and est.gradient[name][0] == 0.0 and est.stderr[name][0] == 0.0
                continue
            error = est.gradient[name][0] - value  # d E[Q] / dd = t is estimated without noise
            assert abs(error) <= 4 * est.stderr[name][0] + 1e-5 * abs(value), (species, name, est.gradient[name][0], value)
            assert est.stderr[name][0] < 0.02 * abs(value), (species, name)


def test_a_rate_constant_of_zero_still_gets_its_derivative():
    """0 -> X @ k with k = 0, X -> 0 @ mu from X = 5: d E[X(t)] / dk = (1 - e^{-mu t}) / mu although
    the reaction never fires (the pairs are placed by its count factor, not its propensity)."""
    net = immigration_death(k=0.0, mu=0.5, x0=5)
    times = np.array([1.0, 3.0])
    est = estimate_gradient(net, times, "X", ["k", "mu"], key=4, runs=20_000)
    exact_k = (1 - np.exp(-0.5 * times)) / 0.5
    exact_mu = -times * 5 * np.exp(-0.5 * times)
    for name, exact in (("k", exact_k), ("mu", exact_mu)):
        z = (est.gradient[name] - exact) / est.stderr[name]
        assert np.all(np.abs(z) < 4), (name, est.gradient[name], exact)


@pytest.mark.slow
def test_sd_and_second_moment_derivatives_are_exact():
    """d E[M(t)^2] / d theta and d SD[M(t)] / d theta of the telegraph gene through Trajectories.expect
    and sd(), against central differences of the exact master equation (h = 1e-4 relative, float64);
    20,000 trajectories, per-trajectory derivatives of E[M^2] for the standard error."""
    net, times = telegraph(), np.array([1.0, 4.0])
    names = list(net.parameters)

    def moments(params):
        s = solve_cme(net, times, params, bounds={"M": 120})
        i = s.species.index("M")
        return s.variance[:, i] + s.mean[:, i] ** 2, np.sqrt(s.variance[:, i])

    exact = {}
    for name in names:
        value = net.parameters[name]
        up, down = moments({name: value * (1 + 1e-4)}), moments({name: value * (1 - 1e-4)})
        exact[name] = [(u - d) / (2e-4 * value) for u, d in zip(up, down)]

    runs = 20_000
    base = {name: jnp.full((runs,), value, jnp.float32) for name, value in net.parameters.items()}

    def second_moment(params):
        tr = simulate(net, times, key=5, runs=runs, params=params)
        return tr.expect(lambda x: x[2] ** 2)  # (T,)

    per_run = jax.jacrev(second_moment)(base)  # name -> (T, B): each run's derivative / B
    for name in names:
        g = np.asarray(per_run[name]) * runs
        estimate, se = g.mean(axis=1), g.std(axis=1, ddof=1) / np.sqrt(runs)
        z = (estimate - exact[name][0]) / se
        assert np.all(np.abs(z) < 4), (name, estimate, exact[name][0], z)

    def sd(params):
        return simulate(net, times, key=6, runs=runs, params=params).sd()[:, 2]

    grad = jax.jacrev(sd)(dict(net.parameters))
    for name in names:  # no per-run SE for a ratio of means: a 5% band (the SE of E[M^2]'s is 1-2%)
        np.testing.assert_allclose(np.asarray(grad[name]), exact[name][1], rtol=0.05, err_msg=name)


def test_whole_path_functionals_need_full_paths():
    """E[X(1) X(3)] of immigration-death from 0: m1 e^{-mu 2} + m1 m3 (Poisson: Cov(X(s), X(t)) =
    m(s) e^{-mu (t - s)}); its gradient in k and mu with pairs simulated to the end; 20,000 runs."""
    times = np.array([1.0, 3.0])

    def exact(k, mu):
        m = (k / mu) * (1 - jnp.exp(-mu * jnp.asarray(times)))
        return m[0] * jnp.exp(-mu * 2.0) + m[0] * m[1]

    true = jax.grad(exact, argnums=(0, 1))(10.0, 0.5)
    runs = 20_000
    net = immigration_death(k=10.0, mu=0.5)

    def product(k, mu, estimator):
        tr = simulate(net, times, key=7, runs=runs, params={"k": k, "mu": mu}, estimator=estimator)
        return tr.expect_path(lambda path: path[0, 0] * path[1, 0])

    per_run = jax.jacrev(product, argnums=(0, 1))(jnp.full((runs,), 10.0), jnp.full((runs,), 0.5),
                                                    PoissonPairs(full_paths=True))
    for g, value in zip(per_run, true):
        g = np.asarray(g) * runs
        z = (g.mean() - float(value)) / (g.std(ddof=1) / np.sqrt(runs))
        assert abs(z) < 4, (g.mean(), float(value), z)
    with pytest.raises(ValueError, match="full_paths=True"):
        jax.grad(product)(10.0, 0.5, "pairs")


def test_pairs_that_run_out_of_budget_are_reported():
    """0 -> X at rate k = 0 and X -> 2 X: the trajectories never move, but the pairs placed for k start
    with one X and explode: with max_steps = 20 they run out, and estimate_gradient raises."""
    net = ReactionNetwork({"X": 0}, {"k": 0.0, "b": 3.0},
                          [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {"X": 2}, MassAction("b"))])
    with pytest.raises(SimulationBudgetError, match="pairs of the pairs estimator"):
        estimate_gradient(net, [2.0], "X", ["k"], key=0, runs=100, max_steps=20)
    with pytest.warns(RuntimeWarning, match="pairs of the pairs estimator"):
        jax.grad(lambda k: simulate(net, [2.0], key=0, runs=100, params={"k": k}, max_steps=20).mean()[0, 0])(0.0)
