"""Central finite differences with common random numbers against the analytic gradient."""

import numpy as np
import pytest
from conftest import immigration_death

from diffssa.reference.finite_differences import finite_difference_gradient


def test_immigration_death_gradient_in_k_matches_analytic():
    k, mu, runs = 10.0, 0.5, 2000  # 2000 coupled pairs of trajectories
    t = np.array([1.0, 2.0, 5.0])
    result = finite_difference_gradient(
        immigration_death(k, mu), t, lambda states: states[:, :, 0], ["k"], key=0, runs=runs
    )
    est = result["k"]
    assert est.runs == runs and est.step == pytest.approx(0.5)
    assert est.gradient.shape == est.stderr.shape == (3,)
    exact = (1 - np.exp(-mu * t)) / mu  # E X(t) is linear in k: no finite-difference bias
    assert np.all(np.abs(est.gradient - exact) < 4 * est.stderr)
    assert np.all(est.stderr < 0.1 * exact)  # the check is not vacuous


def test_scalar_observable_and_several_parameters():
    result = finite_difference_gradient(
        immigration_death(), [2.0], lambda states: states[:, -1, 0], ["k", "mu"], key=1, runs=50
    )
    assert set(result) == {"k", "mu"}
    assert result["mu"].gradient.shape == () and result["mu"].gradient < 0


def test_rejects_bad_input():
    net = immigration_death()
    observe = lambda states: states[:, -1, 0]  # noqa: E731
    with pytest.raises(ValueError, match="unknown parameter 'kk'"):
        finite_difference_gradient(net, [1.0], observe, ["kk"], key=0, runs=10)
    with pytest.raises(ValueError, match="is 0"):
        finite_difference_gradient(net, [1.0], observe, ["k"], key=0, runs=10, params={"k": 0.0})
    with pytest.raises(ValueError, match="relative_step"):
        finite_difference_gradient(net, [1.0], observe, ["k"], key=0, runs=10, relative_step=1.5)
    with pytest.raises(ValueError, match="observable must return"):
        finite_difference_gradient(net, [1.0], lambda states: states[0], ["k"], key=0, runs=10)
