"""Single-channel records: reading, idealisation, time resolution, log-binned dwell-time densities.

Conventions (those of standard single-channel analysis, Colquhoun & Sigworth 1995):

* A record is a sequence of idealised intervals: a duration in **milliseconds** and a current level
  (0 = all channels shut, ``k`` = ``k`` channels open; an idealised ``.scn`` record has levels 0 and 1,
  sublevels being treated as open) and an *unusable* flag.
* **Time resolution** ``tres`` is imposed as in HJCFIT / DCPROGS (Hawkes, Jalali & Colquhoun 1990):
  an interval shorter than ``tres`` is unresolved and its duration is added to the preceding resolved
  interval; consecutive resolved intervals of the same level are then concatenated. Equivalently, the
  resolved level at any time is the level of the most recent interval of duration ``>= tres``. An
  unusable interval makes the resolved interval that contains it unusable. The first and last resolved
  intervals of a record (or of a simulated window) are censored and marked unusable. The same function
  is applied to data and to simulated records, so both are compared alike.
* **Log-binned densities**: bins equally spaced in ``log10 t`` from ``tres`` upwards (``per_decade`` bins
  per decade, 10 by default). The density of a bin is the fraction of the dwell times in the binned
  range that fall in it divided by its width in log10 units (so a density is "fraction per decade", the
  quantity whose square root is plotted against log time in the usual display).
* **R^2** between observed and predicted densities over the bins of a range:
  ``1 - sum (obs - pred)^2 / sum (obs - mean(obs))^2``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...optional import require

__all__ = [
    "Record",
    "ResolvedRecord",
    "DwellSet",
    "Trace",
    "shared_dir",
    "read_scn",
    "read_abf",
    "estimate_levels",
    "idealise",
    "record_from_grid",
    "record_from_segments",
    "impose_resolution",
    "log_bins",
    "log_binned_density",
    "r_squared",
    "SCN_VERSIONS",
]

SCN_VERSIONS = (103, 104)
UNUSABLE_BIT = 8


def shared_dir() -> Path:
    """The shared reference data folder: ``$DIFFSSA_SHARED`` if set, else ``../shared`` beside the repository."""
    env = os.environ.get("DIFFSSA_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[5] / "shared"


@dataclass(frozen=True)
class Record:
    """Idealised intervals of one record (or of a batch of simulated windows).

    durations: (n,) milliseconds. levels: (n,) int, number of open channels (0 = shut).
    unusable: (n,) bool. segment: (n,) int; intervals of different segments are never merged
    (independent simulated windows, or separate sweeps). source: a file name or a description.
    """

    durations: np.ndarray
    levels: np.ndarray
    unusable: np.ndarray
    segment: np.ndarray
    source: str = ""
    info: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.durations.shape[0])

    @property
    def total_time(self) -> float:
        """Total duration (ms)."""
        return float(np.sum(self.durations))


ResolvedRecord = Record  # a Record after impose_resolution (same fields)


@dataclass(frozen=True)
class DwellSet:
    """Usable resolved dwell times (ms) of one record, per level (0 = shut)."""

    by_level: dict[int, np.ndarray]
    tres: float
    source: str = ""

    @property
    def open(self) -> np.ndarray:
        """Dwell times at every open level (for a single-channel record: the open periods, level 1)."""
        return np.concatenate([v for k, v in sorted(self.by_level.items()) if k > 0] or [np.zeros(0)])

    @property
    def shut(self) -> np.ndarray:
        return self.by_level.get(0, np.zeros(0))


def _fail(path, message):
    raise ValueError(f"{path}: {message}")


def read_scn(path) -> Record:
    """Read an idealised SCAN record (``.scn``, versions 103 and 104).

    Layout (little-endian): int32 ``version``, ``ioffset``, ``n``; the data start at byte ``ioffset - 1``:
    ``n`` float32 durations (ms), ``n`` int16 amplitudes (0 = shut), ``n`` int8 property flags (bit value
    8 = unusable). Open intervals become level 1 whatever their amplitude (sublevels are openings).
    Negative or zero durations are marked unusable. Raises ``ValueError`` naming the file and the
    problem for a missing, truncated or corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    data = path.read_bytes()
    if len(data) < 12:
        _fail(path, f"truncated: {len(data)} bytes, a SCAN header needs at least 12")
    version, ioffset, n = struct.unpack("<3i", data[:12])
    if version not in SCN_VERSIONS:
        _fail(path, f"not a SCAN record: version {version} (expected one of {SCN_VERSIONS})")
    if n <= 0:
        _fail(path, f"corrupt header: number of intervals is {n}")
    if not 13 <= ioffset <= len(data):
        _fail(path, f"corrupt header: data offset {ioffset} outside the file ({len(data)} bytes)")
    start = ioffset - 1
    need = start + 7 * n
    if len(data) < need:
        _fail(path, f"truncated: the header promises {n} intervals ({need} bytes with the header), the file has {len(data)} bytes")
    durations = np.frombuffer(data, "<f4", n, start).astype(np.float64)
    amplitudes = np.frombuffer(data, "<i2", n, start + 4 * n).astype(np.int64)
    flags = np.frombuffer(data, "<i1", n, start + 6 * n).astype(np.int64)
    if not np.all(np.isfinite(durations)):
        bad = int(np.flatnonzero(~np.isfinite(durations))[0])
        _fail(path, f"corrupt data: interval {bad + 1} has a non-finite duration")
    title = data[12:82].split(b"\x00", 1)[0].decode("latin-1", "replace").strip()
    unusable = ((flags & UNUSABLE_BIT) != 0) | (durations <= 0)
    return Record(
        durations=durations,
        levels=(amplitudes != 0).astype(np.int64),
        unusable=unusable,
        segment=np.zeros(n, np.int64),
        source=str(path),
        info={"version": version, "title": title, "intervals": n, "amplitudes": amplitudes, "flags": flags},
    )


@dataclass(frozen=True)
class Trace:
    """A raw current trace: ``current`` (pA), sampling interval ``dt`` (ms)."""

    current: np.ndarray
    dt: float
    source: str = ""

    @property
    def duration(self) -> float:
        return self.current.size * self.dt


def read_abf(path, sweep: int = 0, channel: int = 0) -> Trace:
    """Read one sweep of a raw current trace in Axon Binary Format (with ``pyabf``, the ``ionchannel`` extra)."""
    path = Path(path)
    if not path.is_file():
        _fail(path, "no such file")
    pyabf = require("pyabf", "ionchannel", f"{path}: reading .abf files")
    try:
        abf = pyabf.ABF(str(path))
        abf.setSweep(sweep, channel=channel)
        current = np.asarray(abf.sweepY, dtype=np.float64)
        rate = float(abf.dataRate)
    except Exception as err:  # pyabf raises many kinds on corrupt input
        _fail(path, f"cannot read as an ABF file: {type(err).__name__}: {err}")
    if current.size < 2 or not rate > 0:
        _fail(path, "no samples in the sweep")
    if not np.all(np.isfinite(current)):
        _fail(path, "corrupt data: non-finite samples")
    return Trace(current=current, dt=1000.0 / rate, source=str(path))


def _histogram_peaks(x, bins=400, smooth=5):
    counts, edges = np.histogram(x, bins=bins)
    kernel = np.exp(-0.5 * (np.arange(-3 * smooth, 3 * smooth + 1) / smooth) ** 2)
    s = np.convolve(counts, kernel / kernel.sum(), mode="same")
    centres = 0.5 * (edges[1:] + edges[:-1])
    peaks = [i for i in range(1, bins - 1) if s[i] >= s[i - 1] and s[i] > s[i + 1]]
    return centres, s, peaks


def estimate_levels(current, open_levels: int = 1):
    """Closed level and unit amplitude (pA) of a raw trace from its all-points histogram.

    The closed level is the most populated peak; the unit amplitude is the distance to the most
    populated peak at least 5 noise SDs away from it (either sign). Returns ``(closed, amplitude)``.
    """
    x = np.asarray(current, dtype=np.float64)
    centres, s, peaks = _histogram_peaks(x)
    if not peaks:
        raise ValueError("no peak in the all-points histogram")
    closed_i = max(peaks, key=lambda i: s[i])
    closed = centres[closed_i]
    near = x[np.abs(x - closed) < 3 * (centres[1] - centres[0]) * 5]
    noise = float(np.std(x[np.abs(x - closed) < np.percentile(np.abs(x - closed), 30)])) or float(np.std(near))
    far = [i for i in peaks if abs(centres[i] - closed) > 5 * max(noise, 1e-12)]
    if not far:
        raise ValueError("no open level separated from the closed level in the all-points histogram")
    open_i = max(far, key=lambda i: s[i])
    # with several channels the largest far peak should be the single-open level; take the nearest
    # of the far peaks holding at least a fifth of its height, which guards against picking level 2.
    candidates = [i for i in far if s[i] >= 0.2 * s[open_i] and np.sign(centres[i] - closed) == np.sign(centres[open_i] - closed)]
    open_i = min(candidates, key=lambda i: abs(centres[i] - closed))
    # refine both by local means
    def refine(c, width):
        sel = np.abs(x - c) < width
        return float(np.mean(x[sel])) if np.any(sel) else c

    amp0 = centres[open_i] - closed
    closed = refine(closed, abs(amp0) / 4)
    opened = refine(closed + amp0, abs(amp0) / 4)
    return closed, opened - closed


def _runs(values, segment=None):
    """Run-length encoding: starts, lengths and values of runs of equal ``values`` (not crossing segments)."""
    values = np.asarray(values)
    n = values.shape[0]
    change = np.ones(n, bool)
    change[1:] = values[1:] != values[:-1]
    if segment is not None:
        change[1:] |= segment[1:] != segment[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, n))
    return starts, lengths, values[starts]


def idealise(trace: Trace, *, open_levels: int = 1, closed: float | None = None, amplitude: float | None = None) -> Record:
    """Idealise a raw trace by threshold crossing at half amplitude.

    Each sample gets the level ``round((I - closed) / amplitude)`` clipped to ``0..open_levels`` (so the
    thresholds lie half-way between consecutive levels); runs of equal level become intervals whose
    duration is the number of samples times the sampling interval. The first and last intervals are
    censored and marked unusable. ``closed`` and ``amplitude`` (pA) are estimated from the all-points
    histogram when not given (see :func:`estimate_levels`). No resolution is imposed here.
    """
    if closed is None or amplitude is None:
        c, a = estimate_levels(trace.current, open_levels)
        closed = c if closed is None else closed
        amplitude = a if amplitude is None else amplitude
    if not amplitude:
        raise ValueError(f"{trace.source}: zero unit amplitude")
    level = np.clip(np.rint((trace.current - closed) / amplitude), 0, open_levels).astype(np.int64)
    starts, lengths, values = _runs(level)
    unusable = np.zeros(starts.size, bool)
    unusable[0] = unusable[-1] = True
    return Record(
        durations=lengths * float(trace.dt),
        levels=values,
        unusable=unusable,
        segment=np.zeros(starts.size, np.int64),
        source=trace.source,
        info={"closed": float(closed), "amplitude": float(amplitude), "dt": float(trace.dt), "open_levels": open_levels},
    )


def record_from_segments(segments, dt: float, source: str = "simulation") -> Record:
    """Intervals from several independent level sequences sampled on a grid of spacing ``dt`` (ms).

    Each sequence is its own segment (first and last runs censored), as in :func:`record_from_grid`.
    """
    segments = [np.asarray(x) for x in segments if len(x)]
    if not segments:
        empty = np.zeros(0)
        return Record(empty, empty.astype(np.int64), empty.astype(bool), empty.astype(np.int64), source)
    flat = np.concatenate(segments)
    seg = np.repeat(np.arange(len(segments)), [len(x) for x in segments])
    starts, lengths, values = _runs(flat, seg)
    segment = seg[starts]
    first = np.ones(starts.size, bool)
    first[1:] = segment[1:] != segment[:-1]
    last = np.ones(starts.size, bool)
    last[:-1] = segment[1:] != segment[:-1]
    return Record(lengths * float(dt), values.astype(np.int64), first | last, segment, source)


def record_from_grid(levels, dt: float, source: str = "simulation") -> Record:
    """Intervals from levels sampled on a regular grid: ``levels`` (B, T) (one window per row), spacing ``dt`` (ms).

    Each row is a separate segment; its first and last runs are censored (unusable). A run of ``k``
    samples lasts ``k * dt`` (the expected length of a dwell that covers ``k`` grid points).
    """
    levels = np.asarray(levels)
    if levels.ndim == 1:
        levels = levels[None]
    b, t = levels.shape
    seg = np.repeat(np.arange(b), t)
    starts, lengths, values = _runs(levels.reshape(-1), seg)
    segment = seg[starts]
    unusable = np.zeros(starts.size, bool)
    first = np.ones(starts.size, bool)
    first[1:] = segment[1:] != segment[:-1]
    last = np.ones(starts.size, bool)
    last[:-1] = segment[1:] != segment[:-1]
    unusable |= first | last
    return Record(lengths * float(dt), values.astype(np.int64), unusable, segment, source)


def impose_resolution(record: Record, tres: float, *, binary: bool = True) -> Record:
    """Impose a time resolution ``tres`` (ms) in the HJC convention (see the module docstring).

    ``binary=True`` (single-channel analysis) merges all open levels into one class (level 1): open
    periods. ``binary=False`` keeps the levels (multi-channel records: a resolved interval is a dwell at
    one current level). Intervals before the first resolved interval of a segment are dropped; the
    first and last resolved intervals of each segment are marked unusable (censored).
    """
    if not tres >= 0:
        raise ValueError(f"tres must be non-negative, got {tres!r}")
    d = np.asarray(record.durations, dtype=np.float64)
    lev = np.asarray(record.levels)
    cls = (lev > 0).astype(np.int64) if binary else lev.astype(np.int64)
    seg = np.asarray(record.segment)
    bad = np.asarray(record.unusable, bool)
    if d.size == 0:
        return record
    # consecutive intervals of the same class are one sojourn (e.g. an open interval followed by an
    # open sublevel, or two states of the same class in a simulated record): join them first
    starts, _, _ = _runs(cls, seg)
    d = np.add.reduceat(d, starts)
    bad = np.logical_or.reduceat(bad, starts)
    cls, seg = cls[starts], seg[starts]
    n = d.size
    idx = np.arange(n)
    resolved = (d >= tres) & ~(bad & (d <= 0))
    last = np.maximum.accumulate(np.where(resolved, idx, -1))
    keep = (last >= 0)
    keep[keep] &= seg[last[keep]] == seg[keep]
    if not np.any(keep):
        empty = np.zeros(0)
        return Record(empty, empty.astype(np.int64), empty.astype(bool), empty.astype(np.int64), record.source, dict(record.info, tres=tres))
    d, bad, seg, last = d[keep], bad[keep], seg[keep], last[keep]
    r = cls[last]
    change = np.ones(d.size, bool)
    change[1:] = (r[1:] != r[:-1]) | (seg[1:] != seg[:-1])
    starts = np.flatnonzero(change)
    durations = np.add.reduceat(d, starts)
    unusable = np.logical_or.reduceat(bad, starts)
    segment = seg[starts]
    first = np.ones(starts.size, bool)
    first[1:] = segment[1:] != segment[:-1]
    lastr = np.ones(starts.size, bool)
    lastr[:-1] = segment[1:] != segment[:-1]
    unusable = unusable | first | lastr
    return Record(durations, r[starts], unusable, segment, record.source, dict(record.info, tres=tres))


def dwell_times(resolved: Record, tres: float | None = None) -> DwellSet:
    """Usable resolved dwell times by level."""
    ok = ~resolved.unusable
    levels = np.unique(resolved.levels)
    by = {int(k): resolved.durations[ok & (resolved.levels == k)] for k in levels}
    return DwellSet(by, float(resolved.info.get("tres", tres or 0.0)), resolved.source)


def log_bins(tres: float, tmax: float, per_decade: int = 10) -> np.ndarray:
    """Bin edges ``tres * 10**(k / per_decade)``, k = 0.., up to the first edge above ``tmax``."""
    if not (tres > 0 and tmax > tres):
        raise ValueError(f"need 0 < tres < tmax, got tres={tres}, tmax={tmax}")
    k = int(np.ceil(np.log10(tmax / tres) * per_decade - 1e-9))
    return tres * 10.0 ** (np.arange(k + 1) / per_decade)


def log_binned_density(durations, edges, weights=None) -> np.ndarray:
    """Fraction of the dwell times in ``[edges[0], edges[-1])`` falling in each bin, per log10 unit."""
    d = np.asarray(durations, dtype=np.float64)
    counts, _ = np.histogram(d, bins=edges, weights=weights)
    total = counts.sum()
    widths = np.diff(np.log10(edges))
    if total <= 0:
        return np.zeros(len(edges) - 1)
    return counts / total / widths


def r_squared(observed, predicted) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` of ``predicted`` against ``observed``."""
    o = np.asarray(observed, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    ss_tot = float(np.sum((o - o.mean()) ** 2))
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(np.sum((o - p) ** 2)) / ss_tot
