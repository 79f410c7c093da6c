"""The observation design and the per-trajectory features whose means are the fitted statistics.

:class:`Design` says when the species are recorded (hours) and which statistics are formed;
:func:`trajectory_features` turns recorded states into per-trajectory features (their means over
trajectories are the statistics); :func:`simulate_features` simulates exact trajectories straight to
features, batch by batch (:func:`exact_batches`).
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from ...model import ReactionNetwork
from ...simulation.batches import simulate_batches
from ...simulation.trajectories import Trajectories, time_grid
from .network import OBSERVED, SPECIES

MAX_STEPS = 5_000_000  # events per trajectory before a simulation raises (about 50x a 30-h trajectory)
TARGET_KEY_OFFSET = 10_000  # the target data of seed s are simulated with key s + TARGET_KEY_OFFSET


class Design(NamedTuple):
    """Observation design: what is recorded and which statistics are formed.

    Coarse grid ``[0, t_end]`` with ``points + 1`` equally spaced times; the autocorrelation lags (hours,
    multiples of its spacing) are taken on the coarse grid only. Optionally a fine early grid: times
    ``0, early_dt, 2 early_dt, ...`` up to ``early_end`` hours, merged with the coarse grid for the
    mean and second-moment features (the first hours, before phase diffusion, resolve the mRNA and
    protein time scales). ``cross``: also the products A(t) R(t) at every recorded time, divided by
    ``cross_scale`` molecules^2 (default ``scale ** 2``). Counts are divided by ``scale``. The
    defaults are the original design (coarse grid only, no cross terms).
    """

    t_end: float = 30.0
    points: int = 60
    lags: tuple[float, ...] = tuple(float(l) for l in range(1, 16))
    scale: float = 1000.0
    early_end: float = 0.0
    early_dt: float = 0.05
    cross: bool = False
    cross_scale: float | None = None

    @property
    def coarse_times(self) -> np.ndarray:
        """The coarse grid (``points + 1``,): ``0, t_end / points, ..., t_end`` hours (float32)."""
        return time_grid(self.t_end, self.points)

    @property
    def times(self) -> np.ndarray:
        """The recording grid: the coarse grid merged with the early fine grid (sorted, float32)."""
        coarse = self.coarse_times
        if self.early_end <= 0:
            return coarse
        if not self.early_dt > 0:
            raise ValueError(f"early_dt must be positive, got {self.early_dt!r}")
        n = int(math.floor(self.early_end / self.early_dt + 1e-9))
        early = np.arange(n + 1, dtype=np.float64) * self.early_dt
        early = early[early < min(self.early_end, self.t_end) + 1e-9]
        merged = np.concatenate([coarse.astype(np.float64), early])
        merged = np.unique(np.round(merged, 6))
        return merged.astype(np.float32)

    @property
    def coarse_index(self) -> np.ndarray:
        """Indices of the coarse grid's times in :attr:`times` (where the autocorrelations are formed)."""
        t = self.times.astype(np.float64)
        idx = np.searchsorted(np.round(t, 6), np.round(self.coarse_times.astype(np.float64), 6))
        if idx.max(initial=0) >= t.size or not np.allclose(t[np.minimum(idx, t.size - 1)], self.coarse_times, atol=1e-5):
            raise ValueError("the coarse grid's times are not all on the design's time grid")
        return idx

    @property
    def lag_steps(self) -> tuple[int, ...]:
        """The lags in steps of the coarse grid."""
        dt = self.t_end / self.points
        return tuple(int(round(l / dt)) for l in self.lags)

    def feature_names(self) -> list[str]:
        """One name per feature (D,), in the order of :func:`trajectory_features`."""
        t = self.times
        names = [f"mean {s}({x:g})" for x in t for s in OBSERVED]
        names += [f"m2 {s}({x:g})" for x in t for s in OBSERVED]
        if self.cross:
            names += [f"AR({x:g})" for x in t]
        names += [f"acf {s} lag {l:g}" for s in ("A", "R") for l in self.lags]
        return names


def trajectory_features(states, design: Design = Design(), species: Sequence[str] = tuple(SPECIES)) -> np.ndarray:
    """(B, T, S) states at ``design.times`` -> (B, D) per-trajectory features; their means are the statistics.

    Features (in the order of :meth:`Design.feature_names`): x(t) and x(t)^2 for x in A, R, C at every
    recorded time (in units of ``design.scale`` molecules), A(t) R(t) if ``design.cross`` (in units of
    ``design.cross_scale``), and for A and R the averages over the coarse grid of x(t) x(t + l) for
    each lag l.
    """
    return _features(np, np.asarray(states, dtype=np.float64), design, species)


def _features(xp, states, design: Design, species: Sequence[str]):
    """:func:`trajectory_features` with the array module ``xp`` (numpy, or jax.numpy to differentiate)."""
    idx = [list(species).index(s) for s in OBSERVED]
    x = states[:, :, idx] / design.scale  # (B, T, 3)
    if x.shape[1] != len(design.times):
        raise ValueError(f"states have {x.shape[1]} times, the design records {len(design.times)}")
    b = x.shape[0]
    parts = [x.reshape(b, -1), (x**2).reshape(b, -1)]
    if design.cross:
        unit = design.scale**2 if design.cross_scale is None else design.cross_scale
        parts.append(states[:, :, idx[0]] * states[:, :, idx[1]] / unit)
    coarse = x if design.early_end <= 0 else x[:, design.coarse_index]  # default: bit-identical to before
    for j in (0, 1):
        a = coarse[:, :, j]
        parts.append(xp.stack([xp.mean(a[:, :-l] * a[:, l:], axis=1) for l in design.lag_steps], axis=1))
    return xp.concatenate(parts, axis=1)


def exact_batches(network: ReactionNetwork, times, params: dict, *, key, runs: int, batch: int,
                  max_steps: int = MAX_STEPS) -> Iterator[Trajectories]:
    """``runs`` exact forward-only trajectories recorded at ``times`` (T,) hours, one (B_i, T, S) batch at a time.

    ``params``: name -> scalar or (runs,) array (per-trajectory rates). Batch ``i`` of ``batch``
    trajectories uses the key ``fold_in(key, i)`` (:func:`~diffssa.simulation.batches.simulate_batches`);
    a trajectory that exhausts ``max_steps`` events raises :class:`~diffssa.SimulationBudgetError`.
    """
    return simulate_batches(network, times, key=key, runs=runs, batch_size=batch, params=params,
                            max_steps=max_steps, estimator=None, on_exhausted="raise")


def simulate_features(
    network: ReactionNetwork,
    params: dict,
    *,
    key,
    runs: int,
    design: Design = Design(),
    batch: int = 512,
    max_steps: int = MAX_STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trajectory features (runs, D) of ``runs`` exact (forward-only) trajectories; also their event counts (runs,).

    ``params``: name -> scalar or (runs,) array (per-trajectory rates). Runs go in batches of
    ``batch`` (each with its own key folded from ``key``); a trajectory that exhausts ``max_steps``
    raises :class:`~diffssa.SimulationBudgetError`.
    """
    feats, events = [], []
    for tr in exact_batches(network, design.times, params, key=key, runs=runs, batch=batch, max_steps=max_steps):
        feats.append(trajectory_features(tr.states, design, network.species_names))
        events.append(np.asarray(tr.events))
    return np.concatenate(feats), np.concatenate(events)
