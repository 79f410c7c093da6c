"""Conformance with the SBML Discrete Stochastic Model Test Suite (the 21 cases in ../shared/dsmts)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from diffssa import SimulationBudgetError, simulate
from diffssa.io.sbml import load_sbml
from diffssa.reference import dsmts
from diffssa.reference.dsmts import CaseResult, format_report, read_case, run_case

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


def _copy_case(tmp_path, case_id="00001"):
    import shutil

    target = tmp_path / case_id
    shutil.copytree(SHARED / case_id, target)
    return target


@pytest.mark.skipif("00001" not in CASES, reason="case 00001 not found")
@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "00001-results.csv").unlink(), "missing 00001-results.csv"),
    (lambda d: (d / "00001-settings.txt").unlink(), "missing 00001-settings.txt"),
    (lambda d: (d / "00001-settings.txt").write_text("start: 0\nsteps: 50\nvariables: X\n"),
     "00001-settings.txt: missing key 'duration'"),
    (lambda d: (d / "00001-settings.txt").write_text("start: 0\nduration: fifty\nsteps: 50\nvariables: X\n"),
     "00001-settings.txt:2: duration: 'fifty' is not a number"),
    (lambda d: (d / "00001-settings.txt").write_text("start: 0\nduration: 50\nsteps: 5.5\nvariables: X\n"),
     "00001-settings.txt:3: steps: '5.5' is not an integer"),
    (lambda d: (d / "00001-settings.txt").write_text("start: 0\nduration: 50\nsteps: 50\nvariables: X\n"
                                                     "meanRange: (3, oops)\n"), "00001-settings.txt:5: meanRange"),
    (lambda d: (d / "00001-results.csv").write_text("time,X-mean,X-sd\n0,100,0\n1,x,4\n"), "00001-results.csv:3"),
    (lambda d: (d / "00001-results.csv").write_text("time,X-mean\n0,100\n"), "no column 'X-sd'"),
])
def test_malformed_case_is_named(tmp_path, capsys, edit, message):
    from diffssa.cli import main

    folder = _copy_case(tmp_path)
    edit(folder)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        read_case(folder)
    assert main(["dsmts", str(folder), "--runs", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffssa: error:") and message in err and "Traceback" not in err


def test_folder_that_is_not_a_case(tmp_path, capsys):
    from diffssa.cli import main

    assert main(["dsmts", str(tmp_path), "--runs", "10"]) == 2
    assert f"missing {tmp_path.name}-settings.txt" in capsys.readouterr().err
    assert main(["dsmts", str(tmp_path / "nope"), "--runs", "10"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif("00001" not in CASES, reason="case 00001 not found")
def test_retry_keeps_and_reports_the_first_failure(monkeypatch, capsys):
    from diffssa.cli import main

    statistics = {7: (np.array([0.5, -3.4]), np.array([1.0])), 8: (np.array([1.5]), np.array([-0.4]))}
    monkeypatch.setattr(dsmts, "_statistics", lambda case, network, runs, seed, max_steps: statistics[seed])
    result = run_case(read_case(SHARED / "00001"), runs=100, seed=7)
    assert result.passed and result.retried and (result.worst_z, result.worst_y) == (1.5, -0.4)
    assert result.attempts == (dsmts.Attempt(7, False, -3.4, 1.0), dsmts.Attempt(8, True, 1.5, -0.4))
    line = format_report([result]).splitlines()[0]
    assert line == ("00001 pass worst_z=+1.50 worst_sd=-0.40 (retried: seed 7 fail worst_z=-3.40 worst_sd=+1.00; "
                    "seed 8 pass worst_z=+1.50 worst_sd=-0.40)")
    assert main(["dsmts", str(SHARED / "00001"), "--runs", "100", "--seed", "7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] == 1 and out["seed"] == 7 and out["runs"] == 100 and "diffssa_version" in out
    assert out["cases"][0]["tries"] == [{"seed": 7, "passed": False, "worst_z": -3.4, "worst_sd": 1.0},
                                        {"seed": 8, "passed": True, "worst_z": 1.5, "worst_sd": -0.4}]


def test_retry_seed_stays_in_64_bits():
    assert dsmts.retry_seed(1) == 2 and dsmts.retry_seed(2**64 - 1) == 0


@pytest.mark.skipif("00001" not in CASES, reason="case 00001 not found")
def test_exhausted_budget_is_exit_3(monkeypatch, capsys):
    from diffssa.cli import main

    monkeypatch.setattr(dsmts, "_step_budget", lambda case, network: 10)
    assert main(["dsmts", str(SHARED / "00001"), "--runs", "20"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("diffssa: error: case 00001 (seed 0): 20 of 20 trajectories ran out")
