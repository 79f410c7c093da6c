"""Curated BioModels models (tests/data/biomodels) against libroadrunner's Gillespie integrator.

Each model meant to pass is loaded with its settings (``settings.json``: scale, horizon, recorded
points, runs), simulated by diffssa and by roadrunner (``benchmarks/biomodels.py``, fixed seed
20261203, the runs of ``settings.json``: 100 to 1,000 per simulator), and every compared species'
mean at every recorded time must agree at |z| < 5. Models meant to be refused must be refused at load,
naming the element. The Proctor 2008 p53 models are also checked against an exact mean, since
roadrunner's Gillespie integrator delays their time events (docs/biomodels.md).
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from diffssa import SBMLError, load_sbml, simulate

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("biomodels_benchmark", ROOT / "benchmarks" / "biomodels.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SETTINGS = bench.settings()
PASS = sorted(m for m, c in SETTINGS.items() if c["expect"] == "pass")
REFUSED = sorted(m for m, c in SETTINGS.items() if c["expect"] != "pass")


def test_the_corpus_is_24_documented_models_of_which_at_least_20_are_meant_to_pass():
    files = sorted(p.stem for p in bench.CORPUS.glob("*.xml"))
    assert files == sorted(SETTINGS) and len(files) == 24 and len(PASS) >= 20
    sources = (bench.CORPUS / "SOURCES.md").read_text()
    assert all(f"https://github.com/biomodels/{m} " in sources for m in files)


@pytest.mark.parametrize("model", PASS)
def test_means_agree_with_roadrunner(model):
    row = bench.compare(model, SETTINGS[model])
    assert row["loaded"] and row["ran"], row.get("error")
    assert row["exhausted"] == 0
    assert row["max_abs_z"] < bench.LIMIT, row["worst"]


@pytest.mark.parametrize("model", REFUSED)
def test_unsupported_models_are_refused_at_load_naming_the_element(model):
    with pytest.raises(SBMLError, match=SETTINGS[model]["expect"]):
        load_sbml(bench.CORPUS / f"{model}.xml", scale=SETTINGS[model]["scale"])


@pytest.mark.parametrize("model", ["BIOMD0000000188", "BIOMD0000000189"])
def test_p53_irradiation_window_matches_the_exact_mean(model):
    """IR = 25 for 3600 <= t < 3660 (two time events on a parameter, now a variable); damDNA is made at
    kdam * IR and repaired at krepair * damDNA, so its mean solves a linear ODE exactly. 400 runs."""
    net = load_sbml(bench.CORPUS / f"{model}.xml")
    assert net.variables == {"IR": 0.0}
    kdam, krepair = net.parameters["kdam"], net.parameters["krepair"]
    times = np.array([3600.0, 3630.0, 3700.0, 4200.0])
    made = kdam * 25 / krepair * (1 - np.exp(-krepair * (np.minimum(times, 3660) - 3600)))
    exact = made * np.exp(-krepair * np.maximum(times - 3660, 0))
    tr = simulate(net, times, key=7, runs=400, estimator=None)
    damage = np.asarray(tr["damDNA"], dtype=float)
    se = damage.std(0, ddof=1) / math.sqrt(400)
    assert np.all(damage[:, 0] == 0) and np.all(np.asarray(tr["IR"])[:, 1] == 25)
    assert np.all(np.abs(damage[:, 1:].mean(0) - exact[1:]) < 5 * se[1:]), (damage.mean(0), exact)


def test_goldbeter_1995_is_refused_without_a_scale_and_converted_with_avogadro():
    """0.1 uM in 1e-15 L is 1e-16 umol: never loaded as 0 molecules; with Avogadro, 60 molecules."""
    path = bench.CORPUS / "BIOMD0000000016.xml"
    with pytest.raises(SBMLError, match=r"species 'M': initial amount 1e-16 is not a whole number.*scale="):
        load_sbml(path)
    with pytest.warns(UserWarning, match=r"rounded to whole molecules: M 60\.2214 -> 60, P0 150\.554 -> 151"):
        net = load_sbml(path, scale="avogadro")
    assert net.species["M"] == 60 and net.species["Pt"] == 4 * 151  # the affine rule Pt = P0 + P1 + P2 + Pn
