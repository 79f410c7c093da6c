"""Conformance with the SBML Discrete Stochastic Model Test Suite (the 21 cases in ../shared/dsmts)."""

import math
from pathlib import Path

import numpy as np
import pytest

from diffssa import dsmts
from diffssa.dsmts import CaseResult, format_report, read_case, run_case
from diffssa.sbml import load_sbml
from diffssa.simulate import SimulationBudgetError, simulate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "dsmts"
CASES = sorted(p.name for p in SHARED.iterdir() if p.is_dir()) if SHARED.is_dir() else []
RUNS = 10_000  # the suite's own n; all 21 cases take about 45 s on two CPU cores
SEED = 1

# Case 00003 (birth-death, lambda = 1, mu = 1.1, X0 = 100) is nearly extinct at late times: X(50) has mean 0.67,
# sd 3.75 and kurtosis about 100. The suite's Y assumes Var(s^2) = 2 sigma^4 / n (normal data); the true value
# is (kurtosis - 1) sigma^4 / n, so Y has standard deviation about 7 at t = 50 whatever n is. Exact samples
# from the closed-form distribution of X(50) fail |Y| < 5 at that single time about half the time, and whole
# runs of this simulator passed every Y in 3 of 40 seeds. The case is checked by the suite's Z and by a
# kurtosis-aware Y in test_heavy_tailed_case_00003 instead.
SD_CRITERION_INVALID = {"00003"}


@pytest.mark.skipif(not CASES, reason=f"DSMTS data not found at {SHARED}")
def test_all_21_cases_are_present():
    assert len(CASES) == 21


@pytest.mark.parametrize(
    "case_id",
    [pytest.param(c, marks=pytest.mark.xfail(reason="suite's Y is invalid for heavy tails; see comment", strict=False))
     if c in SD_CRITERION_INVALID else c for c in CASES],
)
def test_case_passes(case_id):
    result = run_case(read_case(SHARED / case_id), runs=RUNS, seed=SEED)
    assert result.passed, format_report([result])


@pytest.mark.skipif("00003" not in CASES, reason="case 00003 not found")
def test_heavy_tailed_case_00003():
    """Z as the suite defines it; Y standardised by the sample kurtosis, Var(s^2) ~ (kurtosis - 1) sigma^4 / n."""
    case = read_case(SHARED / "00003")
    traj = simulate(load_sbml(case.model), case.times, key=SEED, runs=RUNS, max_steps=100_000, on_exhausted="raise")
    x = np.asarray(traj["X"], dtype=np.float64)[:, 1:]
    mu, sigma = case.expected["X-mean"][1:], case.expected["X-sd"][1:]
    z = math.sqrt(RUNS) * (x.mean(axis=0) - mu) / sigma
    kurtosis = ((x - x.mean(axis=0)) ** 4).mean(axis=0) / x.var(axis=0) ** 2
    y = (x.var(axis=0, ddof=1) / sigma**2 - 1) / np.sqrt((kurtosis - 1) / RUNS)
    assert np.all(np.abs(z) < 3) and np.all(np.abs(y) < 5), (np.abs(z).max(), np.abs(y).max())


@pytest.mark.skipif("00001" not in CASES, reason="case 00001 not found")
def test_criterion_detects_a_wrong_simulator():
    case = read_case(SHARED / "00001")
    wrong = load_sbml(case.model).with_parameters(Mu=0.11 * 1.1)  # death rate 10% too high
    result = run_case(case, runs=RUNS, seed=SEED, network=wrong)
    assert not result.passed and result.retried
    assert result.worst_z < -3


@pytest.mark.skipif("00028" not in CASES, reason="case 00028 not found")
def test_read_case():
    case = read_case(SHARED / "00028")
    assert (case.id, case.start, case.duration, case.steps) == ("00028", 0.0, 50.0, 50)
    assert case.variables == ("X",) and case.amount == ("X",) and case.concentration == ()
    assert case.output == ("X-mean", "X-sd")
    assert case.mean_range == (-3.0, 3.0) and case.sd_range == (-5.0, 5.0)
    np.testing.assert_allclose(case.times, np.arange(51.0))
    assert case.expected["X-mean"].shape == (51,) and case.model.name == "00028-sbml-l3v1.xml"


@pytest.mark.skipif("00001" not in CASES, reason="case 00001 not found")
def test_exhausted_budget_fails_loudly(monkeypatch):
    monkeypatch.setattr(dsmts, "_step_budget", lambda case, network: 10)
    with pytest.raises(SimulationBudgetError):
        run_case(read_case(SHARED / "00001"), runs=100, seed=SEED)


def test_format_report():
    results = [CaseResult("00001", True, 1.234, -0.871, False), CaseResult("00002", False, -3.5, 6.0, True)]
    assert format_report(results).splitlines() == [
        "00001 pass worst_z=+1.23 worst_sd=-0.87",
        "00002 fail worst_z=-3.50 worst_sd=+6.00 (retried)",
        "1 passed, 1 failed",
    ]
