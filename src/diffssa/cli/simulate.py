"""``diffssa simulate``: trajectories of a model at output times; mean and SD per species to CSV, optionally
every trajectory (CSV or NPZ) and a plot."""

from __future__ import annotations

import math
import sys

import numpy as np

from .arguments import BudgetExhausted
from .output import (
    check_outputs,
    check_sizes,
    plot_summary,
    write_summary_csv,
    write_trajectories,
)
from .runs import load, metadata, parse_params, simulate_in_batches

__all__ = ["cmd_simulate"]


def parse_times(text: str) -> np.ndarray:
    """``--times 0,0.5,2,10``: finite, non-negative, non-decreasing; (T,) float32."""
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--times: {item.strip()!r} is not a number") from None
        if not (math.isfinite(value) and math.isfinite(np.float32(value))) or value < 0:
            raise ValueError(f"--times: {item.strip()!r} is not a finite non-negative time")
        if values and value < values[-1]:
            raise ValueError(f"--times: {item.strip()!r} comes after {values[-1]:g}: times must be non-decreasing")
        values.append(value)
    return np.asarray(values, dtype=np.float32)


def output_times(args) -> tuple[int, str, object]:
    """The grid of ``simulate``, from ``--times``, or ``--t-end`` and ``--points``: (number of times, the
    option to name in a size error, a function that builds it), checked but not built (it may be huge)."""
    from ..simulation.trajectories import time_grid

    if args.times is not None:
        if args.t_end is not None or args.points is not None:
            raise ValueError("--times cannot be combined with --t-end/--points: give one or the other")
        times = parse_times(args.times)
        return len(times), "--times", lambda: times
    if args.t_end is None or args.points is None:
        raise ValueError("give --t-end and --points (times 0..T in equal steps), or --times t0,t1,...")
    try:
        time_grid(args.t_end, 1)
    except ValueError as err:
        raise ValueError(f"--t-end: {err}") from None
    return args.points + 1, "--points", lambda: time_grid(args.t_end, args.points)


def cmd_simulate(args) -> int:
    """Check the inputs and output paths, simulate, write the outputs; exit status."""
    params = parse_params(args.param)
    n_times, times_option, grid = output_times(args)
    outputs = {"--out": args.out, "--plot": args.plot, "--trajectories": args.trajectories}
    check_outputs(outputs)
    network = load(args.model, params, args.scale)
    columns = len(network.state_names) + len(network.observables)
    check_sizes(args.runs, n_times, columns, args.trajectories, times_option)
    times = grid()
    result = simulate_in_batches(network, times, args.runs, args.seed, args.max_steps, args.method, "ignore",
                                 args.precision)
    exhausted = int(np.sum(result.exhausted))
    if exhausted and not args.allow_exhausted:
        raise BudgetExhausted(f"{exhausted} of {args.runs} trajectories ran out of the step budget (--max-steps "
                              f"{args.max_steps}) before time {float(times[-1]):g}; nothing written. Raise "
                              "--max-steps, or pass --allow-exhausted to write the output with blank cells")
    meta = metadata(args, "simulate", network, params, method=args.method, precision=str(result.states.dtype))
    if exhausted:
        meta["exhausted"] = f"{exhausted} of {args.runs} trajectories ran out of --max-steps (blank cells)"
    write_summary_csv(args.out, result, meta)
    if args.trajectories:
        write_trajectories(args.trajectories, result, meta, len(network.species))
    if args.plot:
        plot_summary(result, args.plot, args.samples)
    if exhausted:
        print(f"diffssa: warning: {meta['exhausted']}: their rows after the last reached time are blank "
              "(raise --max-steps)", file=sys.stderr)
    written = ", ".join(p for p in outputs.values() if p)
    print(f"wrote {written}: {len(times)} times x {len(result.species)} species, {args.runs} runs", file=sys.stderr)
    return 0
