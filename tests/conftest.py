"""Shared fixtures: small networks with known exact solutions."""

import numpy as np
import pytest

from diffssa import MassAction, Reaction, ReactionNetwork, use_cpu_cores

# Two CPU devices, as on the 2-core CI machine: every simulation in the suite goes through the split
# of the batch over devices (results do not depend on the device count; tests/test_devices.py).
use_cpu_cores(2)


def immigration_death(k=10.0, mu=0.5, x0=0):
    """0 -> X @ k, X -> 0 @ mu: E X(t) = (k/mu)(1 - e^{-mu t}) + x0 e^{-mu t}; Poisson when x0 = 0."""
    return ReactionNetwork(
        {"X": x0}, {"k": k, "mu": mu},
        [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))],
    )


def dimerization(k1=0.001, k2=0.01, p0=100):
    return ReactionNetwork(
        {"P": p0, "P2": 0}, {"k1": k1, "k2": k2},
        [Reaction({"P": 2}, {"P2": 1}, MassAction("k1")), Reaction({"P2": 1}, {"P": 2}, MassAction("k2"))],
    )


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
