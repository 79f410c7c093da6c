"""Dwell-time statistics of records sampled on a time grid (the statistic the simulation-based fit matches).

The simulator reports the state of every trajectory on a time grid (``Trajectories.states``). The
statistic: the open indicator ``o[w, i]`` of window ``w`` at grid point ``i`` (spacing ``h``) is cut into
runs; the time resolution ``tres`` is imposed on the runs with the HJC rule of
:func:`~diffssa.applications.ionchannel.records.impose_resolution` (a run is resolved when it covers
``ceil(tres / h)`` grid points or more, shorter runs join the preceding resolved run); the resolved
periods that lie entirely inside the window are *complete*. Each complete period of length ``l = n h``
adds to soft log-bins: linear interpolation of ``log10 l`` between bin centres (a hat function per
bin), so a period contributes to at most two neighbouring bins, with weight ``T / (T - n)`` for a period
of ``n`` of the window's ``T`` points (it fits in the window at ``T - n`` positions; the weight undoes
that censoring for a stationary record). The result ``F[w, class, b]`` is the
soft histogram of complete resolved periods at each level of each window (one channel: shut 0, open 1;
n channels: levels 0..n).

The same function is applied to the data sampled on the same grid in windows of the same length
(:func:`sample_record`), so data and model are compared alike: same resolution, same sampling, same
censoring at the window edges. ``F`` is an exact function of the path; its expectation is
differentiated with the simulator's score-function estimator (see :mod:`.loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import _runs

__all__ = ["SoftBins", "grid_periods", "soft_histogram_np", "sample_record"]


@dataclass(frozen=True)
class SoftBins:
    """Hat-function bins in log10 time (ms): centres ``lo * 10**((k + 0.5) / per_decade)`` up to ``hi``."""

    lo: float
    hi: float
    per_decade: int = 10

    @property
    def centres(self) -> np.ndarray:
        n = int(round(np.log10(self.hi / self.lo) * self.per_decade))
        return np.log10(self.lo) + (np.arange(n) + 0.5) / self.per_decade

    @property
    def size(self) -> int:
        return int(self.centres.size)

    @property
    def width(self) -> float:
        return 1.0 / self.per_decade

    def position(self, log10_t):
        """Fractional bin index (0 at the first centre)."""
        return (np.asarray(log10_t) - self.centres[0]) / self.width


def grid_periods(levels, m: int):
    """Resolved periods of windows sampled on a grid (rows of ``levels`` (B, T): number of open channels).

    A run of ``m`` or more points is resolved; shorter runs join the preceding resolved run. Returns a
    dict of per-period arrays (``start`` (flat index), ``length`` (points), ``cls``, ``row``,
    ``complete``) and per-point arrays (``period``: index of the period or -1, ``elapsed``: points since
    the period's start).
    """
    levels = np.asarray(levels)
    b, t = levels.shape
    flat = levels.reshape(-1).astype(np.int8)
    seg = np.repeat(np.arange(b), t)
    starts, lengths, values = _runs(flat, seg)
    rseg = seg[starts]
    idx = np.arange(starts.size)
    last = np.maximum.accumulate(np.where(lengths >= m, idx, -1))
    valid = last >= 0
    valid[valid] &= rseg[last[valid]] == rseg[valid]
    cls = np.where(valid, values[np.maximum(last, 0)], -1).astype(np.int64)
    change = np.ones(starts.size, bool)
    change[1:] = (cls[1:] != cls[:-1]) | (rseg[1:] != rseg[:-1])
    group = np.cumsum(change) - 1
    gfirst = np.flatnonzero(change)
    glen = np.add.reduceat(lengths, gfirst)
    gcls = cls[gfirst]
    grow = rseg[gfirst]
    gstart = starts[gfirst]
    n = gfirst.size
    prev_ok = np.zeros(n, bool)
    prev_ok[1:] = (grow[1:] == grow[:-1]) & (gcls[:-1] >= 0)
    next_ok = np.zeros(n, bool)
    next_ok[:-1] = grow[1:] == grow[:-1]
    complete = (gcls >= 0) & prev_ok & next_ok
    period = np.repeat(group, lengths)
    elapsed = np.arange(flat.size) - gstart[period]
    period = np.where(gcls[period] >= 0, period, -1)
    return {"start": gstart, "length": glen, "cls": gcls, "row": grow, "complete": complete,
            "period": period, "elapsed": elapsed, "shape": (b, t)}


def _hat_weights(pos, nbins):
    """Lower bin index and the weights of the two neighbouring bins for fractional positions ``pos``."""
    j = np.floor(pos).astype(np.int64)
    frac = pos - j
    return j, 1.0 - frac, frac


def soft_histogram_np(levels, h: float, tres: float, bins: SoftBins, n_levels: int = 2, by_time: bool = False):
    """``F`` (B, n_levels, nbins): soft log-binned counts of complete resolved periods at each level.

    ``levels`` (B, T): number of open channels at each grid point (0/1 for one channel: shut/open).
    ``by_time=True`` returns ``C`` (B, n_levels, nbins, T) instead, each period's contribution placed
    at the grid point where it is known to be complete (its last point plus the resolution, when the
    next resolved period has begun), so that ``F = C.sum(-1)``; the score-function estimator uses it
    to weight each period by the path likelihood up to that point only.
    """
    levels = np.asarray(levels)
    b, t = levels.shape
    m = max(1, int(np.ceil(tres / h - 1e-9)))
    p = grid_periods(levels, m)
    out = np.zeros((b, n_levels, bins.size, t) if by_time else (b, n_levels, bins.size))
    sel = np.flatnonzero(p["complete"])
    if sel.size:
        length = p["length"][sel]
        pos = bins.position(np.log10(length * h))
        j, w0, w1 = _hat_weights(pos, bins.size)
        # a period of n points fits completely in a window of t points at t - n positions: weighting it by
        # t / (t - n) undoes that censoring (for a stationary record), so long periods count as they should
        ht = t / np.maximum(t - length, 1)
        w0, w1 = w0 * ht, w1 * ht
        rows, cls = p["row"][sel], p["cls"][sel]
        known = np.minimum(p["start"][sel] - rows * t + length - 1 + m, t - 1)
        for jj, ww in ((j, w0), (j + 1, w1)):
            ok = (jj >= 0) & (jj < bins.size)
            if by_time:
                np.add.at(out, (rows[ok], cls[ok], jj[ok], known[ok]), ww[ok])
            else:
                np.add.at(out, (rows[ok], cls[ok], jj[ok]), ww[ok])
    return out


def sample_record(record, h: float, samples: int, *, offset: float = 0.0, max_windows: int | None = None):
    """Cut a record (intervals) into windows of ``samples`` grid points with spacing ``h`` (ms).

    Grid times are ``offset + k h``; a window is kept only if no unusable interval overlaps it; with
    ``max_windows``, that many windows spread evenly over the record. Returns levels (W, samples) int8
    (the number of open channels; a ``.scn`` record has levels 0 and 1).
    """
    d = np.asarray(record.durations, dtype=np.float64)
    ends = np.cumsum(d)
    total = ends[-1]
    span = samples * h
    n_win = int((total - offset) // span)
    # unusable coverage: windows overlapping an unusable interval are dropped
    bad_starts = (ends - d)[record.unusable]
    bad_ends = ends[record.unusable]
    w_lo = offset + np.arange(n_win) * span
    w_hi = w_lo + span
    k0 = np.searchsorted(bad_ends, w_lo, side="right")
    if bad_starts.size:
        good = ~((k0 < bad_starts.size) & (bad_starts[np.minimum(k0, bad_starts.size - 1)] < w_hi))
        w_lo = w_lo[good]
    if max_windows is not None and w_lo.size > max_windows:  # spread the windows over the record
        w_lo = w_lo[np.linspace(0, w_lo.size - 1, max_windows).round().astype(np.int64)]
    n_win = w_lo.size
    keep = np.arange(n_win)
    out = np.zeros((keep.size, samples), np.int8)
    opened = np.asarray(record.levels).astype(np.int8)
    chunk = max(1, 2_000_000 // samples)
    for c in range(0, keep.size, chunk):
        ws = keep[c:c + chunk]
        times = w_lo[ws][:, None] + h * np.arange(samples)[None, :]
        idx = np.searchsorted(ends, times, side="right")
        out[c:c + chunk] = opened[np.minimum(idx, d.size - 1)]
    return out
