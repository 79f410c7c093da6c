"""The ``diffssa`` command line: simulate, differentiate, check conformance, reproduce the paper.

Every command reads a model file (the reaction language ``.rxn`` or SBML ``.xml``/``.sbml``), takes an
explicit ``--seed`` (any integer in [-2**63, 2**64): all 64 bits count, negative seeds are read as
two's complement), and checks its input and output paths before simulating. Exit status: 0 success;
1 ``dsmts``: some case failed; 2 bad input, with a one-line message ``diffssa: error: ...`` naming the
item; 3 trajectories ran out of the step budget (``--max-steps``; ``simulate --allow-exhausted`` writes
the output anyway, with a warning). Output writers and size limits: :mod:`diffssa.cli_output`.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .cli_output import (
    check_outputs,
    check_sizes,
    plot_summary,
    strict_json,
    write_summary_csv,
    write_trajectories,
)
from .devices import use_cpu_cores

__all__ = ["EXIT_BUDGET", "main"]

EXAMPLES = """examples:
  diffssa simulate examples/dimerization.rxn --t-end 50 --points 50 --runs 10000 --seed 1 --out dimer.csv --plot dimer.png
  diffssa simulate examples/dimerization.rxn --times 0,0.5,2,10 --runs 100 --seed 1 --out d.csv --trajectories d.npz
  diffssa gradient examples/dimerization.rxn --t-end 20 --runs 20000 --seed 1 --species P --wrt k1,k2 --json
  diffssa dsmts ../shared/dsmts/00001 --runs 10000 --seed 1
  diffssa reproduce dimerization --out dimerization.png
  diffssa demo --out demo-output

exit status: 0 ok, 1 dsmts case failed, 2 bad input, 3 step budget ran out (--max-steps)
"""

SIMULATION_BATCH = 10_000  # trajectories per compiled call; results depend only on --seed
EXIT_BUDGET = 3  # some trajectories ran out of --max-steps


class _BudgetExhausted(Exception):
    """Trajectories ran out of the step budget: exit status ``EXIT_BUDGET`` with this message."""


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line ``diffssa: error: ...``, status 2."""

    def error(self, message):
        self.exit(2, f"diffssa: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not -(2**63) <= seed < 2**64:
        raise argparse.ArgumentTypeError(f"{seed} does not fit in 64 bits (use 0 <= seed < 2**64)")
    return seed


def _positive_int(text: str, least: int = 1) -> int:
    kind = "positive" if least == 1 else "non-negative"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {value}")
    return value


def _count(text: str) -> int:
    return _positive_int(text, least=0)


def _parse_params(items: list[str]) -> dict[str, float]:
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param {name.strip()}: {value!r} is not a number") from None
    return params


def _parse_times(text: str) -> np.ndarray:
    """``--times 0,0.5,2,10``: finite, non-negative, non-decreasing."""
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


def _output_times(args) -> tuple[int, str, object]:
    """The grid of ``simulate``, from ``--times``, or ``--t-end`` and ``--points``: (number of times, the
    option to name in a size error, a function that builds it), checked but not built (it may be huge)."""
    from .simulation.trajectories import time_grid

    if args.times is not None:
        if args.t_end is not None or args.points is not None:
            raise ValueError("--times cannot be combined with --t-end/--points: give one or the other")
        times = _parse_times(args.times)
        return len(times), "--times", lambda: times
    if args.t_end is None or args.points is None:
        raise ValueError("give --t-end and --points (times 0..T in equal steps), or --times t0,t1,...")
    try:
        time_grid(args.t_end, 1)
    except ValueError as err:
        raise ValueError(f"--t-end: {err}") from None
    return args.points + 1, "--points", lambda: time_grid(args.t_end, args.points)


def _scale(text: str):
    """``--scale``: a positive number or ``avogadro``."""
    if text == "avogadro":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'avogadro', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number or 'avogadro', got {text!r}")
    return value


def _load(path: str, params: dict[str, float], scale=None):
    from .io.language import load_network

    network = load_network(path, scale)
    try:
        network.check_parameter_names(params)
    except ValueError as err:
        raise ValueError(f"--param: {err}") from None
    return network.with_parameters(**params) if params else network


def _metadata(args, command: str, network, overrides, **extra) -> dict:
    """Provenance of an output: version, command, model, all parameter values (overrides listed), seed..."""
    return {"diffssa_version": __version__, "command": command, "model": args.model,
            "parameters": {k: float(v) for k, v in network.parameters.items()}, "overridden": sorted(overrides),
            "seed": args.seed, "runs": args.runs, "max_steps": args.max_steps,
            **({"scale": args.scale} if args.scale is not None else {}), **extra}


def _simulate_in_batches(network, times, runs, seed, max_steps, method="direct", on_exhausted="raise",
                         precision="auto"):
    from .simulation.batches import simulate_batches
    from .simulation.trajectories import Trajectories

    return Trajectories.concatenate(list(simulate_batches(
        network, times, key=seed, runs=runs, batch_size=SIMULATION_BATCH, progress=runs > SIMULATION_BATCH,
        max_steps=max_steps, method=method, on_exhausted=on_exhausted, precision=precision)))


def cmd_simulate(args) -> int:
    params = _parse_params(args.param)
    n_times, times_option, grid = _output_times(args)
    outputs = {"--out": args.out, "--plot": args.plot, "--trajectories": args.trajectories}
    check_outputs(outputs)
    network = _load(args.model, params, args.scale)
    columns = len(network.state_names) + len(network.observables)
    check_sizes(args.runs, n_times, columns, args.trajectories, times_option)
    times = grid()
    result = _simulate_in_batches(network, times, args.runs, args.seed, args.max_steps, args.method, "ignore",
                                  args.precision)
    exhausted = int(np.sum(result.exhausted))
    if exhausted and not args.allow_exhausted:
        raise _BudgetExhausted(f"{exhausted} of {args.runs} trajectories ran out of the step budget (--max-steps "
                               f"{args.max_steps}) before time {float(times[-1]):g}; nothing written. Raise "
                               "--max-steps, or pass --allow-exhausted to write the output with blank cells")
    meta = _metadata(args, "simulate", network, params, method=args.method, precision=str(result.states.dtype))
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


def cmd_gradient(args) -> int:
    from .simulation.problems import SimulationBudgetError

    params = _parse_params(args.param)
    network = _load(args.model, params, args.scale)
    wrt = [w.strip() for w in args.wrt.split(",") if w.strip()]
    if not wrt:
        raise ValueError("--wrt needs at least one parameter name")
    try:
        network.check_species_name(args.species)
    except ValueError as err:
        raise ValueError(f"--species: {err}") from None
    if not (math.isfinite(args.t_end) and args.t_end >= 0):
        raise ValueError(f"--t-end: must be finite and non-negative, got {args.t_end}")
    times = np.array([args.t_end], dtype=np.float32)
    try:
        with warnings.catch_warnings():  # one run: the standard errors are NaN (reported as null / n/a)
            warnings.filterwarnings("ignore", "Degrees of freedom", RuntimeWarning)
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            out = _gradient(args, network, times, wrt)
    except SimulationBudgetError as err:
        message = str(err).replace("Raise max_steps.", "").strip()
        raise _BudgetExhausted(f"{message} Raise --max-steps (now {args.max_steps}).") from None
    method = "next-reaction" if args.estimator == "finite-difference" else "direct"  # FD: coupled channels
    out.update(_metadata(args, "gradient", network, params, method=method, species=args.species, t_end=args.t_end))
    if args.json:
        print(strict_json(out))
        return 0
    print(f"E[{args.species}({args.t_end:g})] = {out['value']:.6g}   (estimator: {out['estimator']}, "
          f"{'unbiased' if out['unbiased'] else 'biased'})")
    for w in wrt:
        se = out["stderr"][w]
        print(f"  d/d{w} = {out['gradient'][w]:.6g} ± " + (f"{se:.2g}" if math.isfinite(se) else "n/a"))
    if args.runs < 2:
        print("  (no standard error: it needs at least 2 runs)")
    if out["check"]:
        print(f"  check: {out['check']}")
    print(f"  (model {args.model}, seed {args.seed}, {args.runs} runs, max-steps {args.max_steps}, "
          f"diffssa {__version__})")
    return 0


def _gradient(args, network, times, wrt) -> dict:
    if args.estimator == "finite-difference":
        from .reference.finite_differences import finite_difference_gradient

        index = network.species_names.index(args.species)
        fd = finite_difference_gradient(
            network, times, lambda states: states[:, -1, index], wrt, key=args.seed, runs=args.runs,
            max_steps=args.max_steps,
        )
        value = _simulate_in_batches(network, times, args.runs, args.seed, args.max_steps)[args.species][:, -1]
        return {"value": float(np.mean(value)), "gradient": {w: float(fd[w].gradient) for w in wrt},
                "stderr": {w: float(fd[w].stderr) for w in wrt}, "estimator": "finite-difference",
                "unbiased": False, "check": None}
    from .gradients import estimate_gradient

    name = "thinning" if args.estimator == "straight-through" else args.estimator
    est = estimate_gradient(network, times, args.species, wrt, key=args.seed, runs=args.runs,
                            estimator=name, max_steps=args.max_steps)
    return {"value": float(est.value[-1]), "gradient": {w: float(est.gradient[w][-1]) for w in wrt},
            "stderr": {w: float(est.stderr[w][-1]) for w in wrt}, "estimator": est.estimator,
            "unbiased": est.unbiased, "check": est.check}


def cmd_demo(args) -> int:
    from .applications.dimerization import fit_dimerization, plot_fit

    print("diffssa demo: fitting the two rates of 2P <-> P2 (P0 = 100) to its exact master-equation "
          "mean and SD, starting 10x off, by gradient descent through the exact simulator.", file=sys.stderr)
    results = fit_dimerization(runs=args.runs, steps=args.steps, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_fit(results, out / "dimerization-fit.png")
    summary = {k: v for k, v in results.items() if not k.startswith("_")}
    (out / "dimerization-fit.json").write_text(strict_json(summary, indent=2) + "\n")
    print(f"true k1 = 0.001, fitted {summary['k1']:.6g} ({summary['k1_rel_error']:.2%} off); "
          f"true k2 = 0.01, fitted {summary['k2']:.6g} ({summary['k2_rel_error']:.2%} off)", file=sys.stderr)
    print(f"plot: {out / 'dimerization-fit.png'}", file=sys.stderr)
    print(strict_json(summary))
    return 0


def _standard_options(name: str, argv: list[str], extra=None) -> argparse.Namespace:
    p = _Parser(prog=f"diffssa reproduce {name}")
    if extra:
        extra(p)
    p.add_argument("--out", default=f"reproduce-{name}.png", help="figure path (PNG)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="(accepted: the last line is always JSON)")
    args = p.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return args


def _reproduce_dimerization(argv: list[str]) -> dict:
    from .applications.dimerization import fit_dimerization, plot_fit

    args = _standard_options("dimerization", argv)
    results = fit_dimerization(runs=2000, steps=150, polish_runs=10_000, polish_steps=200, seed=args.seed,
                               progress=not args.quiet)
    plot_fit(results, args.out)
    print(f"figure: {args.out}", file=sys.stderr)
    return results


def _reproduce_oscillator(argv: list[str]) -> dict:
    from .applications.oscillator import reproduce

    def jacobian_option(p):
        p.add_argument("--jacobian", choices=["regression", "pairs"], default="regression",
                       help="regression on antithetic forward pairs (default) or the pairs estimator")

    args = _standard_options("oscillator", argv, jacobian_option)
    results = reproduce(args.out, seed=args.seed, progress=not args.quiet, jacobian=args.jacobian)
    print(f"figure: {args.out}", file=sys.stderr)
    return results


def _reproduce_mnist(argv: list[str]) -> dict:
    from .applications.mnist import reproduce

    return reproduce(argv)


def _reproduce_ionchannel(argv: list[str]) -> None:
    from .applications.ionchannel.cli import add_reproduce_arguments, reproduce

    parser = _Parser(prog="diffssa reproduce ionchannel")
    add_reproduce_arguments(parser)
    reproduce(parser.parse_args(argv))  # prints its own JSON line


REPRODUCTIONS = {
    "dimerization": (_reproduce_dimerization, "2P <-> P2: recover k1, k2 from exact moments (goal <= 0.09% each)"),
    "oscillator": (_reproduce_oscillator, "Vilar-Kueh-Barkai-Leibler oscillator: recover its rates (goal <= 1.2%)"),
    "mnist": (_reproduce_mnist, "784-256-10 gene regulatory network on MNIST: --train [--config small|full] "
                                "[--resume CKPT] | --evaluate CKPT --json"),
    "ionchannel": (_reproduce_ionchannel, "glycine receptor gating fitted to single-channel records (--json)"),
}


def cmd_reproduce(args) -> int:
    run, _ = REPRODUCTIONS[args.name]
    results = run(args.options)
    if results is not None:
        print(strict_json({k: v for k, v in results.items() if not k.startswith("_")}))
    return 0


def cmd_ionchannel(args) -> int:
    from .applications.ionchannel.cli import add_predict_arguments, predict

    parser = _Parser(prog="diffssa ionchannel predict")
    add_predict_arguments(parser)
    return predict(parser.parse_args(args.options))  # prints {"r2_open": ..., "r2_shut": ...}


def cmd_dsmts(args) -> int:
    from .reference.dsmts import format_report, run_conformance
    from .simulation.problems import SimulationBudgetError

    if args.runs < 2:
        raise ValueError(f"--runs: the suite's criterion needs at least 2 runs, got {args.runs}")
    try:
        results = run_conformance(args.cases, runs=args.runs, seed=args.seed)
    except SimulationBudgetError as err:
        raise _BudgetExhausted(f"{err} (the dsmts budget is 10x the expected events + 10,000)") from None
    if args.json:
        cases = [{"case": r.case_id, "folder": d, "passed": r.passed, "worst_z": r.worst_z, "worst_sd": r.worst_y,
                  "retried": r.retried, "tries": [{"seed": a.seed, "passed": a.passed, "worst_z": a.worst_z,
                                                   "worst_sd": a.worst_y} for a in r.attempts]}
                 for r, d in zip(results, args.cases)]
        passed = sum(r.passed for r in results)
        print(strict_json({"cases": cases, "passed": passed, "failed": len(results) - passed,
                           "diffssa_version": __version__, "command": "dsmts", "seed": args.seed,
                           "runs": args.runs, "method": "direct"}))
    else:
        print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffssa",
        description="Exact stochastic simulation of reaction networks, with gradients, in JAX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(p):
        p.add_argument("model", help="model file: reaction language (.rxn) or SBML (.xml, .sbml)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a parameter (repeatable)")
        p.add_argument("--runs", type=_positive_int, default=10_000, help="number of trajectories (default 10000)")
        p.add_argument("--seed", type=_seed, default=0, help="random seed, 0 <= S < 2**64 (default 0)")
        p.add_argument("--max-steps", type=_positive_int, default=100_000,
                       help="event budget per trajectory; running out is exit status 3")
        p.add_argument("--scale", type=_scale, help="SBML only: molecules per unit of substance (a number, or "
                       "'avogadro' from the model's units); default: one unit is one molecule")

    p = sub.add_parser("simulate", help="simulate trajectories; write mean and SD per species to CSV")
    model_args(p)
    p.add_argument("--t-end", type=float, help="final time T (model time units); with --points")
    p.add_argument("--points", type=_positive_int, help="K intervals: K+1 rows for times 0..T")
    p.add_argument("--times", metavar="T0,T1,...", help="output times instead of --t-end/--points "
                   "(non-negative, non-decreasing)")
    p.add_argument("--out", required=True, help="CSV: '# ...' provenance lines, then time, <species>-mean, "
                   "<species>-sd")
    p.add_argument("--plot", help="optional PNG of mean ± SD and --samples trajectories")
    p.add_argument("--samples", type=_count, default=3, help="sample trajectories drawn in --plot (default 3)")
    p.add_argument("--trajectories", metavar="FILE", help="every trajectory: .csv (long: run,time,<species>) "
                   "or .npz (times, states (runs, times, species), exhausted, species, metadata)")
    p.add_argument("--allow-exhausted", action="store_true", help="write the outputs (blank cells, a warning) "
                   "when trajectories run out of --max-steps, instead of exit status 3")
    p.add_argument("--method", choices=("direct", "next-reaction"), default="direct",
                   help="exact algorithm: Gillespie's direct method (default) or the next-reaction method "
                        "(one random stream per reaction: runs with the same seed at different --param "
                        "values stay coupled)")
    p.add_argument("--precision", choices=("auto", "float32", "float64"), default="auto",
                   help="float type of the counts: float32 (exact below 2**24), float64 (exact below 2**53), or "
                        "auto (default: float64 when an initial count reaches 2**24)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("gradient", help="estimate E[X(T)] and its gradient in parameters; print JSON")
    model_args(p)
    p.add_argument("--t-end", type=float, required=True, help="observation time T")
    p.add_argument("--species", required=True, help="species X")
    p.add_argument("--wrt", required=True, help="comma-separated parameter names")
    p.add_argument("--estimator", default="auto",
                   choices=["auto", "pairs", "score-function", "finite-difference", "straight-through",
                            "thinning-gumbel", "direct", "direct-relaxed"],
                   help="auto (default: the unbiased pairs estimator, or the score function for models with "
                        "events), pairs, score-function (likelihood ratio: unbiased, noisier), finite-difference "
                        "(central, coupled by common reaction paths), straight-through (thinning clock + "
                        "propensity straight-through: biased on 0/1 gene copies, checked and warned), or a "
                        "comparison surrogate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_gradient, max_steps=10_000)

    p = sub.add_parser("dsmts", help="run SBML Discrete Stochastic Model Test Suite cases")
    p.add_argument("cases", nargs="+", help="case folders (NNNNN/ with *-sbml-l3v1.xml, *-settings.txt, *-results.csv)")
    p.add_argument("--runs", type=_positive_int, default=10_000, help="trajectories per case (default 10000)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed (default 0); a failing case is re-run with seed + 1")
    p.add_argument("--json", action="store_true", help="print one JSON object (cases, both tries, provenance)")
    p.set_defaults(func=cmd_dsmts)

    p = sub.add_parser("reproduce", help="reproduce a validation of the paper; ends with one JSON line",
                       description="\n".join(f"{k}: {v[1]}" for k, v in REPRODUCTIONS.items())
                       + "\n\noptions of dimerization and oscillator: --out FIG.png --seed S --quiet"
                       + "\n(diffssa reproduce NAME --help lists each one's options)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(REPRODUCTIONS), help="which validation")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the validation's own options")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("ionchannel", help="ion-channel tools: predict dwell-time densities of a record",
                       description="diffssa ionchannel predict --model FILE.json --record FILE.scn "
                                   "--concentration UM --json")
    p.add_argument("action", choices=["predict"])
    p.add_argument("options", nargs=argparse.REMAINDER, help="--model FILE.json --record FILE.scn --concentration UM")
    p.set_defaults(func=cmd_ionchannel)

    p = sub.add_parser("demo", help="fit dimerisation rates from exact moments, starting 10x off")
    p.add_argument("--out", default="demo-output", help="output folder for the plot and JSON")
    p.add_argument("--runs", type=_positive_int, default=2000, help="trajectories per iteration")
    p.add_argument("--steps", type=_positive_int, default=200, help="optimiser iterations")
    p.add_argument("--seed", type=_seed, default=0, help="random seed")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_cpu_cores()  # one JAX device per core: simulations split their batch over all of them
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help (0) or a bad option (2, message printed)
        return exit.code if isinstance(exit.code, int) else 0
    try:
        return args.func(args)
    except _BudgetExhausted as err:
        print(f"diffssa: error: {err}", file=sys.stderr)
        return EXIT_BUDGET
    except (ValueError, OSError) as err:
        print(f"diffssa: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit:  # a sub-parser's bad option (reproduce, ionchannel)
        return exit.code if isinstance(exit.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
