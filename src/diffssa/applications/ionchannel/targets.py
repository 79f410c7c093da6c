"""What the simulation-based fit compares: the scales at which records are looked at, and the records.

A :class:`Scale` is one way of looking at a record: a time grid (spacing ``h``, ms), windows of
``samples`` grid points, a resolution ``tres`` imposed on the gridded records and soft log-bins of the
complete resolved periods (:mod:`.gridstats`). A :class:`Target` is a record to fit with its agonist
concentration, its scales and ``tcrit`` (shut periods longer than ``tcrit`` separate bursts and are left
out: :func:`tcrit_mask`). The data and the simulated windows of a target go through the same scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gridstats import SoftBins
from .records import Record

__all__ = ["Scale", "FINE", "MID", "COARSE", "DEFAULT_SCALES", "Target", "tcrit_mask"]


@dataclass(frozen=True)
class Scale:
    """One scale of the fit: grid spacing ``h`` (ms), ``samples`` points per window, resolution ``tres``
    (ms) imposed on the gridded records, soft bins from ``lo`` to ``hi`` (ms, 10 per decade),
    ``windows`` simulated per record and step, and an event budget ``max_steps`` per window."""

    name: str
    h: float
    samples: int
    tres: float
    lo: float
    hi: float
    windows: int
    max_steps: int
    weight: float = 1.0

    @property
    def bins(self) -> SoftBins:
        return SoftBins(self.lo, self.hi, 10)


# GlyR: fine = brief shuttings and openings at the analysis resolution (30 us, 3 ms windows); mid = open
# times and shut times within bursts (40 ms windows); coarse = shut times between bursts (0.4 s windows,
# at the concentrations whose tcrit admits them).
FINE = Scale("fine", h=0.005, samples=600, tres=0.03, lo=0.03, hi=1.0, windows=48, max_steps=300)
MID = Scale("mid", h=0.05, samples=800, tres=0.1, lo=0.2, hi=15.0, windows=48, max_steps=1500)
COARSE = Scale("coarse", h=1.0, samples=400, tres=2.0, lo=3.0, hi=100.0, windows=24, max_steps=2000)
DEFAULT_SCALES = (FINE, MID, COARSE)


@dataclass(frozen=True)
class Target:
    """A record to fit: its name, agonist concentration (uM), the raw idealised record and its scales."""

    name: str
    concentration: float
    record: Record
    scales: tuple
    tcrit: float | None = None  # ms: shut periods longer than this are left out (between bursts)


def tcrit_mask(bins: SoftBins, n_levels: int, tcrit: float | None) -> np.ndarray:
    """(n_levels, nb) 1/0: shut bins whose centre exceeds ``tcrit`` are masked out."""
    mask = np.ones((n_levels, bins.size))
    if tcrit is not None:
        mask[0, 10.0 ** bins.centres > tcrit] = 0.0
    return mask
