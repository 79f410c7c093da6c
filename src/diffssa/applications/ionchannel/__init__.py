"""Ion-channel gating: single-channel records, Q-matrix dwell-time densities, fits through the simulator.

* :mod:`.records`: read idealised SCAN ``.scn`` records and raw ``.abf`` current traces, idealise a raw
  trace by half-amplitude threshold crossing, impose a time resolution ``tres`` (HJC convention),
  log-binned dwell-time densities and the R^2 between observed and predicted densities.
* :mod:`.qmatrix`: exact dwell-time densities of a gating scheme from its Q-matrix: ideal (no missed
  events) and HJC (exact for ``t < 3 tres``, asymptotic beyond) with the same resolution imposed.
* :mod:`.models`: gating schemes as reaction networks (one species per channel state, the count is the
  number of channels in that state; binding steps proportional to the agonist concentration).
* :mod:`.gridstats`, :mod:`.targets`, :mod:`.loss`, :mod:`.optimise`: the simulation-based fit (gradient
  descent through the exact simulator): the windowed statistic, the scales and records it compares, the
  loss and its score-function gradient, the optimiser (Adam through :func:`diffssa.fitting.fit`).
* :mod:`.reports`: R^2 of exact HJC and simulated densities against records; :mod:`.simulated`: long
  simulated records; :mod:`.reference`: the Q-matrix (least-squares) reference fit.
* :mod:`.reproduce` (the GlyR and two-channel runs), :mod:`.plots`; :mod:`.cli`: ``reproduce(args)`` and
  ``predict(args)`` for the command line.
"""

from .records import (
    DwellSet,
    Record,
    ResolvedRecord,
    idealise,
    impose_resolution,
    log_binned_density,
    log_bins,
    r_squared,
    read_abf,
    read_scn,
    shared_dir,
)

__all__ = [
    "DwellSet",
    "Record",
    "ResolvedRecord",
    "idealise",
    "impose_resolution",
    "log_bins",
    "log_binned_density",
    "r_squared",
    "read_abf",
    "read_scn",
    "shared_dir",
]
