"""R^2 reports: observed log-binned dwell-time densities against exact HJC and simulated ones.

R^2 between observed log-binned densities (10 bins per decade from ``tres`` to the longest dwell; the
definition of :mod:`.records`) and (a) the exact HJC densities of the scheme at given rates
(:mod:`.qmatrix`; a patch of several channels through the count-state chain of independent copies,
:func:`multichannel_q`), (b) densities of long simulated records (:func:`simulated_r2`, the records of
:func:`.simulated.simulate_dwells`). :func:`exact_scheme_r2` gives the R^2 that counting noise alone
allows if the scheme were exact. Times in ms, concentrations in uM, rates as in :mod:`.models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import Sequence

import numpy as np

from .models import GatingScheme
from .qmatrix import MissedEventDensity, bin_probabilities, pinf
from .records import (
    DwellSet,
    Record,
    dwell_times,
    impose_resolution,
    log_binned_density,
    log_bins,
    r_squared,
)

__all__ = [
    "observed_densities",
    "predicted_density",
    "record_r2",
    "multichannel_q",
    "ReferenceData",
    "dequantise",
    "reference_data",
    "predicted_level_density",
    "predicted_occupancy",
    "reference_r2",
    "exact_scheme_r2",
    "simulated_r2",
]


def observed_densities(dwells: np.ndarray, tres: float, tmax: float | None = None, per_decade: int = 10):
    """Edges and observed log-binned density of dwell times (bins from ``tres`` to ``tmax`` or the longest dwell)."""
    dwells = np.asarray(dwells, dtype=np.float64)
    dwells = dwells[dwells >= tres]
    top = float(tmax) if tmax is not None else float(dwells.max()) * (1 + 1e-9)
    edges = log_bins(tres, top, per_decade)
    return edges, log_binned_density(dwells[dwells < edges[-1]], edges)


def predicted_density(scheme: GatingScheme, concentration: float, tres: float, edges, which: str, rates=None):
    """HJC (exact + asymptotic) log-binned density of apparent open or shut times, normalised over ``edges``."""
    Q = scheme.q_matrix(concentration, rates)
    in_a = scheme.is_open if which == "open" else ~scheme.is_open
    dens = MissedEventDensity(Q, in_a, tres)
    probs = np.maximum(bin_probabilities(dens.pdf, edges, (2 * tres, 3 * tres)), 0.0)
    return probs / probs.sum() / np.diff(np.log10(edges))


def record_r2(scheme: GatingScheme, concentration: float, record: Record, tres: float, *, rates=None,
              tcrit: float | None = None, per_decade: int = 10, detail: bool = False) -> dict:
    """R^2 of the scheme's exact HJC dwell-time densities against a record's, open and shut.

    Bins: ``per_decade`` per decade from ``tres`` to the longest dwell; with ``tcrit`` (ms) the shut
    times are compared on ``[tres, tcrit)`` only (observed and predicted both normalised there).
    ``detail=True`` adds the edges, observed and predicted densities.
    """
    ds = dwell_times(impose_resolution(record, tres))
    out = {}
    for which, x in (("open", ds.open), ("shut", ds.shut)):
        top = tcrit if (which == "shut" and tcrit is not None) else None
        if top is not None:
            x = x[x < top]
        edges, obs = observed_densities(x, tres, tmax=top, per_decade=per_decade)
        pred = predicted_density(scheme, concentration, tres, edges, which, rates)
        out[f"r2_{which}"] = r_squared(obs, pred)
        out[f"n_{which}"] = int(np.sum(x >= tres))
        if detail:
            out[f"{which}_bins"] = (edges, obs, pred)
    return out


def multichannel_q(Q1: np.ndarray, state_levels: np.ndarray, channels: int):
    """Generator of ``channels`` independent identical copies of a scheme on count states (how many copies
    are in each state; the chain the network simulates), and the number of open unit channels in each
    count state (``state_levels``: per scheme state, e.g. :attr:`GatingScheme.state_levels`; a boolean
    open mask counts 1 per open copy)."""
    Q1 = np.asarray(Q1, dtype=np.float64)
    k = Q1.shape[0]
    states = []
    for combo in combinations_with_replacement(range(k), channels):
        x = np.zeros(k, np.int64)
        for i in combo:
            x[i] += 1
        states.append(x)
    index = {tuple(x): n for n, x in enumerate(states)}
    Q = np.zeros((len(states), len(states)))
    for n, x in enumerate(states):
        for i in np.flatnonzero(x):
            for j in range(k):
                if j != i and Q1[i, j] > 0:
                    y = x.copy()
                    y[i] -= 1
                    y[j] += 1
                    Q[n, index[tuple(y)]] += x[i] * Q1[i, j]
    np.fill_diagonal(Q, -Q.sum(axis=1))
    weight = np.asarray(state_levels, np.int64)
    level = np.array([int(np.sum(x * weight)) for x in states])
    return Q, level


@dataclass
class ReferenceData:
    """Observed log-binned densities of one record for the Q-matrix reference fit (per level).

    ``bins``: level -> ``(edges (nb + 1,) ms, observed density (nb,) per decade)``; ``tres`` (ms) the
    resolution of the comparison; ``concentration`` (uM); ``channels`` unit channels in the patch.
    """

    concentration: float
    tres: float
    channels: int
    bins: dict  # level -> (edges, observed density)
    quantum: float | None = None
    occupancy: np.ndarray | None = None  # observed fraction of time at each level (fitted when given)
    counts: dict = field(default_factory=dict)  # level -> number of dwells in the binned range


def dequantise(x, quantum, seed=0):
    """Durations measured in whole samples (k dt) spread uniformly over (k - 1/2, k + 1/2) dt.

    ``x``: durations (any shape, ms); ``quantum``: the sample interval ``dt`` (ms); fixed ``seed``.
    """
    return x + (np.random.default_rng(seed).random(x.shape) - 0.5) * quantum


def reference_data(record: Record, concentration: float, tres: float, *, channels: int = 1,
                   tcrit: float | None = None, per_decade: int = 10, levels=None,
                   quantum: float | None = None, occupancy: bool = False) -> ReferenceData:
    """Observed densities of resolved dwells at each level (shut times below ``tcrit`` if given).

    ``quantum``: for a record idealised from sampled data, the sampling interval: durations are whole
    numbers of samples, so they are spread over +-1/2 sample (fixed seed) and the resolution of the
    comparison is ``tres - quantum / 2`` (a run of ``tres / quantum`` samples covers true durations
    from about ``tres - quantum`` to ``tres``).
    """
    binary = channels == 1
    resolved = impose_resolution(record, tres, binary=binary)
    ds = dwell_times(resolved)
    occ = None
    if occupancy:
        occ = np.array([resolved.durations[resolved.levels == k].sum() for k in range(channels + 1)])
        occ = occ / occ.sum()
    if quantum:
        tres = tres - quantum / 2
    out, counts = {}, {}
    for lev in (levels if levels is not None else range(channels + 1)):
        x = ds.by_level.get(lev, np.zeros(0))
        if quantum:
            x = dequantise(x, quantum, seed=lev)
        top = tcrit if (lev == 0 and tcrit is not None) else None
        if top is not None:
            x = x[x < top]
        if x.size < 2:
            continue
        out[lev] = observed_densities(x, tres, tmax=top, per_decade=per_decade)
        counts[lev] = int(np.sum((x >= tres) & (x < out[lev][0][-1])))
    return ReferenceData(concentration, tres, channels, out, quantum, occ, counts)


def predicted_level_density(scheme: GatingScheme, concentration: float, tres: float, channels: int, level: int,
                            edges, rates=None) -> np.ndarray:
    """HJC log-binned density of apparent dwells at one current level (a patch of ``channels`` unit
    channels: independent copies of the scheme)."""
    Q1 = scheme.q_matrix(concentration, rates)
    Q, lev = multichannel_q(Q1, scheme.state_levels, scheme.copies(channels))
    dens = MissedEventDensity(Q, lev == level, tres)
    probs = np.maximum(bin_probabilities(dens.pdf, edges, (2 * tres, 3 * tres)), 0.0)
    return probs / probs.sum() / np.diff(np.log10(edges))


def predicted_occupancy(scheme: GatingScheme, concentration: float, channels: int, rates=None) -> np.ndarray:
    """Equilibrium fraction of time with 0..channels channels open."""
    Q, lev = multichannel_q(scheme.q_matrix(concentration, rates), scheme.state_levels, scheme.copies(channels))
    p = np.clip(pinf(Q), 0, None)
    return np.array([p[lev == k].sum() for k in range(channels + 1)]) / p.sum()


def reference_r2(scheme: GatingScheme, data: Sequence[ReferenceData], rates=None) -> dict:
    """R^2 of exact HJC densities against each record's observed densities, per level."""
    out = {}
    for d in data:
        for lev, (edges, obs) in d.bins.items():
            pred = predicted_level_density(scheme, d.concentration, d.tres, d.channels, lev, edges, rates)
            out[(d.concentration, lev)] = r_squared(obs, pred)
    return out


def exact_scheme_r2(scheme: GatingScheme, data: Sequence[ReferenceData], rates=None, *, draws: int = 2000,
                    seed: int = 0) -> dict:
    """The R^2 a record would reach if the scheme were exactly right: its counting-noise distribution.

    For each record and level, ``draws`` synthetic records of the same number of dwells (``counts``)
    are drawn from the scheme's own binned HJC density (multinomial over the bins, fixed ``seed``) and
    scored against that density like the data. With a few thousand dwells at 10 bins per decade R^2
    stays visibly below 1 from counting noise alone; an observed R^2 far in the lower tail of this
    distribution says the scheme (or its rates) misfits. Returns (concentration, level) -> (draws,) R^2.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for d in data:
        for lev, (edges, _) in d.bins.items():
            if lev not in d.counts:
                raise ValueError(f"record at {d.concentration:g} uM, level {lev}: no dwell count (use reference_data)")
            width = np.diff(np.log10(edges))
            pred = predicted_level_density(scheme, d.concentration, d.tres, d.channels, lev, edges, rates)
            p = pred * width
            sim = rng.multinomial(d.counts[lev], p / p.sum(), size=draws) / d.counts[lev] / width
            out[(d.concentration, lev)] = np.array([r_squared(s, pred) for s in sim])
    return out


def simulated_r2(data: ReferenceData, simulated: DwellSet) -> dict:
    """R^2 of simulated against observed log-binned dwell-time densities (the observed bins), per level."""
    out = {}
    for lev, (edges, obs) in data.bins.items():
        y = simulated.by_level.get(lev, np.zeros(0))  # simulate_dwells spreads grid lengths over +-h/2
        pred = log_binned_density(y[(y >= edges[0]) & (y < edges[-1])], edges)
        out[lev] = r_squared(obs, pred)
    return out
