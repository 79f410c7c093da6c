"""The Vilar-Kueh-Barkai-Leibler oscillator reproduction: network, statistics, regression Jacobian, fit step."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from diffssa import simulate
from diffssa.applications.oscillator import (
    OBSERVED,
    RATE_NAMES,
    TRUE_RATES,
    Design,
    Metric,
    design_spectra,
    fisher_analysis,
    local_model,
    oscillator_network,
    pairs_local_model,
    perturbed_start,
    simulate_features,
    trajectory_features,
)
from diffssa.applications.oscillator.features import _features
from diffssa.applications.oscillator.fit import _gauss_newton_step
from diffssa.applications.oscillator.local_models import _pair_regression

DOCUMENTED = {
    "alphaA": 50, "alphaA_prime": 500, "alphaR": 0.01, "alphaR_prime": 50, "betaA": 50, "betaR": 5,
    "deltaMA": 10, "deltaMR": 0.5, "deltaA": 1, "deltaR": 0.2, "gammaA": 1, "gammaR": 1, "gammaC": 2,
    "thetaA": 50, "thetaR": 100,
}


def test_network_has_the_documented_structure():
    net = oscillator_network()
    assert len(net.species) == 9 and len(net.reactions) == 16 and len(net.parameters) == 15
    assert net.parameters == {k: float(v) for k, v in DOCUMENTED.items()}
    assert net.species == {"DA": 1, "DA_prime": 0, "DR": 1, "DR_prime": 0, "MA": 0, "MR": 0, "A": 0, "R": 0, "C": 0}
    nu = net.stoichiometry
    idx = {s: i for i, s in enumerate(net.species)}
    # gene copies are conserved by every reaction: DA + DA' and DR + DR' stay 1
    assert np.all(nu[:, idx["DA"]] + nu[:, idx["DA_prime"]] == 0)
    assert np.all(nu[:, idx["DR"]] + nu[:, idx["DR_prime"]] == 0)
    rates = [r.law.rate.name for r in net.reactions]
    assert rates.count("deltaA") == 2 and sorted(set(rates)) == sorted(RATE_NAMES)
    # sequestration A + R -> C and release C -> R
    seq = net.reactions[rates.index("gammaC")]
    assert seq.reactants == {"A": 1, "R": 1} and seq.products == {"C": 1}
    with pytest.raises(ValueError, match="unknown rate"):
        oscillator_network(alphaQ=1.0)


def test_perturbed_start_is_a_factor_two_either_way_and_reproducible():
    start = perturbed_start(0)
    assert start == perturbed_start(0)
    ratios = np.array([start[k] / TRUE_RATES[k] for k in RATE_NAMES])
    assert np.allclose(np.abs(np.log2(ratios)), 1.0)
    assert 0 < np.sum(ratios > 1) < 15
    assert start != perturbed_start(1)


def test_short_simulation_shows_the_first_pulse_and_repression():
    """A pulses within hours, then R rises and sequesters it; features are finite and well shaped."""
    net = oscillator_network()
    design = Design(t_end=14.0, points=28, lags=(1.0, 2.0))
    tr = simulate(net, design.times, key=0, runs=24, max_steps=400_000)
    a, r = np.asarray(tr["A"]).mean(0), np.asarray(tr["R"]).mean(0)
    t = design.times
    assert a[(t >= 2) & (t <= 5)].max() > 1000          # the activator pulse
    assert r[t <= 4].max() < 50 and r[(t >= 9) & (t <= 12)].max() > 800   # repressor comes later
    assert a[(t >= 11) & (t <= 14)].mean() < 50          # and shuts the activator off
    f = trajectory_features(tr.states, design, net.species_names)
    assert f.shape == (24, 2 * 3 * len(t) + 2 * 2) and np.all(np.isfinite(f))
    # the JAX version the pairs estimator differentiates computes the same features
    same = np.asarray(_features(jnp, jnp.asarray(tr.states), design, net.species_names))
    np.testing.assert_allclose(same, f, rtol=1e-5, atol=1e-9)
    # mean feature of A at each time is the mean time course in units of design.scale
    assert np.allclose(f[:, : 3 * len(t)].mean(0).reshape(len(t), 3)[:, 0], a / design.scale, rtol=1e-5)


def test_metric_whitens_and_vanishes_at_the_target():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    f = rng.normal(size=(4000, 6)) @ mix + 3.0
    f = np.concatenate([f, np.zeros((4000, 1))], axis=1)  # a constant feature is dropped
    metric = Metric(f, shrinkage=0.0)
    assert metric.dim == 6
    assert metric.loss(f.mean(0)) == pytest.approx(0.0, abs=1e-20)
    z = metric.whiten((f - f.mean(0)).T)
    assert np.allclose(np.cov(z), np.eye(6), atol=1e-8)


def test_pair_regression_recovers_a_linear_jacobian_and_its_noise():
    rng = np.random.default_rng(1)
    p, dim, pairs, h = 4, 30, 2000, 0.1
    metric = Metric(rng.normal(size=(5000, dim)), shrinkage=0.0)
    jac = rng.normal(size=(dim, p)) * 5
    d = h * rng.choice([-1.0, 1.0], size=(pairs, p))
    curvature = 3.0 * (d**2).sum(1, keepdims=True)  # even terms cancel in the half-differences
    plus = d @ jac.T + curvature + rng.normal(size=(pairs, dim))
    minus = -d @ jac.T + curvature + rng.normal(size=(pairs, dim))
    est, halves, xtx_inv, trace = _pair_regression(d, plus, minus, metric)
    se = math.sqrt(0.5 / (pairs * h * h))
    assert np.abs(est - jac).max() < 5 * se
    assert trace == pytest.approx(dim * 0.5 * metric.sd.mean() ** -2, rel=0.2)
    assert all(np.abs(hv - jac).max() < 5 * math.sqrt(2) * se for hv in halves)
    fisher = fisher_analysis(metric, halves, [f"k{i}" for i in range(p)], effective_runs=1000.0)
    assert min(fisher["eigenvalues"]) > 0 and all(s is not None for s in fisher["se"].values())


def test_gauss_newton_step_solves_a_linear_problem():
    rng = np.random.default_rng(2)
    metric = Metric(rng.normal(size=(5000, 12)), shrinkage=0.0)
    jac = rng.normal(size=(12, 3)) * metric.sd[:, None]
    offset = np.array([0.3, -0.2, 0.1])
    step, kept = _gauss_newton_step(metric, jac, np.zeros((3, 3)) + 1e-9, metric.whiten(jac @ offset), 3.0)
    assert kept == 3 and np.allclose(step, -offset, atol=1e-8)


@pytest.mark.parametrize("jacobian", ["regression", "pairs"])
def test_one_fit_iteration_lowers_the_loss(jacobian):
    """One Gauss-Newton step from rates 25% off, on a short horizon, with fresh trajectories; the
    Jacobian from the antithetic regression or from the pairs estimator (128 trajectories)."""
    net = oscillator_network()
    design = Design(t_end=8.0, points=16, lags=(1.0, 2.0))
    target, _ = simulate_features(net, {}, key=1, runs=256, design=design, batch=256)
    metric = Metric(target)
    free = ["alphaA_prime", "deltaA"]
    u = {k: math.log(v) for k, v in TRUE_RATES.items()}
    u["alphaA_prime"] += math.log(1.25)
    u["deltaA"] -= math.log(1.25)
    if jacobian == "pairs":
        model = pairs_local_model(net, u, free, metric, seed=3, runs=128, design=design, batch=64)
    else:
        model = local_model(net, u, free, metric, seed=3, center_runs=128, pairs=64, step=0.05, design=design,
                            batch=128)
    before = metric.loss(model.center)
    step, kept = _gauss_newton_step(metric, model.jacobian, model.residual_cov_trace * model.jac_var,
                                    metric.residual(model.center), 3.0)
    assert kept >= 1
    new = dict(u)
    for j, k in enumerate(free):
        new[k] += step[j]
    after, _ = simulate_features(net, {k: math.exp(v) for k, v in new.items()}, key=4, runs=128, design=design, batch=128)
    assert metric.loss(after.mean(0)) < 0.5 * before
    # and the step moves both rates towards the truth
    assert new["alphaA_prime"] < u["alphaA_prime"] and new["deltaA"] > u["deltaA"]


def test_plot_fit_writes_the_figure(tmp_path):
    from diffssa.applications.oscillator import plot_fit

    t = Design().times
    curve = np.stack([np.sin(t / 5.0) ** 2 * 1000] * 3, axis=1)
    results = {"_plot": {
        "times": t, "target_mean": curve, "target_sd": 0.1 * curve, "fit_mean": 1.05 * curve,
        "start_mean": 2 * curve, "losses": np.array([100.0, 1.0, 0.1]), "loss_check": 0.1, "loss_floor": 1e-3,
        "history": {k: np.array([2.0, 1.5, 1.0]) * v for k, v in TRUE_RATES.items()},
        "eigenvalues": np.array([-1.0, 5.0, 50.0]), "resolution": 1.0, "fitted": ["deltaA"],
    }}
    path = tmp_path / "sub" / "oscillator.png"
    plot_fit(results, path)
    assert path.stat().st_size > 10_000


def test_default_design_is_the_coarse_grid():
    d = Design()
    assert np.array_equal(d.times, d.coarse_times) and len(d.times) == 61
    assert np.array_equal(d.coarse_index, np.arange(61))
    assert d.lag_steps == tuple(range(2, 31, 2))
    assert len(d.feature_names()) == 6 * 61 + 2 * 15


def test_early_grid_is_merged_for_recording_and_the_lags_stay_on_the_coarse_grid():
    old, new = Design(), Design(early_end=3.0, early_dt=0.05, cross=True)
    t = new.times
    early = np.round(np.arange(61) * 0.05, 6)
    assert np.all(np.diff(t) > 0) and t[0] == 0.0 and t[-1] == np.float32(30.0)
    assert len(t) == 61 + 61 - 7   # 0, 0.5, ..., 3 are on both grids
    assert np.allclose(t[:61], early, atol=1e-6) and np.allclose(t[new.coarse_index], old.times)
    assert new.lag_steps == old.lag_steps
    names = new.feature_names()
    assert len(names) == 6 * len(t) + len(t) + 2 * 15 and len(set(names)) == len(names)
    assert "mean A(0.05)" in names and "AR(0.1)" in names and names[-1] == "acf R lag 15"
    # features on the merged grid agree with the old design's where they overlap
    rng = np.random.default_rng(3)
    states = rng.poisson(500.0, size=(5, len(t), len(OBSERVED))).astype(float)
    f_new = trajectory_features(states, new, OBSERVED)
    f_old = trajectory_features(states[:, new.coarse_index], old, OBSERVED)
    assert f_new.shape == (5, len(names))
    assert np.allclose(f_new[:, -30:], f_old[:, -30:])          # autocorrelations: coarse grid only
    pick = lambda f, des, prefix: np.array([f[:, des.feature_names().index(f"{prefix} {s}({x:g})")]
                                            for x in old.times for s in OBSERVED]).T
    for prefix in ("mean", "m2"):
        assert np.allclose(pick(f_new, new, prefix), pick(f_old, old, prefix))
    x = states / new.scale
    assert np.allclose(f_new[:, 6 * len(t): 7 * len(t)], x[:, :, 0] * x[:, :, 1])
    f_unit = trajectory_features(states, new._replace(cross_scale=1e4), OBSERVED)
    assert np.allclose(f_unit[:, 6 * len(t): 7 * len(t)], states[:, :, 0] * states[:, :, 1] / 1e4)
    cross = np.s_[6 * len(t): 7 * len(t)]
    assert np.allclose(np.delete(f_unit, cross, 1), np.delete(f_new, cross, 1))
    with pytest.raises(ValueError, match="times"):
        trajectory_features(states[:, new.coarse_index], new, OBSERVED)


def test_design_spectra_compares_designs_from_one_simulation():
    short = Design(t_end=4.0, points=8, lags=(1.0, 2.0))
    early = short._replace(early_end=1.0, early_dt=0.1)
    r = design_spectra({"coarse": short, "early": early}, pairs=48, target_runs=96, batch=96)
    assert np.allclose(r["simulated_times"], early.times) and len(r["free"]) == 12
    for name, design in (("coarse", short), ("early", early)):
        ev = r[name]["eigenvalues"]
        assert len(ev) == 12 and ev == sorted(ev, reverse=True) and ev[0] > 0
        assert 0 < r[name]["dim"] <= len(design.feature_names())
        assert set(r[name]["diagonal"]) == set(r["free"])
    assert r["early"]["dim"] > r["coarse"]["dim"]
