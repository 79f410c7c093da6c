"""Output writers of the command line: CSV with a provenance header, per-trajectory export, plots, strict JSON.

Every CSV the CLI writes starts with comment lines (``# ...``: the diffssa version, command, model path,
every parameter value with the ``--param`` overrides marked, seed, runs, max-steps, method); read them with
``pandas.read_csv(path, comment="#")`` (R: ``read.csv(path, comment.char = "#")``). JSON output is strict:
non-finite numbers are written as ``null``. CSV cells are written as pandas' ``to_csv`` writes them,
without needing pandas (:func:`diffssa.io.tables.write_csv`): counts as integers, blank for NaN.

Size limits (checked before anything is simulated):

* ``MAX_RECORDED_BYTES``: the recorded states, runs x times x species x 4 bytes, held in memory;
* ``MAX_CSV_BYTES``: the estimated size of the summary CSV (``--out``);
* ``MAX_TRAJECTORY_CSV_BYTES``: the estimated size of a per-trajectory CSV (``--trajectories x.csv``);
  beyond it, write ``.npz`` instead.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..io.tables import write_csv
from ..optional import pyplot, require

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_RECORDED_BYTES",
    "MAX_TRAJECTORY_CSV_BYTES",
    "check_outputs",
    "check_sizes",
    "check_writable",
    "header_lines",
    "plot_summary",
    "strict_json",
    "write_summary_csv",
    "write_trajectories",
]

MAX_RECORDED_BYTES = 2 * 2**30  # 2 GiB of recorded states (float32)
MAX_CSV_BYTES = 2**30  # 1 GiB summary CSV
MAX_TRAJECTORY_CSV_BYTES = 512 * 2**20  # 512 MiB per-trajectory CSV; .npz has no limit beyond MAX_RECORDED_BYTES
CSV_BYTES_PER_VALUE = 12  # estimate: a count or a time and its separator
TRAJECTORY_FORMATS = (".csv", ".npz")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def check_writable(path: str, option: str) -> None:
    """``ValueError`` naming ``option`` unless ``path`` can be written (its folder exists and is writable,
    and it is not a folder or a read-only file)."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ValueError(f"{option} {path}: is a folder, expected a file path")
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")


def check_outputs(outputs: dict[str, str | None]) -> None:
    """Every output path (option -> path or None) writable, no two the same file, ``--plot`` a format
    matplotlib writes (and matplotlib installed): ``ValueError`` naming the option otherwise."""
    seen = {}
    for option, path in outputs.items():
        if path is None:
            continue
        check_writable(path, option)
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ValueError(f"{option} {path}: the same file as {seen[resolved]}")
        seen[resolved] = option
    if outputs.get("--plot"):
        try:
            backend = require("matplotlib.backend_bases", "plot", "--plot")
        except ImportError as err:
            raise ValueError(str(err)) from None
        suffix = Path(outputs["--plot"]).suffix.lower().lstrip(".")
        formats = backend.FigureCanvasBase.get_supported_filetypes()
        if suffix not in formats:
            raise ValueError(f"--plot {outputs['--plot']}: unknown image format {suffix or '(no extension)'!r}; "
                             f"use one of {', '.join(sorted(formats))}")


def check_sizes(runs: int, n_times: int, n_species: int, trajectories: str | None, times_option: str) -> None:
    """Refuse, naming the options, outputs beyond the limits of the module docstring."""
    recorded = runs * n_times * n_species * 4
    if recorded > MAX_RECORDED_BYTES:
        raise ValueError(f"--runs {runs} x {n_times} times ({times_option}) x {n_species} species would record "
                         f"{_size(recorded)} (4 bytes per count), over the limit of {_size(MAX_RECORDED_BYTES)}: "
                         f"lower --runs or {times_option}")
    summary = n_times * (1 + 2 * n_species) * 2 * CSV_BYTES_PER_VALUE
    if summary > MAX_CSV_BYTES:
        raise ValueError(f"{times_option}: {n_times} times would make a summary CSV of about {_size(summary)}, over "
                         f"the limit of {_size(MAX_CSV_BYTES)}: use fewer times")
    if trajectories is not None:
        suffix = Path(trajectories).suffix.lower()
        if suffix not in TRAJECTORY_FORMATS:
            raise ValueError(f"--trajectories {trajectories}: unknown format {suffix or '(no extension)'!r}; "
                             "use .csv (long format run,time,<species>) or .npz")
        long_csv = runs * n_times * (2 + n_species) * CSV_BYTES_PER_VALUE
        if suffix == ".csv" and long_csv > MAX_TRAJECTORY_CSV_BYTES:
            raise ValueError(f"--trajectories {trajectories}: a CSV of {runs} runs x {n_times} times would be about "
                             f"{_size(long_csv)}, over the limit of {_size(MAX_TRAJECTORY_CSV_BYTES)}: "
                             "write .npz instead (same data, binary)")


def header_lines(meta: dict) -> list[str]:
    """``# key: value`` lines; ``meta["parameters"]`` (name -> value) with ``meta["overridden"]`` marked ``*``."""
    lines = []
    for key, value in meta.items():
        if key == "overridden":
            continue
        if key == "parameters":
            marked = [f"{k}={v!r}{'*' if k in meta.get('overridden', ()) else ''}" for k, v in value.items()]
            value = " ".join(marked) or "(none)"
            if meta.get("overridden"):
                value += "   (* set by --param)"
        lines.append(f"# {key}: {value}")
    return lines


def write_summary_csv(path, result, meta: dict) -> None:
    """``time, <name>-mean, <name>-sd`` for every species, variable and observable
    (:meth:`~diffssa.simulation.trajectories.Trajectories.summary_table`; SD with n - 1, 0 for a single run) after
    the header; a time some trajectory did not reach is blank (NaN)."""
    write_csv(path, result.summary_table(), header_lines(meta))


def write_trajectories(path, result, meta: dict, n_counts: int) -> None:
    """Every trajectory: ``.csv`` long format ``run,time,<species...>,<variables...>,<observables...>``
    (one row per run and time; the first ``n_counts`` columns are counts, written as integers; blank
    where the step budget ran out) or ``.npz`` (``times`` (T,), ``states`` (B, T, S), ``exhausted`` (B,),
    ``species`` (S,), ``observable_<name>`` (B, T), ``metadata``: the header as a JSON string)."""
    states = np.asarray(result.states)
    if Path(path).suffix.lower() == ".npz":
        observables = {f"observable_{o}": np.asarray(v) for o, v in result.observables.items()}
        with open(path, "wb") as f:  # np.savez would append .npz to a path that lacks it
            np.savez_compressed(f, times=np.asarray(result.times), states=states,
                                exhausted=np.asarray(result.exhausted), species=np.array(result.species),
                                metadata=np.array(json.dumps(_finite(meta), allow_nan=False)), **observables)
        return
    write_csv(path, result.long_table(), header_lines(meta), counts=result.species[:n_counts])


def plot_summary(result, path: str, samples: int = 3) -> None:
    """Mean ± SD per species, and ``samples`` trajectories (the first ones) as thin lines of the same colour."""
    plt = pyplot("--plot")
    states = np.asarray(result.states, dtype=np.float64)
    t = np.asarray(result.times)
    runs = states.shape[0]
    with warnings.catch_warnings():  # times no trajectory reached (--allow-exhausted): NaN, not drawn
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(states, axis=0)
        sd = np.nanstd(states, axis=0, ddof=1) if runs > 1 else np.zeros_like(mean)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, s in enumerate(result.species):
        (line,) = ax.plot(t, mean[:, i], label=s, lw=2)
        ax.fill_between(t, mean[:, i] - sd[:, i], mean[:, i] + sd[:, i], color=line.get_color(), alpha=0.2)
        for b in range(min(samples, runs)):
            ax.plot(t, states[b, :, i], color=line.get_color(), lw=0.6, alpha=0.6)
    shown = min(samples, runs)
    title = f"{runs} trajectories: mean ± SD" + (f", {shown} sample{'s' if shown > 1 else ''} (thin)" if shown else "")
    ax.set(xlabel="time", ylabel="molecules", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finite(obj):
    """``obj`` with non-finite floats replaced by None, NumPy scalars by Python ones (recursively)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def strict_json(obj, **kwargs) -> str:
    """Standard JSON (no NaN or Infinity: non-finite numbers are ``null``)."""
    return json.dumps(_finite(obj), allow_nan=False, **kwargs)
