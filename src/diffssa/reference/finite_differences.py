"""Central finite-difference gradients of expected observables, with common random numbers.

``d E[f(X)] / d theta ~ (E f(X; theta + h) - E f(X; theta - h)) / (2 h)`` with ``h`` a fraction of
``theta``. Both sides are simulated with the same PRNG key, so run ``b`` at ``theta + h`` and run ``b``
at ``theta - h`` use the same random numbers and stay coupled; their difference is far less noisy
than that of independent runs. By default the simulator is the next-reaction method
(:mod:`diffssa.simulation.next_reaction`), whose random numbers are indexed by reaction channel and the
channel's firing count, so the two sides share every channel's Poisson process (common reaction
paths); ``method="direct"`` indexes them by the event counter instead, and the two sides drift apart
after their first differing event (standard errors 1-5x larger, measured in docs/gradients.md). The
estimate has an O(h^2) bias (from the third derivative); its standard error is that of the per-run
difference quotients.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from ..model import ReactionNetwork
from ..simulation.api import simulate

__all__ = ["FiniteDifference", "finite_difference_gradient"]


class FiniteDifference(NamedTuple):
    """A finite-difference gradient estimate for one parameter.

    gradient, stderr: d E[observable] / d theta and its standard error, in observable units per
        parameter unit; shape () or (K,), the observable's per-run shape.
    step: the absolute step ``h`` (parameter units).
    runs: number of coupled trajectory pairs.
    """

    gradient: np.ndarray
    stderr: np.ndarray
    step: float
    runs: int


def finite_difference_gradient(
    network: ReactionNetwork,
    times,
    observable: Callable,
    wrt: Sequence[str],
    *,
    key,
    runs: int,
    params: Mapping[str, float] | None = None,
    relative_step: float = 0.05,
    max_steps: int = 100_000,
    method: str = "next-reaction",
) -> dict[str, FiniteDifference]:
    """Estimate d E[observable(states)] / d theta for each parameter name in ``wrt``.

    Parameters
    ----------
    times: (T,) observation times passed to :func:`~diffssa.simulate`.
    observable: maps the (B, T, S) state array of the trajectories to per-run values (B,) or (B, K).
    wrt: parameter names (natural, not log, parameters).
    key: PRNG key or integer seed, shared by ``theta + h`` and ``theta - h``.
    runs: number of trajectories B per side (at least 2).
    params: parameter values overriding the network's.
    relative_step: ``h = relative_step * |theta|``, in (0, 1); parameters equal to 0 are rejected.
    max_steps: event budget per trajectory; running out raises ``SimulationBudgetError``.
    method: the simulator's ``method``: ``"next-reaction"`` (default) couples the two sides through
        common reaction paths (every channel's Poisson process shared); ``"direct"`` through the
        direct method's event-indexed random numbers, which drift apart after the first differing event.

    Returns parameter name -> :class:`FiniteDifference`.
    """
    wrt = list(wrt)
    network.check_parameter_names(wrt)
    if not 0 < relative_step < 1:
        raise ValueError(f"relative_step must lie in (0, 1), got {relative_step!r}")
    if int(runs) != runs or runs < 2:
        raise ValueError(f"runs must be an integer >= 2, got {runs!r}")
    base = network.parameter_values(params)
    result = {}
    for name in wrt:
        value = float(base[name])
        if value == 0:
            raise ValueError(f"parameter {name!r} is 0, so a relative step is undefined; pass a nonzero value")
        step = relative_step * abs(value)
        sides = []
        for shifted in (value + step, value - step):
            tr = simulate(
                network, times, key=key, runs=runs, params={**base, name: shifted},
                max_steps=max_steps, estimator=None, on_exhausted="raise", method=method,
            )
            sides.append(np.asarray(observable(tr.states), dtype=np.float64))
        if sides[0].ndim not in (1, 2) or sides[0].shape[0] != runs:
            raise ValueError(f"observable must return shape ({runs},) or ({runs}, K), got {sides[0].shape}")
        quotient = (sides[0] - sides[1]) / (2 * step)
        result[name] = FiniteDifference(
            quotient.mean(axis=0), quotient.std(axis=0, ddof=1) / math.sqrt(runs), step, int(runs)
        )
    return result
