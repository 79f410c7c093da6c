"""The batch split over devices: same trajectories and gradients with one device as with two."""

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dimerization

from diffssa import simulate, use_cpu_cores
from diffssa.devices import available_cores

# Simulated in this process (two CPU devices, see conftest) and in a fresh one with a single device.
# 7 runs: not a multiple of the device count, so the padding of the last device is exercised.
SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from diffssa import use_cpu_cores
    assert use_cpu_cores(1) == 1  # before conftest (imported by test_devices) asks for two
    sys.path.insert(0, sys.argv[2])
    from test_devices import forward_and_gradient
    np.savez(sys.argv[1], *forward_and_gradient())
    """
)


def forward_and_gradient():
    net = dimerization(p0=30)
    grid = np.linspace(0.0, 5.0, 6)
    forward = simulate(net, grid, key=3, runs=7)

    def loss(params, estimator):
        return jnp.mean(simulate(net, grid, key=4, runs=7, params=params, estimator=estimator).states[:, -1, 0])

    results = [np.asarray(forward.states), np.asarray(forward.events)]
    for estimator in ("pairs", "thinning"):  # the default (pairs) and a surrogate's scan
        value, grad = jax.value_and_grad(loss)({"k1": 0.001, "k2": 0.01}, estimator)
        results += [np.asarray(value), np.asarray(grad["k1"]), np.asarray(grad["k2"])]
    coupled = simulate(net, grid, key=5, runs=7, method="next-reaction")
    return (*results, np.asarray(coupled.states))


def test_suite_runs_on_two_cpu_devices():
    assert len(jax.devices("cpu")) == 2
    assert use_cpu_cores(5) == 2  # backends exist already: the count in effect is kept


@pytest.mark.slow
def test_results_do_not_depend_on_the_device_count(tmp_path):
    out = tmp_path / "one_device.npz"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(Path(__file__).parent)], check=True)
    single = np.load(out)
    for i, here in enumerate(forward_and_gradient()):
        np.testing.assert_allclose(here, single[f"arr_{i}"], rtol=1e-6, atol=0)


def test_available_cores_and_bad_count():
    assert available_cores() >= 1
    with pytest.raises(ValueError, match="positive integer"):
        use_cpu_cores(0)


def test_devices_argument_chooses_the_split():
    net = dimerization(p0=30)
    both = simulate(net, [1.0, 3.0], key=9, runs=11)
    one = simulate(net, [1.0, 3.0], key=9, runs=11, devices=jax.devices("cpu")[:1])
    np.testing.assert_array_equal(np.asarray(both.states), np.asarray(one.states))
    with pytest.raises(ValueError, match="at least one device"):
        simulate(net, [1.0], key=0, devices=[])


def test_batch_slices_of_the_differentiable_path_change_nothing(monkeypatch):
    """11 runs in slices of 4 (padded to 12 on each of the 2 devices' shares) against one slice."""
    import importlib

    drivers = importlib.import_module("diffssa.simulation.drivers")

    def value_and_grad():
        net = dimerization(p0=30)  # a fresh network: its compiled runners are not cached yet

        def loss(params):
            tr = simulate(net, [1.0, 3.0], key=2, runs=11, params=params, estimator="thinning")
            return jnp.sum(tr.states[:, :, 0]), tr.states

        (_, states), grad = jax.value_and_grad(loss, has_aux=True)({"k1": 0.001, "k2": 0.01})
        return np.asarray(states), np.asarray(grad["k1"]), np.asarray(grad["k2"])

    whole = value_and_grad()
    monkeypatch.setattr(drivers, "BATCH_SLICE", 4)
    sliced = value_and_grad()
    for a, b in zip(whole, sliced):
        np.testing.assert_allclose(a, b, rtol=1e-5)
