"""Conformance with the SBML Discrete Stochastic Model Test Suite (DSMTS, Evans, Gillespie & Wilkinson 2008).

A case folder ``NNNNN/`` holds ``NNNNN-sbml-l3v1.xml``, ``NNNNN-settings.txt`` and ``NNNNN-results.csv``
(exact mean ``mu_t`` and standard deviation ``sigma_t`` of each species at each grid time). For ``n``
simulated trajectories, the suite's criterion at every grid time with ``sigma_t > 0`` is

* ``Z_t = sqrt(n) * (mean_t - mu_t) / sigma_t`` within ``meanRange`` (usually (-3, 3));
* ``Y_t = sqrt(n / 2) * (var_t / sigma_t**2 - 1)`` within ``sdRange`` (usually (-5, 5)), ``var_t`` the
  sample variance (``n - 1`` in the denominator).

With dozens of time points a correct simulator fails a point now and then by chance, so, as the suite
recommends, a failing case is run once more with a fresh seed before it is judged failed.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .model import ReactionNetwork
from .sbml import load_sbml
from .simulate import simulate

__all__ = ["Case", "CaseResult", "read_case", "run_case", "run_conformance", "format_report"]


@dataclass(frozen=True)
class Case:
    """One DSMTS case: model file, output grid, reported species, pass ranges and expected table."""

    id: str
    model: Path
    start: float
    duration: float
    steps: int
    variables: tuple[str, ...]
    amount: tuple[str, ...]
    concentration: tuple[str, ...]
    output: tuple[str, ...]
    mean_range: tuple[float, float]
    sd_range: tuple[float, float]
    expected: dict[str, np.ndarray]  # column name (``time``, ``X-mean``, ``X-sd``) -> values

    @property
    def times(self) -> np.ndarray:
        """The output grid: ``start .. start + duration`` in ``steps`` equal intervals."""
        return self.start + self.duration * np.arange(self.steps + 1) / self.steps


@dataclass(frozen=True)
class CaseResult:
    """Verdict on one case; ``worst_z`` / ``worst_y`` are the signed statistics of largest magnitude."""

    case_id: str
    passed: bool
    worst_z: float
    worst_y: float
    retried: bool


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _range(text: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in text.strip().strip("()[]").split(","))
    return lo, hi


def read_case(case_dir) -> Case:
    """Read a case folder (settings, expected results, model path)."""
    case_dir = Path(case_dir)
    case_id = case_dir.name
    settings = {}
    for line in (case_dir / f"{case_id}-settings.txt").read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            settings[key.strip()] = value.strip()
    with open(case_dir / f"{case_id}-results.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    table = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=np.float64)
    case = Case(
        id=case_id,
        model=case_dir / f"{case_id}-sbml-l3v1.xml",
        start=float(settings["start"]),
        duration=float(settings["duration"]),
        steps=int(settings["steps"]),
        variables=_names(settings["variables"]),
        amount=_names(settings.get("amount", "")),
        concentration=_names(settings.get("concentration", "")),
        output=_names(settings.get("output", "")),
        mean_range=_range(settings.get("meanRange", "(-3, 3)")),
        sd_range=_range(settings.get("sdRange", "(-5, 5)")),
        expected={h: table[:, i] for i, h in enumerate(header)},
    )
    if case.expected["time"].shape != case.times.shape or not np.allclose(case.expected["time"], case.times):
        raise ValueError(f"case {case_id}: the times of the results table do not match the settings' grid")
    return case


def _step_budget(case: Case, network: ReactionNetwork) -> int:
    """A generous event budget: ten times the events expected at the expected mean state, plus 10,000.

    The rate is the total propensity at the tabulated mean of the reported species (other species at
    their initial counts), averaged over the grid; the budget costs nothing on the forward path.
    """
    compiled = network.compile()
    x = np.tile(network.initial_state(), (case.steps + 1, 1))
    for v in case.variables:
        if f"{v}-mean" in case.expected and v in network.species:
            x[:, compiled.species.index(v)] = case.expected[f"{v}-mean"]
    theta = jnp.asarray(list(network.parameters.values()), dtype=jnp.float32)
    rates = jax.vmap(compiled.propensities, in_axes=(0, None))(jnp.asarray(x), theta)
    expected = float(np.mean(np.sum(np.asarray(rates), axis=1))) * float(case.times[-1])
    return int(10 * expected) + 10_000


def _statistics(case: Case, network: ReactionNetwork, runs: int, seed: int, max_steps: int):
    """(Z values, Y values) of one simulation of ``runs`` trajectories; raises if any ran out of budget."""
    traj = simulate(network, case.times, key=seed, runs=runs, max_steps=max_steps, on_exhausted="raise")
    states = np.asarray(traj.states, dtype=np.float64)
    z, y = [], []
    for v in case.variables:
        x = states[:, :, traj.index(v)]
        mu, sigma = case.expected[f"{v}-mean"], case.expected[f"{v}-sd"]
        ok = sigma > 0
        if f"{v}-mean" in case.output:
            z.append(math.sqrt(runs) * (x.mean(axis=0)[ok] - mu[ok]) / sigma[ok])
        if f"{v}-sd" in case.output:
            y.append(math.sqrt(runs / 2) * (x.var(axis=0, ddof=1)[ok] / sigma[ok] ** 2 - 1))
    return np.concatenate(z or [np.zeros(0)]), np.concatenate(y or [np.zeros(0)])


def _within(values: np.ndarray, bounds: tuple[float, float]) -> bool:
    return bool(np.all((values > bounds[0]) & (values < bounds[1])))


def _worst(values: np.ndarray) -> float:
    return float(values[np.argmax(np.abs(values))]) if values.size else 0.0


def run_case(
    case: Case, runs: int, seed: int, retry: bool = True, network: ReactionNetwork | None = None
) -> CaseResult:
    """Simulate ``runs`` trajectories of the case's model (or of ``network``) and apply the criterion.

    A failing case is re-run once with seed ``seed + 1`` when ``retry`` is true; the result reports
    the statistics of the last run and whether a retry happened.
    """
    if runs < 2:
        raise ValueError(f"runs must be at least 2, got {runs}")
    if case.concentration:
        raise ValueError(f"case {case.id}: concentration outputs are not supported (amounts only)")
    network = network if network is not None else load_sbml(case.model)
    missing = [v for v in case.variables if v not in network.species]
    if missing:
        raise ValueError(f"case {case.id}: reported variable {missing[0]!r} is not a species of the model")
    max_steps = _step_budget(case, network)
    attempts = [seed, seed + 1] if retry else [seed]
    for attempt, s in enumerate(attempts):
        z, y = _statistics(case, network, runs, s, max_steps)
        passed = _within(z, case.mean_range) and _within(y, case.sd_range)
        if passed:
            break
    return CaseResult(case.id, passed, _worst(z), _worst(y), attempt > 0)


def run_conformance(case_dirs: Iterable, runs: int, seed: int, progress: bool = True) -> list[CaseResult]:
    """Run every case; with ``progress`` each verdict is printed to stderr as it comes."""
    results = []
    for case_dir in case_dirs:
        results.append(run_case(read_case(case_dir), runs, seed))
        if progress:
            print(_line(results[-1]), file=sys.stderr, flush=True)
    return results


def _line(r: CaseResult) -> str:
    verdict = "pass" if r.passed else "fail"
    line = f"{r.case_id} {verdict} worst_z={r.worst_z:+.2f} worst_sd={r.worst_y:+.2f}"
    return line + (" (retried)" if r.retried else "")


def format_report(results: list[CaseResult]) -> str:
    """One line per case and a final ``N passed, M failed``."""
    passed = sum(r.passed for r in results)
    lines = [_line(r) for r in results] + [f"{passed} passed, {len(results) - passed} failed"]
    return "\n".join(lines)
