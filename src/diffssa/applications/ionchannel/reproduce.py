"""The ion-channel reproduction: glycine receptor records at 10, 30, 100 uM and a two-channel raw trace.

``reproduce_glyr``: one scheme and one set of rate constants for the three records: the flip scheme
(3 binding sites, Burzomato et al. 2004) with a second open state after each open state (16 free
rates; the plain flip scheme's best exact fit stops at R^2 0.9867 on the 10 uM openings). Steps:
(1) a Q-matrix reference fit (exact HJC densities, least squares; :func:`.reference.reference_fit`)
from a generic starting guess; (2) the simulation-based fit: Adam on log rate constants with gradients
through the exact simulator (score-function estimator, :class:`.loss.SimulationLoss`,
:func:`.optimise.optimise`), started from the reference rates or, for a recovery experiment
(``perturb`` > 1), from them multiplied or divided by ``perturb`` (fixed seed); (3) R^2 of both fits
against every record from the exact HJC densities, and of the simulation fit from long simulated
records, beside the R^2 that counting noise allows if the scheme were exact
(:func:`.reports.exact_scheme_r2`); (4) plots (:mod:`.plots`) and ``models/glyr.json``.

``reproduce_two_channel``: the raw trace ``sctrace-test2.abf`` idealised at half amplitude with levels
0, 1, 2 (two channels). A linear scheme C3-C2-C1-O1-O2 per channel: first two identical channels
(reference fit only, for comparison), then two different independent channels (:func:`.models.pair_scheme`,
16 rates) fitted the same way as GlyR; R^2 of the dwell-time densities at each level and of the level
occupancies.

Resolution and burst definitions follow DCPROGS/HJCFIT for these records: ``tres`` = 30 us; shut
times longer than ``tcrit`` (4 ms at 10 uM, 1 s at 30 uM, 60 ms at 100 uM) separate bursts of an
unknown number of channels and are left out of the shut-time comparison.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from .loss import SimulationLoss
from .models import GatingScheme, flip_scheme, linear_scheme, pair_scheme
from .optimise import optimise
from .plots import plot_glyr, plot_loss, plot_two_channel
from .records import (
    idealise,
    impose_resolution,
    r_squared,
    read_abf,
    read_scn,
    shared_dir,
)
from .reference import reference_fit
from .reports import (
    exact_scheme_r2,
    predicted_level_density,
    predicted_occupancy,
    reference_data,
    reference_r2,
    simulated_r2,
)
from .simulated import simulate_dwells
from .targets import COARSE, FINE, MID, Scale, Target

__all__ = ["GLYR_RECORDS", "GLYR_TRES", "GLYR_TCRIT", "GLYR_START", "reproduce_glyr", "reproduce_two_channel"]

GLYR_RECORDS = {10.0: "glyr-A-10.scn", 30.0: "glyr-B-30.scn", 100.0: "glyr-C-100.scn"}
GLYR_TRES = 0.03  # ms
GLYR_TCRIT = {10.0: 4.0, 30.0: 1000.0, 100.0: 60.0}  # ms (DCPROGS HJCFIT example for these records)
# a generic starting guess (1/s; binding 1/(uM s)): equal gating rates, opening faster with more agonist
GLYR_START = {"kon": 2.0, "koff": 2000.0, "kfon": 50.0, "kfoff": 300.0, "f1": 100.0,
              "g1": 3000.0, "b1": 5000.0, "a1": 1500.0, "g2": 3000.0, "b2": 20000.0, "a2": 1500.0,
              "g3": 3000.0, "b3": 45000.0, "a3": 1500.0, "p": 300.0, "q": 2000.0}
# a second start: the plain flip scheme's rates from an exploratory Nelder-Mead fit of the binned HJC
# likelihood from GLYR_START (20 min, not rerun here), rounded to two digits, and the generic p, q; for
# the plain scheme, least squares from GLYR_START alone stopped in a worse basin (AF* closing at
# 5600/s, unflipping of A3F near 0; sum of 1 - R^2 0.065 against 0.051 from here)
GLYR_START_2 = {"kon": 0.72, "koff": 330.0, "kfon": 400.0, "kfoff": 4200.0, "f1": 58.0,
                "g1": 8200.0, "b1": 3400.0, "a1": 490.0, "g2": 17000.0, "b2": 40000.0, "a2": 3800.0,
                "g3": 14000.0, "b3": 140000.0, "a3": 5000.0, "p": 300.0, "q": 2000.0}

TWO_TRES = 0.06  # ms: 4 samples of the 66.7 kHz trace
TWO_START = {"k01": 1.0, "k10": 20.0, "k12": 1000.0, "k21": 500.0, "k23": 5000.0, "k32": 2000.0,
             "k34": 500.0, "k43": 300.0}
TWO_SCALES = (
    Scale("fine", h=0.015, samples=400, tres=0.06, lo=0.06, hi=2.0, windows=48, max_steps=200),
    Scale("mid", h=0.15, samples=400, tres=0.3, lo=0.5, hi=30.0, windows=48, max_steps=800),
    Scale("coarse", h=5.0, samples=600, tres=10.0, lo=20.0, hi=2000.0, windows=16, max_steps=4000),
)


def _log(progress, message):
    if progress:
        progress(message)


def _log_steps(progress, t0):
    """The optimiser's callback: a progress line (mean loss, seconds since ``t0``) every few steps."""
    return lambda step, value: _log(progress, f"  step {step}: loss {value:.3f} ({time.perf_counter() - t0:.0f} s)")


def _perturb(rates, factor, seed):
    rng = np.random.default_rng(seed)
    return {k: float(v) * float(factor) ** float(rng.choice([-1, 1])) for k, v in rates.items()}


def glyr_records(root=None):
    root = Path(root) if root else shared_dir() / "ionchannel"
    return {c: read_scn(root / f) for c, f in GLYR_RECORDS.items()}


LEARNING_RATE = 0.003  # Adam on log rates; at 0.01 the noisy steps walked the rates ~13% off the optimum
GLYR_WINDOWS = 96  # simulated windows per record and scale per step (48: R^2 >= 0.987 on 3 of 6; 96: 5 of 6)
TWO_CHANNEL_WINDOWS = 48


def glyr_targets(records, windows: int = GLYR_WINDOWS):
    scales = {s.name: dataclasses.replace(s, windows=windows) for s in (FINE, MID, COARSE)}
    out = []
    for c, rec in records.items():
        use = [scales["fine"], scales["mid"]] + ([scales["coarse"]] if GLYR_TCRIT[c] >= 100 else [])
        out.append(Target(f"{c:g}uM", c, rec, tuple(use), GLYR_TCRIT[c]))
    return out


GLYR_R2_GOAL = 0.987  # issue 6 (the paper's figure), on every record, open and shut


def _noise_table(draws: dict, observed: dict) -> dict:
    """Counting-noise R^2 of an exact scheme per record and level: median, 5% quantile, P(R^2 >= goal),
    and where the observed R^2 falls (P(R^2 <= observed))."""
    stats = {key: {"median": round(float(np.median(r2)), 4), "q05": round(float(np.quantile(r2, 0.05)), 4),
                   "p_goal": round(float(np.mean(r2 >= GLYR_R2_GOAL)), 3),
                   "p_below_observed": round(float(np.mean(r2 <= observed[key])), 3)}
             for key, r2 in draws.items()}
    return _r2_table(stats, value=lambda v: v)


def _r2_table(r2: dict, channels: int = 1, value=lambda v: round(float(v), 4)) -> dict:
    """{(conc, level): r2} -> {"10uM": {"open": .., "shut": ..}} (one channel) or levels; ``value``
    formats each entry (default: R^2 rounded to 4 digits)."""
    out = {}
    for (c, lev), v in sorted(r2.items()):
        name = f"{c:g}uM" if channels == 1 else "sctrace-test2"
        key = ("shut" if lev == 0 else "open") if channels == 1 else f"level{lev}"
        out.setdefault(name, {})[key] = value(v)
    return out


def reproduce_glyr(*, seed: int = 0, steps: int = 150, windows: int = GLYR_WINDOWS, learning_rate: float = LEARNING_RATE,
                   reference_nfev: int = 120, perturb: float = 1.0, sim_duration=None,
                   model_out=None, img_dir=None, root=None, progress=print) -> dict:
    """Fit the GlyR records (see the module docstring); returns a JSON-able dict of results."""
    t_start = time.perf_counter()
    timings = {}
    records = glyr_records(root)
    scheme = flip_scheme(3, GLYR_START, name="glyr-flip-3-2open", second_open=True)
    data = [reference_data(records[c], c, GLYR_TRES, tcrit=GLYR_TCRIT[c]) for c in records]

    # (1) Q-matrix reference fit (least squares from two starts, the better kept)
    t0 = time.perf_counter()
    best = None
    for guess in (GLYR_START, GLYR_START_2):
        rates, r2 = reference_fit(scheme, data, start=guess, max_nfev=reference_nfev)
        cost = sum(1 - v for v in r2.values())
        if best is None or cost < best[0]:
            best = (cost, rates, r2)
    _, ref_rates, ref_r2 = best
    timings["reference_fit_s"] = round(time.perf_counter() - t0, 1)
    _log(progress, f"reference fit ({timings['reference_fit_s']} s): {_r2_table(ref_r2)}")

    # (2) simulation-based fit through the exact simulator, from the reference rates (perturb = 1) or
    # from them perturbed by a factor `perturb` up or down (a recovery experiment)
    t0 = time.perf_counter()
    start = _perturb(ref_rates, perturb, seed + 1) if perturb != 1 else dict(ref_rates)
    loss = SimulationLoss(scheme, glyr_targets(records, windows))
    sim_rates, losses, skipped = optimise(loss, start, key=seed, steps=steps, learning_rate=learning_rate,
                                          final_learning_rate=learning_rate / 10, average_last=max(steps // 3, 1),
                                          callback=_log_steps(progress, t0), every=max(steps // 10, 1))
    timings["simulation_fit_s"] = round(time.perf_counter() - t0, 1)
    start_r2 = reference_r2(scheme, data, start)
    sim_r2 = reference_r2(scheme, data, sim_rates)
    noise = _noise_table(exact_scheme_r2(scheme, data, sim_rates, seed=seed), sim_r2)
    _log(progress, f"simulation fit ({timings['simulation_fit_s']} s): {_r2_table(sim_r2)}")
    _log(progress, f"if the scheme were exact, counting noise alone would give: {noise}")

    # (3) R^2 from long simulated records at the simulation-fitted rates
    t0 = time.perf_counter()
    fitted = scheme.with_rates(sim_rates)
    simulated = {}
    sim_records_r2 = {}
    sim_vs_exact = {}
    sim_duration = sim_duration or {10.0: 240_000.0, 30.0: 120_000.0, 100.0: 60_000.0}  # ms of record per concentration
    for d in data:
        duration = sim_duration[d.concentration] if isinstance(sim_duration, dict) else float(sim_duration)
        dwells, _ = simulate_dwells(fitted, d.concentration, GLYR_TRES, duration=duration, seed=seed + 7)
        simulated[d.concentration] = dwells
        for lev, v in simulated_r2(d, dwells).items():
            sim_records_r2[(d.concentration, lev)] = v
        # the check of the simulator against the exact densities of the same scheme and rates
        exact = dataclasses.replace(d, bins={lev: (e, predicted_level_density(fitted, d.concentration, d.tres, 1, lev, e))
                                             for lev, (e, _) in d.bins.items()})
        for lev, v in simulated_r2(exact, dwells).items():
            sim_vs_exact[(d.concentration, lev)] = v
    timings["simulated_records_s"] = round(time.perf_counter() - t0, 1)
    _log(progress, f"simulated records ({timings['simulated_records_s']} s): {_r2_table(sim_records_r2)}")

    # (4) artefacts
    meta = {
        "fit": "simulation-based: Adam on log rates, gradients through the exact simulator (score-function estimator)",
        "records": {f"{c:g}": GLYR_RECORDS[c] for c in GLYR_RECORDS},
        "tres_ms": GLYR_TRES,
        "tcrit_ms": {f"{c:g}": GLYR_TCRIT[c] for c in GLYR_TCRIT},
        "r2_exact_hjc": _r2_table(sim_r2),
        "r2_if_scheme_exact": noise,
        "r2_simulated_records": _r2_table(sim_records_r2),
        "r2_simulated_vs_exact": _r2_table(sim_vs_exact),
        "reference_qmatrix_fit": {"rates": {k: round(v, 6) for k, v in ref_rates.items()}, "r2": _r2_table(ref_r2)},
        "steps": steps, "seed": seed, "windows": windows,
        "r2_definition": "1 - SS_res/SS_tot over log-binned densities (10 bins/decade from tres to the longest dwell; shut: to tcrit)",
    }
    fitted = dataclasses.replace(fitted, meta=meta)
    if model_out:
        Path(model_out).parent.mkdir(parents=True, exist_ok=True)
        fitted.to_json(model_out)
    if img_dir:
        plot_glyr(Path(img_dir), fitted, data, simulated)
        plot_loss(Path(img_dir) / "ionchannel-glyr-loss.png", losses, "GlyR simulation-based fit")
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    return {
        "r2": _r2_table(sim_r2),
        "r2_if_scheme_exact": noise,
        "r2_simulated_records": _r2_table(sim_records_r2),
        "r2_simulated_vs_exact": _r2_table(sim_vs_exact),
        "r2_start": _r2_table(start_r2),
        "rates": {k: round(v, 6) for k, v in sim_rates.items()},
        "reference": {"rates": {k: round(v, 6) for k, v in ref_rates.items()}, "r2": _r2_table(ref_r2)},
        "skipped_steps": skipped,
        "timings": timings,
    }


def two_channel_scheme(rates=None) -> GatingScheme:
    """One channel of the two-channel trace: the linear scheme C3-C2-C1-O1-O2 (8 rates)."""
    return linear_scheme(["C3", "C2", "C1", "O1", "O2"], ["O1", "O2"], {**TWO_START, **dict(rates or {})},
                         name="sctrace-linear-5")


def _pair_start(rates: dict) -> dict:
    """Start of the two-different-channels fit: both channels at ``rates`` (the identical-channel fit),
    channel b closing 5x more slowly (identical channels have a degenerate product chain)."""
    return {**{f"a_{k}": v for k, v in rates.items()}, **{f"b_{k}": v for k, v in rates.items()},
            "b_k32": rates["k32"] / 5}


def reproduce_two_channel(*, seed: int = 0, steps: int = 100, windows: int = TWO_CHANNEL_WINDOWS,
                          learning_rate: float = LEARNING_RATE,
                          reference_nfev: int = 80, perturb: float = 1.0, sim_duration: float = 200000.0,
                          img_dir=None, root=None, progress=print) -> dict:
    """Two-channel fit of ``sctrace-test2.abf`` (levels 0, 1, 2); returns a JSON-able dict."""
    t_start = time.perf_counter()
    timings = {}
    root = Path(root) if root else shared_dir() / "ionchannel"
    trace = read_abf(root / "sctrace-test2.abf")
    record = idealise(trace, open_levels=2)
    data = [reference_data(record, 1.0, TWO_TRES, channels=2, quantum=trace.dt, occupancy=True)]
    t0 = time.perf_counter()
    # two identical channels first (the scheme of one channel, two copies), then two different ones
    identical = two_channel_scheme()
    same_rates, same_r2 = reference_fit(identical, data, start=TWO_START, max_nfev=reference_nfev)
    same_occ = predicted_occupancy(identical, 1.0, 2, same_rates)
    _log(progress, f"two identical channels, reference fit: {_r2_table(same_r2, 2)}")
    scheme = pair_scheme(identical, identical, name="sctrace-pair-linear-5")
    ref_rates, ref_r2 = reference_fit(scheme, data, start=_pair_start(same_rates), max_nfev=3 * reference_nfev)
    timings["reference_fit_s"] = round(time.perf_counter() - t0, 1)
    _log(progress, f"two different channels, reference fit ({timings['reference_fit_s']} s): {_r2_table(ref_r2, 2)}")

    t0 = time.perf_counter()
    scales = tuple(dataclasses.replace(s, windows=windows if s.name != "coarse" else max(windows // 3, 8)) for s in TWO_SCALES)
    loss = SimulationLoss(scheme, [Target("sctrace-test2", 1.0, record, scales)], channels=2)
    start = _perturb(ref_rates, perturb, seed + 1) if perturb != 1 else dict(ref_rates)
    sim_rates, losses, skipped = optimise(
        loss, start, key=seed, steps=steps, learning_rate=learning_rate, final_learning_rate=learning_rate / 10,
        average_last=max(steps // 3, 1), every=max(steps // 5, 1), callback=_log_steps(progress, t0))
    timings["simulation_fit_s"] = round(time.perf_counter() - t0, 1)
    sim_r2 = reference_r2(scheme, data, sim_rates)

    # level occupancy: observed (resolved record) vs exact equilibrium and simulated
    res = impose_resolution(record, TWO_TRES, binary=False)
    observed_occ = np.array([res.durations[res.levels == k].sum() for k in range(3)]) / res.durations.sum()
    exact_occ = predicted_occupancy(scheme, 1.0, 2, sim_rates)
    ref_occ = predicted_occupancy(scheme, 1.0, 2, ref_rates)
    t1 = time.perf_counter()
    dwells, sim_occ = simulate_dwells(scheme.with_rates(sim_rates), 1.0, TWO_TRES, duration=sim_duration, chains=16,
                                      h=trace.dt, window=2000.0, seed=seed + 7, channels=2)
    timings["simulated_records_s"] = round(time.perf_counter() - t1, 1)
    sim_records_r2 = simulated_r2(data[0], dwells)
    exact = dataclasses.replace(data[0], bins={lev: (e, predicted_level_density(scheme, 1.0, data[0].tres, 2, lev, e, sim_rates))
                                               for lev, (e, _) in data[0].bins.items()})
    sim_vs_exact = simulated_r2(exact, dwells)
    timings["total_s"] = round(time.perf_counter() - t_start, 1)
    if img_dir:
        plot_two_channel(Path(img_dir) / "ionchannel-two-channel.png", scheme.with_rates(sim_rates), data[0], dwells,
                         observed_occ, exact_occ, sim_occ)
    out = {
        "r2": _r2_table(sim_r2, 2)["sctrace-test2"],
        "r2_simulated_records": {f"level{k}": round(float(v), 4) for k, v in sorted(sim_records_r2.items())},
        "r2_simulated_vs_exact": {f"level{k}": round(float(v), 4) for k, v in sorted(sim_vs_exact.items())},
        "r2_occupancy": round(r_squared(observed_occ, exact_occ), 6),
        "r2_occupancy_simulated": round(r_squared(observed_occ, sim_occ), 6),
        "occupancy": {"observed": observed_occ.round(5).tolist(), "exact": exact_occ.round(5).tolist(),
                      "simulated": np.asarray(sim_occ).round(5).tolist()},
        "dwells": {f"level{k}": int(v.size) for k, v in sorted(dwells.by_level.items())},
        "rates": {k: round(v, 6) for k, v in sim_rates.items()},
        "reference": {"rates": {k: round(v, 6) for k, v in ref_rates.items()}, "r2": _r2_table(ref_r2, 2)["sctrace-test2"],
                      "r2_occupancy": round(r_squared(observed_occ, ref_occ), 6)},
        "identical_channels_reference": {"rates": {k: round(v, 6) for k, v in same_rates.items()},
                                         "r2": _r2_table(same_r2, 2)["sctrace-test2"],
                                         "r2_occupancy": round(r_squared(observed_occ, same_occ), 6)},
        "idealisation": {k: round(float(v), 4) for k, v in record.info.items() if k in ("closed", "amplitude", "dt")},
        "tres_ms": TWO_TRES,
        "skipped_steps": skipped,
        "timings": timings,
    }
    return out


