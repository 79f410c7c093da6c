"""Exactness of the simulator against analytic laws (fixed seeds, z-scores), and its contracts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization, immigration_death

from diffssa import (
    Event,
    MassAction,
    Propensity,
    Reaction,
    ReactionNetwork,
    SimulationBudgetError,
    simulate,
    time_grid,
)

Z = 4.0  # a correct simulator exceeds |z| = 4 at one of ~10 checked points with probability < 1e-3


def poisson_z(states, mean):
    """z-scores of the sample mean and of the sample variance against a Poisson law with this mean."""
    n = states.shape[0]
    m, v = states.mean(axis=0), states.var(axis=0, ddof=1)
    z_mean = (m - mean) / np.sqrt(mean / n)
    # Var of the sample variance of a Poisson(l): (mu4 - s^4 (n-3)/(n-1)) / n with mu4 = l + 3 l^2
    var_v = (mean + 3 * mean**2 - mean**2 * (n - 3) / (n - 1)) / n
    return z_mean, (v - mean) / np.sqrt(var_v)


@pytest.mark.parametrize("method, estimator", [("direct", None), ("direct", "thinning"), ("next-reaction", None)])
def test_immigration_death_is_poisson(method, estimator):
    """X(t) ~ Poisson((k/mu)(1 - e^{-mu t})) from X(0) = 0; n = 20,000 runs, 5 times (the direct
    method's clock, the thinning clock, the next-reaction method)."""
    net = immigration_death(k=10.0, mu=0.5)
    times = np.array([0.1, 0.5, 1.0, 3.0, 10.0], np.float32)
    tr = simulate(net, times, key=1, runs=20_000, max_steps=500, estimator=estimator, method=method)
    assert not bool(jnp.any(tr.exhausted))
    mean = (10.0 / 0.5) * (1 - np.exp(-0.5 * times))
    z_mean, z_var = poisson_z(np.asarray(tr["X"], np.float64), mean)
    assert np.all(np.abs(z_mean) < Z), z_mean
    assert np.all(np.abs(z_var) < Z), z_var


def test_batch_production_and_pure_birth():
    """0 -> 5 X at rate a: X(t)/5 ~ Poisson(a t); n = 20,000."""
    net = ReactionNetwork({"X": 0}, {"a": 2.0}, [Reaction({}, {"X": 5}, MassAction("a"))])
    times = np.array([0.5, 2.0, 5.0], np.float32)
    tr = simulate(net, times, key=2, runs=20_000, max_steps=100)
    x = np.asarray(tr["X"], np.float64)
    assert np.all(x % 5 == 0)
    z_mean, z_var = poisson_z(x / 5, 2.0 * times)
    assert np.all(np.abs(z_mean) < Z) and np.all(np.abs(z_var) < Z)


def test_state_recorded_is_the_one_after_the_last_event_at_or_before_each_time():
    """X -> 0 at rate k from X = 1: P(X(t) = 1) = e^{-k t}; the row at t = 0 is the initial state."""
    net = ReactionNetwork({"X": 1}, {"k": 1.0}, [Reaction({"X": 1}, {}, MassAction("k"))])
    times = np.array([0.0, 0.0, 0.25, 1.0, 1.0, 2.0], np.float32)
    n = 40_000
    tr = simulate(net, times, key=3, runs=n, max_steps=10)
    x = np.asarray(tr["X"])
    assert np.all(x[:, 0] == 1) and np.all(x[:, 1] == 1)
    assert np.all(np.diff(x, axis=1) <= 0)  # monotone along each trajectory
    p = np.exp(-times)
    z = (x.mean(axis=0) - p) / np.sqrt(p * (1 - p) / n + 1e-12)
    assert np.all(np.abs(z[2:]) < Z), z


def test_dimerization_conserves_mass_and_matches_the_forward_path_under_thinning():
    """The thinning clock (estimator="thinning") and the direct method sample the same law; n = 10,000 each."""
    net = dimerization()
    times = time_grid(20.0, 4)
    direct = simulate(net, times, key=4, runs=10_000)
    thin = simulate(net, times, key=5, runs=10_000, estimator="thinning", max_steps=200)
    for tr in (direct, thin):
        s = np.asarray(tr.states)
        assert np.all(s[:, :, 0] + 2 * s[:, :, 1] == 100)
    a, b = np.asarray(direct["P"])[:, 1:], np.asarray(thin["P"])[:, 1:]
    z = (a.mean(0) - b.mean(0)) / np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    assert np.all(np.abs(z) < Z), z


def test_per_trajectory_parameters_and_initial_states():
    net = immigration_death(k=1.0, mu=1.0)
    k = jnp.array([0.0, 0.0, 1000.0, 1000.0])
    tr = simulate(net, [1.0], key=6, runs=4, params={"k": k}, initial=np.array([[0], [7], [0], [0]]), max_steps=5000)
    x = np.asarray(tr["X"])[:, 0]
    assert x[0] == 0 and x[1] <= 7 and x[2] > 400 and x[3] > 400


def test_reproducible_from_the_key():
    net = dimerization()
    a = simulate(net, [5.0, 10.0], key=jax.random.PRNGKey(7), runs=100)
    b = simulate(net, [5.0, 10.0], key=jax.random.PRNGKey(7), runs=100)
    c = simulate(net, [5.0, 10.0], key=jax.random.PRNGKey(8), runs=100)
    assert np.array_equal(a.states, b.states)
    assert not np.array_equal(a.states, c.states)


def test_exhausted_budget_is_flagged_warned_and_can_raise():
    net = immigration_death(k=100.0, mu=1.0)
    with pytest.warns(RuntimeWarning, match="ran out of the step budget"):
        tr = simulate(net, [0.01, 10.0], key=0, runs=50, max_steps=20)
    assert bool(jnp.all(tr.exhausted))
    assert np.all(np.isnan(np.asarray(tr.states)[:, 1]))
    assert np.all(np.asarray(tr.events) == 20)
    with pytest.raises(SimulationBudgetError, match="max_steps=20"):
        simulate(net, [10.0], key=0, runs=5, max_steps=20, on_exhausted="raise")


def test_budget_is_not_exhausted_when_no_further_event_is_due():
    """A trajectory that used its whole budget but needs no more events is complete, not flagged."""
    net = ReactionNetwork({"X": 3}, {"k": 5.0}, [Reaction({"X": 1}, {}, MassAction("k"))])
    tr = simulate(net, [100.0], key=0, runs=20, max_steps=3, on_exhausted="raise")
    assert np.all(np.asarray(tr["X"]) == 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"times": [2.0, 1.0]}, "non-decreasing"),
    ({"times": [-1.0]}, "non-negative"),
    ({"runs": 0}, "runs"),
    ({"params": {"nope": 1.0}}, "unknown parameter 'nope'"),
    ({"params": {"k": float("inf")}}, "'k' must be finite"),
    ({"initial": [1.5]}, "initial counts"),
    ({"initial": {"Y": 3}}, "unknown species 'Y'"),
    ({"estimator": "magic"}, "unknown estimator 'magic'"),
    ({"estimator": "pairs", "method": "next-reaction"}, "forward only"),
])
def test_bad_simulation_arguments(kwargs, message):
    args = {"times": [1.0], "key": 0, "runs": 2, **kwargs}
    times = args.pop("times")
    with pytest.raises(ValueError, match=message):
        simulate(immigration_death(), times, **args)


def test_time_event_resets_exactly_at_its_time():
    """Immigration-death reset to X = 50 at t = 25: mean relaxes from 50 towards k/mu = 100; n = 10,000."""
    net = ReactionNetwork(
        {"X": 0}, {"k": 10.0, "mu": 0.1},
        [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))],
        events=[Event("geq(time, 25)", {"X": 50}, "reset")],
    )
    times = np.array([24.9, 25.0, 30.0], np.float32)
    x = np.asarray(simulate(net, times, key=9, runs=10_000)["X"], np.float64)
    assert np.all(x[:, 1] == 50)
    # after the reset: X = Binomial(50, e^{-mu s}) + Poisson((k/mu)(1 - e^{-mu s}))
    e = np.exp(-0.5)
    mean = 50 * e + 100 * (1 - e)
    var = 50 * e * (1 - e) + 100 * (1 - e)
    assert abs(x[:, 2].mean() - mean) / np.sqrt(var / len(x)) < Z
    before = 100 * (1 - np.exp(-0.1 * 24.9))
    assert abs(x[:, 0].mean() - before) / np.sqrt(before / len(x)) < Z


def test_state_event_fires_when_its_trigger_turns_true():
    net = dimerization()
    net = ReactionNetwork(net.species, net.parameters, net.reactions, events=[Event("gt(P2, 30)", {"P": 100, "P2": 0})])
    x = np.asarray(simulate(net, time_grid(50, 10), key=10, runs=2000).states)
    assert x[:, :, 1].max() == 30  # reset as soon as P2 would exceed 30
    assert np.all(x[:, :, 0] + 2 * x[:, :, 1] == 100)


def test_results_export(tmp_path):
    tr = simulate(dimerization(), time_grid(10, 5), key=0, runs=50)
    frame = tr.to_dataframe()
    assert list(frame.columns) == ["time", "P-mean", "P-sd", "P2-mean", "P2-sd"]
    assert len(frame) == 6
    tr.to_csv(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "time,P-mean,P-sd,P2-mean,P2-sd"
    assert len(tr.to_dataframe(summary=False)) == 50 * 6
    # to_csv writes without pandas what pandas writes, NaN rows of exhausted runs (blank) included
    short = simulate(dimerization(), time_grid(10, 5), key=0, runs=50, max_steps=20, on_exhausted="ignore")
    assert np.any(np.asarray(short.exhausted))
    for summary in (True, False):
        short.to_csv(tmp_path / "ours.csv", summary=summary)
        with open(tmp_path / "ours.csv", newline="") as f:
            assert f.read() == short.to_dataframe(summary).to_csv(index=False)


@pytest.mark.parametrize("null_event", [False, True])
def test_a_reaction_with_zero_propensity_is_never_chosen(null_event):
    """Regression: the draw u = 0, or u * a0 rounded up to a0, used to fire the first or last reaction
    whatever its propensity (a channel left a state it was not in)."""
    from diffssa.simulation.engine import reaction_index

    a = jnp.array([0.0, 1.0, 0.0, 2.0, 0.0])
    cum = jnp.cumsum(a)
    pick = jax.jit(lambda target: reaction_index(a, cum, target, null_event))
    assert int(pick(0.0)) == 1  # u = 0
    assert int(pick(0.999)) == 1
    assert int(pick(1.0)) == 3
    assert int(pick(2.999)) == 3
    assert int(pick(3.0)) == (5 if null_event else 3)  # past a0: the null event, or rounding


def test_zero_rate_reactions_at_both_ends_never_fire():
    """20,000 runs x ~20 events: reactions of rate 0 placed first and last never change the state."""
    net = ReactionNetwork(
        {"X": 0, "Y": 0}, {"k": 10.0, "mu": 0.5, "zero": 0.0},
        [Reaction({}, {"Y": 1}, MassAction("zero")), Reaction({}, {"X": 1}, MassAction("k")),
         Reaction({"X": 1}, {}, MassAction("mu")), Reaction({}, {"Y": 1}, MassAction("zero"))],
    )
    tr = simulate(net, [0.0, 1.0, 2.0], key=11, runs=20_000)
    assert float(jnp.max(tr["Y"])) == 0.0
    assert int(jnp.sum(tr.events)) > 20_000 * 10


@pytest.mark.parametrize("method", ["direct", "next-reaction"])
def test_a_negative_or_undefined_law_is_an_error_naming_the_reaction(method):
    """X -> 0 @= mu * (5 - X) goes negative once X > 5: an error, not a silently clamped rate."""
    net = ReactionNetwork(
        {"X": 0}, {"k": 20.0, "mu": 1.0},
        [Reaction({}, {"X": 1}, MassAction("k"), "birth"), Reaction({"X": 1}, {}, Propensity("mu * (5 - X)"), "death")],
    )
    with pytest.raises(ValueError, match=r"reaction death: its kinetic law was negative or not finite.* of 100 trajectories"):
        simulate(net, [1.0], key=0, runs=100, method=method)
    undefined = ReactionNetwork(
        {"X": 0}, {"k": 1.0}, [Reaction({}, {"X": 1}, Propensity("k / X"), "grow")],
    )
    with pytest.raises(ValueError, match=r"reaction grow: .*not finite"):
        simulate(undefined, [1.0], key=0, runs=10, method=method)
    with pytest.raises(ValueError, match=r"reaction birth: "):  # a negative rate constant passed at run time
        simulate(net, [1.0], key=0, runs=10, params={"k": -1.0}, method=method)


@pytest.mark.parametrize("method", ["direct", "next-reaction", "grad"])
def test_a_bad_mass_action_rate_constant_is_an_error_naming_the_reaction(method):
    """Mass-action laws are checked once per call through their rate constants (their count factor is
    finite and >= 0): a negative one raises even if its reaction never fires (no X here), also traced."""
    net = ReactionNetwork(
        {"X": 0, "Y": 0}, {"k": 5.0, "mu": 1.0},
        [Reaction({}, {"Y": 1}, MassAction("k"), "make Y"), Reaction({"X": 1}, {}, MassAction("mu"), "X decays")],
    )
    for params in ({"mu": -1.0}, {"mu": jnp.array([1.0] * 7 + [-1.0] * 3)}):
        with pytest.raises(ValueError, match=r"reaction X decays: .*negative or not finite.* in \d+ of 10 trajectories"):
            if method == "grad":
                jax.grad(lambda k: jnp.sum(simulate(net, [1.0], key=0, runs=10, params={**params, "k": k}).states))(
                    jnp.float32(5.0))
            else:
                simulate(net, [1.0], key=0, runs=10, params=params, method=method)
    tr = simulate(net, [1.0], key=0, runs=10, method="direct" if method == "grad" else method)
    assert float(jnp.max(tr["X"])) == 0.0 and float(jnp.min(tr["Y"])) >= 0.0


@pytest.mark.parametrize("transform", ["grad", "jacrev"])
@pytest.mark.parametrize("estimator", ["thinning", "pairs", "score-function"])
def test_counts_stay_exact_integers_under_differentiation(transform, estimator):
    """Regression: straight-through written as (hard + soft) - soft rounded, e.g. a count of 1 became
    0.99999994 and then -6e-8 (found by the check on propensities); 2,000 runs, both transforms; the
    unbiased estimators' derivative terms are exactly 0 forward too."""
    net = dimerization()

    def f(params):
        tr = simulate(net, time_grid(2.0, 2), key=1, runs=2000, params=params, estimator=estimator)
        return jnp.sum(tr.states[:, -1, 0]), tr.states

    params = {"k1": jnp.float32(0.001), "k2": jnp.float32(0.01)}
    if transform == "grad":
        (_, states), _ = jax.value_and_grad(f, has_aux=True)(params)
    else:
        _, states = jax.jacrev(f, has_aux=True)(params)
    s = np.asarray(states)
    assert np.all(s == np.round(s)) and np.all(s[:, :, 0] + 2 * s[:, :, 1] == 100)
