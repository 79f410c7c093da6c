"""Estimators as explicit modes: trajectories independent of jit and grad, refusals, reports."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import dimerization, immigration_death
from test_pairs import telegraph

from diffssa import (
    BiasWarning,
    Event,
    MassAction,
    PoissonPairs,
    Propensity,
    Reaction,
    ReactionNetwork,
    Surrogate,
    simulate,
)
from diffssa.estimators import get_estimator
from diffssa.fitting import fit
from diffssa.gradients import estimate_gradient
from diffssa.rng import as_key

TIMES = [1.0, 3.0]


def run(estimator, params=None, key=3):
    return simulate(dimerization(p0=30), TIMES, key=key, runs=50, params=params, estimator=estimator)


@pytest.mark.parametrize("estimator", [None, "auto", "pairs", "score-function", "thinning", "thinning-gumbel"])
def test_trajectories_do_not_depend_on_jit_or_grad(estimator):
    """Regression: wrapping a forward simulate in jax.jit used to switch it to the thinning clock."""
    plain = np.asarray(run(estimator).states)
    jitted = jax.jit(lambda k1: run(estimator, {"k1": k1}).states)(0.001)
    np.testing.assert_array_equal(plain, np.asarray(jitted))
    if estimator is not None:
        def loss(k1):
            states = run(estimator, {"k1": k1}).states
            return jnp.sum(states[:, :, 0]), states

        (_, differentiated), _ = jax.value_and_grad(loss, has_aux=True)(0.001)
        np.testing.assert_array_equal(plain, np.asarray(differentiated))
    if estimator in (None, "auto", "pairs", "score-function"):  # the direct method's own trajectories
        np.testing.assert_array_equal(plain, np.asarray(run(None).states))


def test_forward_only_refuses_to_be_differentiated_but_runs_under_jit():
    np.asarray(jax.jit(lambda k1: run(None, {"k1": k1}).states)(0.001))
    with pytest.raises(ValueError, match="estimator=None\\) is forward only.*parameter 'k1'"):
        jax.grad(lambda k1: jnp.sum(run(None, {"k1": k1}).states))(0.001)


def test_event_networks_use_the_score_function_and_refuse_event_parameters():
    net = ReactionNetwork(
        {"X": 0}, {"k": 10.0, "mu": 0.5, "c": 2.0, "level": 40.0},
        [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))],
        events=[Event("geq(time, c)", {"X": "level"}, "reset")],
    )
    est = estimate_gradient(net, [1.0, 3.0], "X", ["k"], key=0, runs=2000)
    assert est.estimator == "score-function" and est.unbiased
    with pytest.raises(ValueError, match="pairs estimator does not support events"):
        simulate(net, [1.0], key=0, estimator="pairs")
    for name in ("c", "level"):
        with pytest.raises(ValueError, match=f"parameter '{name}' is read by event reset"):
            jax.grad(lambda v: simulate(net, [3.0], key=0, runs=10, params={name: v}).mean()[0, 0])(2.0)


@pytest.mark.slow
def test_a_biased_estimator_is_checked_and_its_disagreement_reported():
    """The Gumbel-softmax surrogate on the telegraph gene (d E[M(4)] / d kon about -46%,
    docs/gradients.md) against a pilot of the pairs estimator: a BiasWarning and the check recorded;
    4,000 trajectories. On pure birth (where the thinning surrogate is right) the check agrees, silently."""
    with pytest.warns(BiasWarning, match="'thinning-gumbel' disagrees with the unbiased pairs estimator"):
        est = estimate_gradient(telegraph(), [4.0], "M", ["kon"], key=0, runs=4000, estimator="thinning-gumbel")
    assert est.estimator == "thinning-gumbel" and not est.unbiased and est.check.startswith("disagrees")
    birth = ReactionNetwork({"X": 0}, {"k": 20.0}, [Reaction({}, {"X": 1}, MassAction("k"))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BiasWarning)
        est = estimate_gradient(birth, [1.0], "X", ["k"], key=0, runs=4000, estimator="thinning")
    assert est.check.startswith("checked against") and "agrees" in est.check
    assert estimate_gradient(birth, [1.0], "X", ["k"], key=0, runs=100).check is None  # unbiased: not checked


def test_an_invalid_law_inside_jit_warns_names_the_reaction_and_gives_nan():
    """Inside a traced call a failed check cannot raise (a raising callback in a program spread over
    two devices aborted the process): it warns, the affected trajectories are NaN, and fit raises."""
    net = ReactionNetwork(
        {"X": 0}, {"k": 20.0, "mu": 1.0},
        [Reaction({}, {"X": 1}, MassAction("k"), "birth"), Reaction({"X": 1}, {}, Propensity("mu * (5 - X)"), "death")],
    )
    with pytest.warns(RuntimeWarning, match="reaction death: its kinetic law was negative"):
        states = jax.jit(lambda k: simulate(net, [1.0], key=0, runs=20, params={"k": k}).states)(20.0)
        states = np.asarray(states)
    assert np.all(np.isnan(states))

    def loss(params, key):
        return jnp.mean(simulate(net, [1.0], key=key, runs=20, params=params).states)

    with pytest.raises(FloatingPointError, match="became NaN or infinite at step 0"):
        with pytest.warns(RuntimeWarning):
            fit(loss, {"k": 20.0}, key=0, steps=3, optimizer=optax.sgd(0.1), progress=False)


def test_fit_averages_every_iterate_when_average_last_exceeds_steps():
    """``average_last`` longer than the run averages all of it (it raised NameError before)."""

    def loss(params, key):
        return (params["k"] - 3.0) ** 2

    def run(n):
        return fit(loss, {"k": 1.0}, key=0, steps=3, optimizer=optax.sgd(0.1), progress=False, average_last=n).params
    assert run(5) == pytest.approx(run(3), rel=1e-6)
    assert run(5) != pytest.approx(run(0), rel=1e-3)


def test_unread_traced_parameters_have_zero_derivatives():
    """A traced parameter no kinetic law reads: no pairs are needed, the derivative is 0."""
    net = ReactionNetwork({"X": 0}, {"k": 2.0, "unused": 1.0}, [Reaction({}, {"X": 1}, MassAction("k"))])
    grad = jax.grad(lambda u: simulate(net, [1.0], key=0, runs=10, params={"unused": u}).mean()[0, 0])(1.0)
    assert float(grad) == 0.0


def test_immigration_death_mean_gradient_under_jit_and_grad_is_unbiased():
    """The README's pattern, jax.jit(jax.grad(loss)) with a loss of tr.mean(): d E[X(2)] / d mu
    against its analytic value, 10 seeds of 2,000 trajectories (the seed-to-seed spread as SE)."""
    net, k, mu, t = immigration_death(k=10.0, mu=0.5), 10.0, 0.5, 2.0
    grad = jax.jit(jax.grad(lambda m, key: simulate(net, [t], key=key, runs=2000, params={"mu": m}).mean()[0, 0]))
    values = np.array([float(grad(mu, jax.random.PRNGKey(s))) for s in range(10)])
    exact = -(k / mu**2) * (1 - np.exp(-mu * t)) + (k / mu) * t * np.exp(-mu * t)
    z = (values.mean() - exact) / (values.std(ddof=1) / np.sqrt(len(values)))
    assert abs(z) < 4, (values.mean(), exact, z)


@pytest.mark.parametrize("make, message", [
    (lambda: PoissonPairs(per_reaction=0), "per_reaction must be a positive integer"),
    (lambda: PoissonPairs(per_reaction=1.5), "per_reaction must be a positive integer"),
    (lambda: Surrogate(clock="fast"), "clock must be 'thinning' or 'direct'"),
    (lambda: Surrogate(choice="argmax"), "choice must be 'straight-through' or 'gumbel-softmax'"),
    (lambda: Surrogate(clock_factor=0.9), "clock_factor must be >= 1"),
    (lambda: Surrogate(temperature=0.0), "temperature must be positive"),
    (lambda: Surrogate(observation_width=0.1), "applies to the direct clock only"),
    (lambda: get_estimator("auto"), "resolved per network"),
])
def test_bad_estimator_configurations_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_integer_seeds_use_all_64_bits():
    """Seeds below 2**32 keep their old keys (documented results are unchanged); 2**32 is not seed 0."""
    for seed in (0, 1, 12345, 2**32 - 1):
        np.testing.assert_array_equal(np.asarray(as_key(seed)), np.asarray(jax.random.PRNGKey(seed)))
    assert not np.array_equal(np.asarray(as_key(2**32)), np.asarray(as_key(0)))
    a = simulate(immigration_death(), [1.0], key=2**40, runs=20).states
    b = simulate(immigration_death(), [1.0], key=0, runs=20).states
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="does not fit in 64 bits"):
        as_key(2**64)
    with pytest.raises(TypeError, match="integer or a JAX key"):
        as_key(True)
