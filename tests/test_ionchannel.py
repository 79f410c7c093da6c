"""Ion-channel records, resolution, exact dwell-time densities, gating schemes and the fit's statistic.

Fast checks only; the fits themselves run in ``diffssa reproduce ionchannel``.
"""

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffssa.applications.ionchannel import (
    Record,
    idealise,
    impose_resolution,
    log_binned_density,
    log_bins,
    r_squared,
    read_abf,
    read_scn,
    shared_dir,
)
from diffssa.applications.ionchannel.gridstats import (
    SoftBins,
    grid_periods,
    sample_record,
    soft_histogram_np,
)
from diffssa.applications.ionchannel.loss import SimulationLoss
from diffssa.applications.ionchannel.models import (
    GatingScheme,
    flip_scheme,
    linear_scheme,
    load_scheme,
    pair_scheme,
)
from diffssa.applications.ionchannel.qmatrix import (
    MissedEventDensity,
    ideal_density,
    pinf,
    q_from_network,
)
from diffssa.applications.ionchannel.records import Trace, dwell_times
from diffssa.applications.ionchannel.reports import (
    ReferenceData,
    exact_scheme_r2,
    multichannel_q,
    predicted_level_density,
    predicted_occupancy,
    reference_data,
    simulated_r2,
)
from diffssa.applications.ionchannel.simulated import simulate_dwells
from diffssa.applications.ionchannel.targets import Scale, Target

DATA = shared_dir() / "ionchannel"
needs_data = pytest.mark.skipif(not (DATA / "glyr-A-10.scn").is_file(), reason="shared ion-channel data not found")


def _record(durations, levels, unusable=None):
    n = len(durations)
    return Record(np.asarray(durations, float), np.asarray(levels), np.zeros(n, bool) if unusable is None
                  else np.asarray(unusable, bool), np.zeros(n, np.int64))


def _ctmc(Q, is_open, n, seed=0):
    """Exact event-level sample path of a Markov chain (numpy): durations and open/shut per sojourn."""
    rng = np.random.default_rng(seed)
    k = len(Q)
    jump = np.where(np.eye(k, dtype=bool), 0, Q) / (-np.diag(Q))[:, None]
    cum = np.cumsum(jump, axis=1)
    s = rng.choice(k, p=np.clip(pinf(Q), 0, None) / np.clip(pinf(Q), 0, None).sum())
    u, e = rng.random(n), rng.exponential(size=n)
    d, st = np.empty(n), np.empty(n, int)
    for i in range(n):
        st[i], d[i] = s, e[i] / -Q[s, s]
        s = min(int(np.searchsorted(cum[s], u[i])), k - 1)
    return d, is_open[st].astype(int)


# three-state C2 <-> C1 <-> O with brief shuttings (rates per s)
THREE = linear_scheme(["C2", "C1", "O"], ["O"], {"k01": 500.0, "k10": 1000.0, "k12": 30000.0, "k21": 2000.0})


# ------------------------------------------------------------------------------------------ reading
@needs_data
def test_read_scn_matches_the_documented_counts():
    rec = read_scn(DATA / "glyr-A-10.scn")
    assert len(rec) == 15786 and rec.info["version"] == 103
    assert set(np.unique(rec.levels)) == {0, 1}
    assert "10 micromolar" in rec.info["title"]
    assert rec.unusable.sum() == 42  # flag bit 8
    assert 400_000 < rec.total_time < 500_000  # ms


@needs_data
def test_bad_scn_files_raise_naming_the_file(tmp_path):
    good = (DATA / "glyr-A-10.scn").read_bytes()
    cases = {
        "truncated.scn": good[:5000],
        "tiny.scn": good[:8],
        "version.scn": struct.pack("<3i", 99, 768, 10) + good[12:],
        "count.scn": struct.pack("<3i", 103, 768, -5) + good[12:],
        "offset.scn": struct.pack("<3i", 103, 10**9, 10) + good[12:],
    }
    messages = {"truncated.scn": "truncated", "tiny.scn": "truncated", "version.scn": "version 99",
                "count.scn": "number of intervals", "offset.scn": "offset"}
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=messages[name]) as err:
            read_scn(path)
        assert name in str(err.value)
    with pytest.raises(ValueError, match="no such file"):
        read_scn(tmp_path / "missing.scn")


def test_bad_abf_raises_naming_the_file(tmp_path):
    path = tmp_path / "noise.abf"
    path.write_bytes(b"ABF " + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="noise.abf"):
        read_abf(path)
    with pytest.raises(ValueError, match="no such file"):
        read_abf(tmp_path / "missing.abf")


def test_read_abf_without_pyabf_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "trace.abf"
    path.write_bytes(b"ABF ")
    monkeypatch.setitem(sys.modules, "pyabf", None)  # import pyabf now fails
    with pytest.raises(ImportError, match=r"pip install 'diffssa\[ionchannel\]'"):
        read_abf(path)


def test_core_package_imports_neither_scipy_nor_pyabf():
    code = "import sys, diffssa; print(sorted({'scipy', 'pyabf'} & {m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@needs_data
def test_read_abf_and_idealise_the_two_channel_trace():
    trace = read_abf(DATA / "sctrace-test2.abf")
    assert abs(trace.dt - 0.015) < 1e-4 and abs(trace.duration - 22200) < 10
    rec = idealise(trace, open_levels=2)
    assert -1.4 < rec.info["closed"] < -1.0 and 2.7 < rec.info["amplitude"] < 3.2
    assert set(np.unique(rec.levels)) == {0, 1, 2}
    np.testing.assert_allclose(rec.total_time, trace.duration, rtol=1e-9)


def test_idealise_recovers_a_synthetic_trace():
    rng = np.random.default_rng(0)
    levels = np.repeat([0, 1, 0, 2, 1, 0], [400, 300, 200, 50, 100, 500])
    current = -1.0 + 3.0 * levels + 0.3 * rng.normal(size=levels.size)
    rec = idealise(Trace(current, 0.01), open_levels=2, closed=-1.0, amplitude=3.0)
    np.testing.assert_array_equal(rec.levels, [0, 1, 0, 2, 1, 0])
    np.testing.assert_allclose(rec.durations, [4.0, 3.0, 2.0, 0.5, 1.0, 5.0])
    assert rec.unusable[0] and rec.unusable[-1] and not rec.unusable[1:-1].any()


# --------------------------------------------------------------------------------------- resolution
def test_resolution_joins_brief_intervals_to_the_preceding_one():
    #          open  shut  open  shut  open  shut  open  shut
    d = [1.0, 0.01, 0.5, 2.0, 0.02, 3.0, 0.6, 0.01]
    lev = [1, 0, 1, 0, 1, 0, 1, 0]
    res = impose_resolution(_record(d, lev), 0.05)
    np.testing.assert_allclose(res.durations, [1.51, 5.02, 0.61])
    np.testing.assert_array_equal(res.levels, [1, 0, 1])
    assert res.unusable.tolist() == [True, False, True]  # first and last are censored


def test_resolution_drops_leading_brief_intervals_and_propagates_unusable():
    d = [0.01, 0.02, 1.0, 0.3, 0.01, 0.4, 1.0, 2.0]
    lev = [1, 0, 1, 0, 1, 0, 1, 0]
    bad = [0, 0, 0, 0, 1, 0, 0, 0]
    res = impose_resolution(_record(d, lev, bad), 0.05)
    np.testing.assert_allclose(res.durations, [1.0, 0.71, 1.0, 2.0])
    assert res.unusable.tolist() == [True, True, False, True]


def test_multilevel_resolution_keeps_levels():
    d = [1.0, 0.5, 0.01, 0.6, 2.0]
    lev = [0, 1, 2, 1, 0]
    res = impose_resolution(_record(d, lev), 0.05, binary=False)
    np.testing.assert_allclose(res.durations, [1.0, 1.11, 2.0])
    np.testing.assert_array_equal(res.levels, [0, 1, 0])


def test_log_binned_density_and_r_squared():
    edges = log_bins(0.03, 10.0, 10)
    assert np.isclose(edges[0], 0.03) and edges[-1] >= 10.0 and np.allclose(np.diff(np.log10(edges)), 0.1)
    x = np.random.default_rng(1).exponential(1.0, 20000)
    dens = log_binned_density(x[x >= 0.03], edges)
    assert np.isclose(np.sum(dens * np.diff(np.log10(edges))), 1.0)
    assert r_squared(dens, dens) == 1.0 and r_squared(dens, np.full_like(dens, dens.mean())) == 0.0


# ------------------------------------------------------------------------------- exact densities
def test_missed_event_density_matches_event_level_simulation():
    Q = THREE.q_matrix(1.0)
    d, lev = _ctmc(Q, THREE.is_open, 200_000, seed=3)
    tres = 0.05
    ds = dwell_times(impose_resolution(_record(d, lev), tres))
    for which, in_a, x in (("open", THREE.is_open, ds.open), ("shut", ~THREE.is_open, ds.shut)):
        dens = MissedEventDensity(Q, in_a, tres)
        assert abs(dens.mean() / x.mean() - 1) < 0.03, which
        t = np.linspace(tres, 200, 400_001)
        assert abs(np.trapezoid(dens.pdf(t), t) - 1) < 2e-3
        edges = log_bins(tres, x.max() * 1.001, 10)
        obs = log_binned_density(x, edges)
        pred = predicted_level_density(THREE, 1.0, tres, 1, 1 if which == "open" else 0, edges)
        assert r_squared(obs, pred) > 0.99, which
    # exact (t < 3 tres) and asymptotic forms agree near 3 tres, and without missed events HJC -> ideal
    dens = MissedEventDensity(Q, ~THREE.is_open, tres)
    assert abs(dens.pdf(np.array([2.99 * tres]))[0] / dens.asymptotic_pdf(np.array([2.99 * tres]))[0] - 1) < 0.02
    rates, areas = ideal_density(Q, ~THREE.is_open)
    tiny = MissedEventDensity(Q, ~THREE.is_open, 1e-6)
    t = np.array([0.01, 0.1, 1.0])
    np.testing.assert_allclose(tiny.pdf(t), (areas * rates * np.exp(-np.outer(t, rates))).sum(1), rtol=1e-3)


def test_exact_scheme_r2_is_the_counting_noise_of_a_correct_model():
    """A record drawn from the scheme itself (one open state: dwells independent) must score an R^2
    inside the counting-noise distribution; 1 - R^2 scales as 1 / (number of dwells)."""
    Q = THREE.q_matrix(1.0)
    d, lev = _ctmc(Q, THREE.is_open, 30_000, seed=5)  # about 3,200 resolved dwells of each kind
    tres = 0.05
    data = reference_data(_record(d, lev), 1.0, tres)
    ds = dwell_times(impose_resolution(_record(d, lev), tres))
    assert data.counts[1] == np.sum(ds.open >= tres) and data.counts[0] == np.sum(ds.shut >= tres)
    draws = exact_scheme_r2(THREE, [data], draws=4000, seed=1)
    for lev_, (edges, obs) in data.bins.items():
        observed = r_squared(obs, predicted_level_density(THREE, 1.0, tres, 1, lev_, edges))
        quantile = np.mean(draws[(1.0, lev_)] <= observed)
        assert 0.005 < quantile < 0.995, (lev_, observed, quantile)
        assert np.all(draws[(1.0, lev_)] < 1.0)
    # 100x the dwells: 1 - R^2 about 100x smaller (median ratio, 4,000 draws each)
    more = dataclasses.replace(data, counts={k: 100 * v for k, v in data.counts.items()})
    big = exact_scheme_r2(THREE, [more], draws=4000, seed=1)
    for k in draws:
        ratio = np.median(1 - draws[k]) / np.median(1 - big[k])
        assert 70 < ratio < 140, (k, ratio)
    with pytest.raises(ValueError, match="no dwell count"):
        exact_scheme_r2(THREE, [dataclasses.replace(data, counts={})])


def test_network_q_matrix_is_the_scheme_q_matrix():
    for scheme in (flip_scheme(3), flip_scheme(3, second_open=True)):
        assert scheme.check_reversibility(30.0) < 1e-10  # f2, f3 from microscopic reversibility
        Q, states = q_from_network(scheme.network(1, 30.0))
        order = [int(np.flatnonzero(s)[0]) for s in states]
        np.testing.assert_allclose(Q, scheme.q_matrix(30.0)[np.ix_(order, order)], rtol=1e-5, atol=1e-9)
    assert len(scheme.states) == 13 and {"A1O2", "A2O2", "A3O2"} <= set(scheme.open_states)
    assert {"p", "q"} <= set(scheme.rates)
    # two channels: the Kronecker-sum chain on ordered pairs gives the same level densities as the
    # network's own chain on counts
    Q2, states2 = q_from_network(THREE.network(2, 1.0))
    level2 = states2[:, THREE.states.index("O")]
    Qk, levk = multichannel_q(THREE.q_matrix(1.0), THREE.is_open, 2)
    for lev in (0, 1, 2):
        t = np.array([0.06, 0.2, 1.0, 5.0])
        np.testing.assert_allclose(MissedEventDensity(Q2, level2 == lev, 0.05).pdf(t),
                                   MissedEventDensity(Qk, levk == lev, 0.05).pdf(t), rtol=1e-6)


def test_pair_scheme_is_two_independent_channels(tmp_path):
    """Two different channels as one product scheme: levels 0/1/2, its network's generator is its
    Q-matrix, two equal channels give the two-copy chain's occupancies, and it round-trips as JSON."""
    b = linear_scheme(["C2", "C1", "O"], ["O"], {"k01": 50.0, "k10": 300.0, "k12": 3000.0, "k21": 900.0})
    pair = pair_scheme(THREE, b)
    assert pair.unit_channels == 2 and pair.copies(2) == 1 and len(pair.states) == 9
    assert dict(zip(pair.states, pair.state_levels))["O_O"] == 2 and dict(zip(pair.states, pair.state_levels))["C1_O"] == 1
    Q, states = q_from_network(pair.network(1, 1.0))
    order = [int(np.flatnonzero(x)[0]) for x in states]
    np.testing.assert_allclose(Q, pair.q_matrix(1.0)[np.ix_(order, order)], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(predicted_occupancy(pair_scheme(THREE, THREE), 1.0, 2), predicted_occupancy(THREE, 1.0, 2),
                               rtol=1e-9, atol=1e-12)
    pair.to_json(tmp_path / "pair.json")
    again = load_scheme(tmp_path / "pair.json")
    assert again == pair and np.array_equal(again.state_levels, pair.state_levels)
    with pytest.raises(ValueError, match="not a whole number of copies"):
        pair.copies(3)
    with pytest.raises(ValueError, match="level of 'C1'"):
        GatingScheme("bad", ("C1", "O"), ("O",), (), {}, levels={"C1": 2})


def test_scheme_json_round_trip_and_errors(tmp_path):
    scheme = flip_scheme(2, {"kon": 3.0})
    path = tmp_path / "m.json"
    scheme.to_json(path)
    again = load_scheme(path)
    assert again.rates == scheme.rates and again.derived == scheme.derived
    np.testing.assert_allclose(again.q_matrix(10.0), scheme.q_matrix(10.0))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_scheme(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ValueError, match="other.json"):
        load_scheme(tmp_path / "other.json")


# --------------------------------------------------------------------------- the fit's statistic
def test_grid_periods_and_soft_histogram():
    levels = np.array([[0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1]])
    p = grid_periods(levels, 2)  # the single points 5 (shut) and 6 (open) are unresolved: they join the open period
    np.testing.assert_array_equal(p["length"], [2, 5, 3, 2])
    np.testing.assert_array_equal(p["cls"], [0, 1, 0, 1])
    np.testing.assert_array_equal(p["complete"], [False, True, True, False])
    F = soft_histogram_np(levels, 1.0, 2.0, SoftBins(1.0, 100.0, 10))
    # one complete period per class, each weighted t / (t - n) for the censoring of a 12-point window
    assert np.isclose(F[0, 1].sum(), 12 / 7) and np.isclose(F[0, 0].sum(), 12 / 9)
    # sampling a record on a grid gives the same runs
    rec = _record([2.0, 3.0, 1.0, 1.0, 3.0, 2.0], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(sample_record(rec, 1.0, 11, offset=0.5)[0], levels[0, :11])


def test_simulated_records_match_the_exact_densities():
    tres = 0.05
    dwells, occupancy = simulate_dwells(THREE, 1.0, tres, duration=8000.0, chains=8, h=0.005, window=100.0, seed=2)
    rec = _record(*_ctmc(THREE.q_matrix(1.0), THREE.is_open, 60_000, seed=4))
    data = reference_data(rec, 1.0, tres)
    r2 = simulated_r2(data, dwells)
    assert r2[1] > 0.95 and r2[0] > 0.95, r2
    p = pinf(THREE.q_matrix(1.0))
    assert abs(occupancy[1] - p[2]) < 0.05


def test_simulated_pair_of_different_channels_matches_its_exact_level_densities():
    """Two different channels (pair_scheme, one copy for a 2-channel patch): simulated records read the
    level of each product state (0, 1, 2) and match the exact HJC densities and occupancies."""
    b = linear_scheme(["C2", "C1", "O"], ["O"], {"k01": 50.0, "k10": 300.0, "k12": 3000.0, "k21": 900.0})
    pair = pair_scheme(THREE, b)
    tres = 0.05
    dwells, occupancy = simulate_dwells(pair, 1.0, tres, duration=8000.0, chains=8, h=0.005, window=100.0, seed=3,
                                        channels=2)
    assert set(dwells.by_level) == {0, 1, 2}
    edges = log_bins(tres, 20.0, 10)
    exact = ReferenceData(1.0, tres, 2, {lev: (edges, predicted_level_density(pair, 1.0, tres, 2, lev, edges))
                                         for lev in (0, 1)})
    r2 = simulated_r2(exact, dwells)
    assert r2[0] > 0.95 and r2[1] > 0.95, r2
    np.testing.assert_allclose(occupancy, predicted_occupancy(pair, 1.0, 2), atol=0.05)


def test_simulation_loss_gradient_is_finite_and_the_data_optimum_is_lower():
    import jax

    scale = Scale("s", h=0.01, samples=300, tres=0.05, lo=0.05, hi=2.0, windows=64, max_steps=200)
    rec = _record(*_ctmc(THREE.q_matrix(1.0), THREE.is_open, 30_000, seed=5))
    loss = SimulationLoss(THREE, [Target("three", 1.0, rec, (scale,))])
    f = jax.jit(jax.value_and_grad(loss))
    true = {k: float(v) for k, v in THREE.rates.items()}
    off = {**true, "k21": true["k21"] * 4}  # openings four times too short
    values = {}
    for name, rates in (("true", true), ("off", off)):
        vals = [f(rates, jax.random.PRNGKey(i)) for i in range(3)]
        values[name] = np.mean([float(v) for v, _ in vals])
        for _, g in vals:
            assert all(np.isfinite(float(x)) for x in g.values())
    assert values["off"] > values["true"] + 0.05, values


@needs_data
def test_predict_reports_r2_for_any_record(tmp_path, capsys):
    from argparse import Namespace

    from diffssa.applications.ionchannel.cli import predict

    model = Path(__file__).resolve().parents[1] / "models" / "glyr.json"
    if not model.is_file():
        model = tmp_path / "glyr.json"
        flip_scheme(3).to_json(model)
    args = Namespace(model=str(model), record=str(DATA / "glyr-B-30.scn"), concentration=30.0, tres=None,
                     tcrit=None, json=True)
    assert predict(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"r2_open", "r2_shut"} and all(np.isfinite(v) for v in out.values())
    # shut times below tcrit = 1.1 tres fill one bin: R^2 undefined, written as null (strict JSON)
    assert predict(Namespace(**{**vars(args), "tcrit": 0.033})) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    assert out["r2_shut"] is None and np.isfinite(out["r2_open"])
    with pytest.raises(ValueError, match="missing.scn"):
        predict(Namespace(**{**vars(args), "record": str(tmp_path / "missing.scn")}))
    with pytest.raises(ValueError, match="concentration"):
        predict(Namespace(**{**vars(args), "concentration": -1.0}))


def test_reproduce_refuses_a_perturbation_factor_below_one(capsys):
    from diffssa.applications.ionchannel.cli import main

    assert main(["reproduce", "--perturb", "0.5", "--json"]) == 2
    assert "--perturb must be a factor >= 1" in capsys.readouterr().err
