"""Conformance with the SBML Discrete Stochastic Model Test Suite (DSMTS, Evans, Gillespie & Wilkinson 2008).

A case folder ``NNNNN/`` holds ``NNNNN-sbml-l3v1.xml``, ``NNNNN-settings.txt`` and ``NNNNN-results.csv``
(exact mean ``mu_t`` and standard deviation ``sigma_t`` of each species at each grid time). For ``n``
simulated trajectories, the suite's criterion at every grid time with ``sigma_t > 0`` is

* ``Z_t = sqrt(n) * (mean_t - mu_t) / sigma_t`` within ``meanRange`` (usually (-3, 3));
* ``Y_t = sqrt(n / 2) * (var_t / sigma_t**2 - 1)`` within ``sdRange`` (usually (-5, 5)), ``var_t`` the
  sample variance (``n - 1`` in the denominator).

With dozens of time points a correct simulator fails a point now and then by chance, so, as the suite
recommends, a failing case is run once more with a fresh seed (``seed + 1``) before it is judged failed;
the result keeps both tries (:attr:`CaseResult.attempts`) and the report shows the first failure too.

A malformed case folder (a missing file, a missing settings key, a number that does not parse) raises
``ValueError`` naming the file and the line or key.
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

from ..io.sbml import load_sbml
from ..model import ReactionNetwork
from ..simulation.api import simulate
from ..simulation.problems import SimulationBudgetError

__all__ = [
    "Attempt",
    "Case",
    "CaseResult",
    "format_report",
    "read_case",
    "retry_seed",
    "run_case",
    "run_conformance",
]


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
class Attempt:
    """One simulation of a case: its seed, whether it met the criterion, and its worst statistics."""

    seed: int
    passed: bool
    worst_z: float
    worst_y: float


@dataclass(frozen=True)
class CaseResult:
    """Verdict on one case; ``worst_z`` / ``worst_y`` are the signed statistics of largest magnitude of
    the try the verdict rests on (the last one); ``attempts`` holds every try, the first failure included."""

    case_id: str
    passed: bool
    worst_z: float
    worst_y: float
    retried: bool
    attempts: tuple[Attempt, ...] = ()


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _number(settings: dict, key: str, where: str, convert=float):
    if key not in settings:
        raise ValueError(f"{where}: missing key {key!r}")
    line, text = settings[key]
    try:
        return convert(text)
    except ValueError:
        raise ValueError(f"{where}:{line}: {key}: {text!r} is not a{'n integer' if convert is int else ' number'}") from None


def _range(settings: dict, key: str, where: str, default: str) -> tuple[float, float]:
    line, text = settings.get(key, (0, default))
    parts = text.strip().strip("()[]").split(",")
    try:
        lo, hi = (float(v) for v in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or not lo < hi:
        raise ValueError(f"{where}:{line}: {key}: expected a range like (-3, 3), got {text!r}")
    return lo, hi


def _read_settings(path: Path) -> dict[str, tuple[int, str]]:
    """``key -> (line number, value)`` of a settings file (``key: value`` lines)."""
    settings = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        key, sep, value = line.partition(":")
        if sep:
            settings[key.strip()] = (number, value.strip())
    return settings


def _read_table(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file (expected a header line time,X-mean,X-sd,...)")
    header = [h.strip() for h in rows[0]]
    values = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{number}: {len(row)} values, the header has {len(header)} columns")
        try:
            values.append([float(v) for v in row])
        except ValueError:
            raise ValueError(f"{path}:{number}: a value that is not a number: {','.join(row)!r}") from None
    if "time" not in header:
        raise ValueError(f"{path}:1: no 'time' column in the header")
    table = np.array(values, dtype=np.float64).reshape(len(values), len(header))
    return {h: table[:, i] for i, h in enumerate(header)}


def read_case(case_dir) -> Case:
    """Read a case folder (settings, expected results, model path); ``ValueError`` naming the file and
    line or key for anything missing or malformed."""
    case_dir = Path(case_dir)
    case_id = case_dir.name
    if not case_dir.is_dir():
        raise ValueError(f"case folder {str(case_dir)!r} {'is not a folder' if case_dir.exists() else 'does not exist'}")
    paths = {kind: case_dir / f"{case_id}-{kind}" for kind in ("settings.txt", "results.csv", "sbml-l3v1.xml")}
    for path in paths.values():
        if not path.is_file():
            raise ValueError(f"case folder {str(case_dir)!r}: missing {path.name} (a DSMTS case folder NNNNN/ holds "
                             "NNNNN-settings.txt, NNNNN-results.csv and NNNNN-sbml-l3v1.xml)")
    where = str(paths["settings.txt"])
    settings = _read_settings(paths["settings.txt"])
    expected = _read_table(paths["results.csv"])
    variables = _names(settings.get("variables", (0, ""))[1])
    if not variables:
        raise ValueError(f"{where}: missing key 'variables' (or it lists no species)")
    case = Case(
        id=case_id,
        model=paths["sbml-l3v1.xml"],
        start=_number(settings, "start", where),
        duration=_number(settings, "duration", where),
        steps=_number(settings, "steps", where, int),
        variables=variables,
        amount=_names(settings.get("amount", (0, ""))[1]),
        concentration=_names(settings.get("concentration", (0, ""))[1]),
        output=_names(settings.get("output", (0, ""))[1]),
        mean_range=_range(settings, "meanRange", where, "(-3, 3)"),
        sd_range=_range(settings, "sdRange", where, "(-5, 5)"),
        expected=expected,
    )
    if case.steps < 1 or not (math.isfinite(case.duration) and case.duration > 0 and math.isfinite(case.start)):
        raise ValueError(f"{where}: steps must be a positive integer and duration positive and finite, "
                         f"got steps={case.steps}, duration={case.duration:g}")
    for v in case.variables:
        for column in (f"{v}-mean", f"{v}-sd"):
            if column not in expected:
                raise ValueError(f"{paths['results.csv']}: no column {column!r} for variable {v!r} of the settings")
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


def retry_seed(seed: int) -> int:
    """The seed of a failing case's second try: ``seed + 1`` (wrapping to 0 past the 64-bit range)."""
    return seed + 1 if seed + 1 < 2**64 else 0


def run_case(
    case: Case, runs: int, seed: int, retry: bool = True, network: ReactionNetwork | None = None
) -> CaseResult:
    """Simulate ``runs`` trajectories of the case's model (or of ``network``) and apply the criterion.

    A failing case is re-run once with seed :func:`retry_seed` (``seed + 1``) when ``retry`` is true;
    the verdict is that of the last try, and ``attempts`` keeps both.
    Raises ``SimulationBudgetError`` (naming the case) if trajectories run out of the step budget.
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
    attempts = []
    for s in ([seed, retry_seed(seed)] if retry else [seed]):
        try:
            z, y = _statistics(case, network, runs, s, max_steps)
        except SimulationBudgetError as err:
            raise SimulationBudgetError(f"case {case.id} (seed {s}): {err}") from None
        passed = _within(z, case.mean_range) and _within(y, case.sd_range)
        attempts.append(Attempt(s, passed, _worst(z), _worst(y)))
        if passed:
            break
    last = attempts[-1]
    return CaseResult(case.id, last.passed, last.worst_z, last.worst_y, len(attempts) > 1, tuple(attempts))


def run_conformance(case_dirs: Iterable, runs: int, seed: int, progress: bool = True) -> list[CaseResult]:
    """Run every case; with ``progress`` each verdict is printed to stderr as it comes.

    Every case folder is read (and checked) before the first simulation."""
    cases = [read_case(case_dir) for case_dir in case_dirs]
    results = []
    for case in cases:
        results.append(run_case(case, runs, seed))
        if progress:
            print(_line(results[-1]), file=sys.stderr, flush=True)
    return results


def _stats(passed: bool, worst_z: float, worst_y: float) -> str:
    return f"{'pass' if passed else 'fail'} worst_z={worst_z:+.2f} worst_sd={worst_y:+.2f}"


def _line(r: CaseResult) -> str:
    """``ID pass|fail worst_z=.. worst_sd=..``; a retried case also shows both tries, the first failure
    included: ``(retried: seed 1 fail worst_z=.. worst_sd=..; seed 2 pass worst_z=.. worst_sd=..)``."""
    line = f"{r.case_id} {_stats(r.passed, r.worst_z, r.worst_y)}"
    if not r.retried:
        return line
    if not r.attempts:
        return line + " (retried)"
    tries = "; ".join(f"seed {a.seed} {_stats(a.passed, a.worst_z, a.worst_y)}" for a in r.attempts)
    return f"{line} (retried: {tries})"


def format_report(results: list[CaseResult]) -> str:
    """One line per case and a final ``N passed, M failed``."""
    passed = sum(r.passed for r in results)
    lines = [_line(r) for r in results] + [f"{passed} passed, {len(results) - passed} failed"]
    return "\n".join(lines)
