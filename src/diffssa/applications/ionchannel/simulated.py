"""Long simulated records: the scheme's network run forward (exact) on a fine grid, resolved like the data.

:func:`simulate_dwells` gives the dwell times of simulated records with the same resolution imposed as
on the data; :func:`.reports.simulated_r2` compares them with a record's observed densities.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from ...rng import as_key
from ...simulation.api import simulate
from .models import GatingScheme
from .qmatrix import pinf
from .records import DwellSet, dwell_times, impose_resolution, record_from_segments
from .reports import dequantise

__all__ = ["simulate_dwells"]


def simulate_dwells(scheme: GatingScheme, concentration: float, tres: float, *, duration: float,
                    chains: int = 32, h: float | None = None, window: float = 500.0, seed: int = 0,
                    rates=None, channels: int = 1, max_steps: int | None = None):
    """Long simulated records (forward, exact) with ``tres`` imposed: ``(DwellSet, occupancy)``.

    ``chains`` independent records of ``channels`` unit channels (copies of the scheme), ``duration / chains`` ms each, simulated
    window by window (``window`` ms on a grid of spacing ``h``, default ``tres / 7.5``; each window
    starts from the last state of the previous one), sampled on the grid, concatenated and resolved
    like the data (a run of ``m`` points is resolved, ``(m - 1/2) h = tres``; dwell lengths, whole
    numbers of ``h``, are spread over +-h/2). ``occupancy``: fraction of time at each level.
    """
    scheme = scheme.with_rates(rates) if rates else scheme
    h = h or tres / 7.5  # the resolution ramp (see below) is then centred on tres
    copies = scheme.copies(channels)
    net = scheme.network(copies, concentration)
    rng = np.random.default_rng(seed)
    p = np.clip(pinf(scheme.q_matrix(concentration)), 0, None)
    p = p / p.sum()
    x = np.zeros((chains, len(scheme.states)), np.float32)
    for _ in range(copies):
        x[np.arange(chains), rng.choice(len(p), size=chains, p=p)] += 1
    samples = int(round(window / h))
    times = h * np.arange(1, samples + 1)
    n_windows = max(1, int(math.ceil(duration / chains / window)))
    opens = scheme.state_levels.astype(np.float32)
    rate = float(np.max(-np.diag(scheme.q_matrix(concentration))))
    budget = max_steps or int(window * rate * copies * 1.2) + 500
    current = [[] for _ in range(chains)]
    key = as_key(seed)
    for w in range(n_windows):
        tr = simulate(net, times, key=jax.random.fold_in(key, w), runs=chains, initial=x, max_steps=budget,
                      on_exhausted="raise")
        states = np.asarray(tr.states)
        levels = np.rint(states @ opens).astype(np.int8)
        x = states[:, -1, :].copy()
        for c in range(chains):
            current[c].append(levels[c])
    segments = [np.concatenate(parts) for parts in current]
    rec = record_from_segments(segments, h, source=f"simulated {scheme.name} at {concentration} uM")
    # on the grid a run of m points is resolved; a dwell of true length d covers m points with
    # probability clip(d / h - m + 1, 0, 1), a ramp centred on (m - 1/2) h: choose m so that it is tres
    m = max(1, int(np.floor(tres / h + 0.5 + 1e-9)))
    res = impose_resolution(rec, (m - 0.25) * h, binary=channels == 1)
    occupancy = np.array([res.durations[res.levels == k].sum() for k in range(channels + 1)]) / res.durations.sum()
    dwells = dwell_times(res)
    # whole numbers of grid steps -> spread over +-h/2 (fixed seed) so that they can be log-binned
    dwells = DwellSet({k: dequantise(v, h, seed=seed + k) for k, v in dwells.by_level.items()}, tres, rec.source)
    return dwells, occupancy
