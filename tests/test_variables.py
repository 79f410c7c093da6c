"""Variables (quantities only events change) and observables (outputs computed from the state)."""

import math

import numpy as np
import pytest

from diffssa import Event, MassAction, Propensity, Reaction, ReactionNetwork, simulate
from diffssa.io.language import format_network, parse_network

SWITCHED = """
network switched production
parameter k = 20
parameter mu = 1
species X = 0
variable on = 1          # production switched off at t = 2 by an event
observable doubled = 2 * X + on
0 -> X @= k * on
X -> 0 @ mu
event off when time >= 2: on = 0
"""


def test_a_variable_switched_by_a_time_event_matches_the_exact_means():
    """Immigration-death switched off at t = 2: E X(t) = (k/mu)(1 - e^-mu t) until 2, then that
    times e^-mu (t - 2); X(t) is Poisson throughout. 4,000 runs, every time within 4 SE."""
    net = parse_network(SWITCHED)
    times = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    tr = simulate(net, times, key=3, runs=4000, estimator=None)
    assert tr.species == ("X", "on")
    on_mean = np.asarray(tr.mean())[:, 1]
    assert np.all(on_mean == [1, 1, 0, 0, 0])  # recorded after the event at t = 2
    exact = 20 * (1 - np.exp(-np.minimum(times, 2))) * np.exp(-np.maximum(times - 2, 0))
    mean = np.asarray(tr.mean())[:, 0]
    se = np.sqrt(np.maximum(exact, 1e-9) / 4000)
    assert np.all(np.abs(mean[1:] - exact[1:]) < 4 * se[1:]), (mean, exact)
    doubled = np.asarray(tr["doubled"])
    assert doubled.shape == (4000, 5)
    np.testing.assert_array_equal(doubled, 2 * np.asarray(tr["X"]) + np.asarray(tr["on"]))
    assert "doubled-mean" in tr.summary_table()


def test_variables_and_observables_round_trip_through_the_language():
    net = parse_network(SWITCHED)
    assert net.variables == {"on": 1.0} and set(net.observables) == {"doubled"}
    assert parse_network(format_network(net)) == net


def test_variable_assignments_are_not_rounded():
    net = ReactionNetwork({"X": 0}, {"k": 1.0}, [Reaction({}, {"X": 1}, Propensity("k * level"))],
                          events=[Event("geq(time, 1)", {"level": "level * 0.25"}, "dim")],
                          variables={"level": 3.0})
    tr = simulate(net, [0.0, 2.0], key=0, runs=2, estimator=None)
    assert np.asarray(tr["level"])[0].tolist() == [3.0, 0.75]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ReactionNetwork({"X": 0}, {}, [Reaction({"v": 1}, {"X": 1}, Propensity("1"))], variables={"v": 1}),
         "'v' is a variable, which cannot be a reactant"),
        (lambda: ReactionNetwork({"X": 0}, {}, [Reaction({}, {"X": 1}, MassAction("v"))], variables={"v": 1}),
         "mass-action rate constant cannot read variable 'v'"),
        (lambda: ReactionNetwork({"X": 0}, {"k": 1}, [Reaction({}, {"X": 1}, MassAction("k"))], variables={"k": 1}),
         "names used both as variable and parameter"),
        (lambda: ReactionNetwork({"X": 0}, {}, [Reaction({}, {"X": 1}, Propensity("1"))], variables={"v": math.inf}),
         "initial value of variable 'v' must be finite"),
        (lambda: ReactionNetwork({"X": 0}, {"k": 1}, [Reaction({}, {"X": 1}, MassAction("k"))],
                                 events=[Event("geq(time, 1)", {"k": 2.0}, "bump")]),
         "event bump: assigns parameter 'k'.*variable"),
        (lambda: ReactionNetwork({"X": 0}, {}, [Reaction({}, {"X": 1}, Propensity("1"))], observables={"y": "X + Z"}),
         "observable 'y' uses unknown name 'Z'"),
        (lambda: ReactionNetwork({"X": 0}, {}, [Reaction({}, {"X": 1}, Propensity("1"))], observables={"X": "2"}),
         "observable 'X': the name is already"),
    ],
)
def test_bad_variables_and_observables_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()
