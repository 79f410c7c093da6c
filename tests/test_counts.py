"""Counts are exact integers at any size a user can type, or refused; event assignments give counts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffssa import Event, MassAction, Reaction, ReactionNetwork, simulate
from diffssa.io.language import parse_network


def decay(x0, mu):
    return ReactionNetwork({"X": x0}, {"mu": mu}, [Reaction({"X": 1}, {}, MassAction("mu"))])


def test_a_billion_molecules_are_counted_exactly():
    """X = 1e9, X -> 0 at mu = 1e-6 to t = 1: deaths are Binomial(1e9, p = 1 - e^-mu), so the mean is
    1e9 (1 - p) and the SD sqrt(1e9 p (1 - p)) = 31.6. In float32 every count rounds to a multiple of 64
    (the probe saw SD 0). 2,000 runs: the mean within 4 SE, the SD within 4 of its own SE (1/sqrt(2n))."""
    runs, n0, mu = 2000, 10**9, 1e-6
    tr = simulate(decay(n0, mu), [0.0, 1.0], key=7, runs=runs, estimator=None, max_steps=5000)
    assert tr.states.dtype == np.float64
    states = np.asarray(tr.states)
    assert np.all(states == np.round(states)) and np.all(states[:, 0, 0] == n0)
    p = -math.expm1(-mu)
    mean, sd = n0 * (1 - p), math.sqrt(n0 * p * (1 - p))
    z_mean = (float(np.asarray(tr.mean())[1, 0]) - mean) / (sd / math.sqrt(runs))
    z_sd = (float(np.asarray(tr.sd())[1, 0]) / sd - 1) * math.sqrt(2 * runs)
    assert abs(z_mean) < 4 and abs(z_sd) < 4, (z_mean, z_sd)
    assert len(np.unique(states[:, 1, 0])) > 50  # counts differ by single molecules


def test_summary_of_large_counts_is_exact():
    """The CSV summary (NumPy, float64) of counts near 2**40 keeps single molecules."""
    tr = simulate(decay(2**40, 1e-9), [0.0, 1.0], key=1, runs=200, estimator=None, max_steps=5000)
    table = tr.summary_table()
    assert table["X-mean"][0] == 2**40 and table["X-sd"][0] == 0
    assert 2**40 - 2000 < table["X-mean"][1] < 2**40 - 600  # about 1,100 deaths on average


def test_counts_above_2_to_53_are_refused_by_name():
    for value in (1e23, 2**53 + 1):
        with pytest.raises(ValueError, match=r"species 'X'.*2\*\*53"):
            decay(value, 1.0)
    with pytest.raises(ValueError, match=r"species 'X'.*2\*\*53"):
        parse_network("species X = 9007199254740993\nX -> 0 @= 1")
    with pytest.raises(ValueError, match="2\\*\\*53"):
        simulate(decay(1, 1.0), [0.0, 1.0], key=0, initial=np.array([1e17]), estimator=None)


def test_float32_counts_that_grow_past_2_to_24_are_flagged_by_species():
    """Started in float32 (below 2**24), a count reaching 2**24 raises, naming the species and the fix;
    precision='float64' simulates it exactly."""
    net = ReactionNetwork({"X": 2**24 - 100}, {"k": 1000.0}, [Reaction({}, {"X": 1}, MassAction("k"))])
    with pytest.raises(ValueError, match=r"species 'X' reached .* precision='float64'"):
        simulate(net, [0.0, 1.0], key=0, runs=4, estimator=None, max_steps=10_000)
    tr = simulate(net, [0.0, 1.0], key=0, runs=4, estimator=None, max_steps=10_000, precision="float64")
    assert np.all(np.asarray(tr.states)[:, 1, 0] > 2**24)


def test_float64_counts_refuse_derivatives():
    net = decay(2**30, 1e-9)

    def loss(mu):
        return simulate(net, [0.0, 1.0], key=0, runs=4, params={"mu": mu}).mean()[1, 0]

    with pytest.raises(ValueError, match="forward only.*'mu'"):
        jax.grad(loss)(jnp.float32(1e-9))
    with pytest.raises(ValueError, match="precision"):
        simulate(net, [0.0, 1.0], key=0, precision="float16")


def test_event_assignments_must_give_counts():
    """A constant assignment that is not a count is refused when the network is built; a computed one
    (negative, fractional) when the simulation meets it, naming event and species, never applied."""
    with pytest.raises(ValueError, match=r"event drop: the value assigned to species 'X'"):
        ReactionNetwork({"X": 5}, {"mu": 0.1}, [Reaction({"X": 1}, {}, MassAction("mu"))],
                        events=[Event("geq(time, 1)", {"X": -2}, "drop")])
    for value in ("X - 10", "X / 2 + 0.25"):
        net = ReactionNetwork({"X": 5}, {"mu": 0.01}, [Reaction({"X": 1}, {}, MassAction("mu"))],
                              events=[Event("geq(time, 1)", {"X": value}, "drop")])
        with pytest.raises(ValueError, match=r"event drop: assignment to species 'X'.*whole number"):
            simulate(net, [0.0, 2.0], key=0, runs=10, estimator=None)


def test_event_assignments_within_float_rounding_of_a_count_are_kept():
    """0.1 * 30 is 3.0000001 in float32: it is the count 3."""
    net = ReactionNetwork({"X": 30}, {"mu": 0.0}, [Reaction({"X": 1}, {}, MassAction("mu"))],
                          events=[Event("geq(time, 1)", {"X": "0.1 * X"}, "tenth")])
    tr = simulate(net, [0.0, 2.0], key=0, runs=3, estimator=None)
    assert np.all(np.asarray(tr.states)[:, 1, 0] == 3.0)


def test_sd_of_large_float32_counts_has_no_cancellation():
    """E[X^2] - E[X]^2 in float32 read an SD of 2.8 for a constant 10,000 (found by the tau-leap work):
    sd() now takes moments about the rounded mean. 1,000 runs of X -> 0 from 1e6 (float32 counts):
    the SD equals NumPy's float64 SD of the same counts to float32 precision, and is 0 at t = 0."""
    tr = simulate(decay(10**6, 0.01), [0.0, 1.0], key=0, runs=1000, estimator=None, max_steps=100_000)
    assert tr.states.dtype == np.float32
    reference = np.asarray(tr.states, dtype=np.float64).std(axis=0, ddof=1)[:, 0]
    sd = np.asarray(tr.sd())[:, 0]
    assert sd[0] == 0.0 and reference[1] > 90
    np.testing.assert_allclose(sd[1], reference[1], rtol=1e-5)
