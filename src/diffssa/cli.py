"""The ``diffssa`` command line: simulate, differentiate, check conformance, reproduce the paper.

Every command reads a model file (the reaction language ``.rxn`` or SBML ``.xml``/``.sbml``), takes an
explicit ``--seed``, and exits with status 2 and a one-line message naming the problem on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .devices import use_cpu_cores

__all__ = ["main"]

EXAMPLES = """examples:
  diffssa simulate examples/dimerization.rxn --t-end 50 --points 50 --runs 10000 --seed 1 --out dimer.csv --plot dimer.png
  diffssa gradient examples/dimerization.rxn --t-end 20 --runs 20000 --seed 1 --species P --wrt k1,k2 --json
  diffssa dsmts ../shared/dsmts/00001 --runs 10000 --seed 1
  diffssa reproduce dimerization --out dimerization.png
  diffssa demo --out demo-output
"""

SIMULATION_BATCH = 10_000  # trajectories per compiled call; results depend only on --seed


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


def _load(path: str, params: dict[str, float]):
    from .language import load_network

    network = load_network(path)
    try:
        network.check_parameter_names(params)
    except ValueError as err:
        raise ValueError(f"--param: {err}") from None
    return network.with_parameters(**params) if params else network


def _simulate_in_batches(network, times, runs, seed, max_steps, method="direct"):
    import jax

    from tqdm.auto import tqdm

    from .simulate import Trajectories, simulate

    key = jax.random.PRNGKey(seed)
    parts, done, batch = [], 0, 0
    with tqdm(total=runs, desc="simulating", unit="traj", disable=runs <= SIMULATION_BATCH, leave=False) as bar:
        while done < runs:
            size = min(SIMULATION_BATCH, runs - done)
            parts.append(simulate(network, times, key=jax.random.fold_in(key, batch), runs=size, max_steps=max_steps,
                                  method=method))
            done, batch = done + size, batch + 1
            bar.update(size)
    return Trajectories(
        parts[0].times,
        np.concatenate([np.asarray(p.states) for p in parts]),
        np.concatenate([np.asarray(p.exhausted) for p in parts]),
        np.concatenate([np.asarray(p.events) for p in parts]),
        parts[0].species,
    )


def _plot_summary(result, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, sd, t = np.asarray(result.mean()), np.asarray(result.sd()), np.asarray(result.times)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, s in enumerate(result.species):
        ax.plot(t, mean[:, i], label=s)
        ax.fill_between(t, mean[:, i] - sd[:, i], mean[:, i] + sd[:, i], alpha=0.2)
    ax.set(xlabel="time", ylabel="molecules (mean ± SD)", title=f"{result.states.shape[0]} trajectories")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_simulate(args) -> int:
    from .simulate import time_grid

    network = _load(args.model, _parse_params(args.param))
    times = time_grid(args.t_end, args.points)
    result = _simulate_in_batches(network, times, args.runs, args.seed, args.max_steps, args.method)
    result.to_csv(args.out)
    if args.plot:
        _plot_summary(result, args.plot)
    print(f"wrote {args.out}: {len(times)} times x {len(result.species)} species, {args.runs} runs", file=sys.stderr)
    return 0


def cmd_gradient(args) -> int:
    network = _load(args.model, _parse_params(args.param))
    wrt = [w.strip() for w in args.wrt.split(",") if w.strip()]
    if not wrt:
        raise ValueError("--wrt needs at least one parameter name")
    try:
        network.check_species_name(args.species)
    except ValueError as err:
        raise ValueError(f"--species: {err}") from None
    times = np.array([args.t_end], dtype=np.float32)
    if args.estimator == "finite-difference":
        from .finite_differences import finite_difference_gradient

        index = network.species_names.index(args.species)
        fd = finite_difference_gradient(
            network, times, lambda states: states[:, -1, index], wrt, key=args.seed, runs=args.runs,
            max_steps=args.max_steps,
        )
        value = _simulate_in_batches(network, times, args.runs, args.seed, args.max_steps)[args.species][:, -1]
        out = {"value": float(np.mean(value)), "gradient": {w: float(fd[w].gradient) for w in wrt},
               "stderr": {w: float(fd[w].stderr) for w in wrt}, "estimator": "finite-difference",
               "unbiased": False, "check": None}
    else:
        from .gradients import estimate_gradient

        name = "thinning" if args.estimator == "straight-through" else args.estimator
        est = estimate_gradient(network, times, args.species, wrt, key=args.seed, runs=args.runs,
                                estimator=name, max_steps=args.max_steps)
        out = {"value": float(est.value[-1]), "gradient": {w: float(est.gradient[w][-1]) for w in wrt},
               "stderr": {w: float(est.stderr[w][-1]) for w in wrt}, "estimator": est.estimator,
               "unbiased": est.unbiased, "check": est.check}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"E[{args.species}({args.t_end:g})] = {out['value']:.6g}   (estimator: {out['estimator']}, "
              f"{'unbiased' if out['unbiased'] else 'biased'})")
        for w in wrt:
            print(f"  d/d{w} = {out['gradient'][w]:.6g} ± {out['stderr'][w]:.2g}")
        if out["check"]:
            print(f"  check: {out['check']}")
    return 0


def cmd_demo(args) -> int:
    from .applications.dimerization import fit_dimerization, plot_fit

    print("diffssa demo: fitting the two rates of 2P <-> P2 (P0 = 100) to its exact master-equation "
          "mean and SD, starting 10x off, by gradient descent through the exact simulator.", file=sys.stderr)
    results = fit_dimerization(runs=args.runs, steps=args.steps, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_fit(results, out / "dimerization-fit.png")
    summary = {k: v for k, v in results.items() if not k.startswith("_")}
    (out / "dimerization-fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"true k1 = 0.001, fitted {summary['k1']:.6g} ({summary['k1_rel_error']:.2%} off); "
          f"true k2 = 0.01, fitted {summary['k2']:.6g} ({summary['k2_rel_error']:.2%} off)", file=sys.stderr)
    print(f"plot: {out / 'dimerization-fit.png'}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def _standard_options(name: str, argv: list[str], extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"diffssa reproduce {name}")
    if extra:
        extra(p)
    p.add_argument("--out", default=f"reproduce-{name}.png", help="figure path (PNG)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
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
    from .ionchannel.cli import add_reproduce_arguments, reproduce

    parser = argparse.ArgumentParser(prog="diffssa reproduce ionchannel")
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
        print(json.dumps({k: v for k, v in results.items() if not k.startswith("_")}))
    return 0


def cmd_ionchannel(args) -> int:
    from .ionchannel.cli import add_predict_arguments, predict

    parser = argparse.ArgumentParser(prog="diffssa ionchannel predict")
    add_predict_arguments(parser)
    return predict(parser.parse_args(args.options))  # prints {"r2_open": ..., "r2_shut": ...}


def cmd_dsmts(args) -> int:
    from .dsmts import format_report, run_conformance

    results = run_conformance(args.cases, runs=args.runs, seed=args.seed)
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffssa",
        description="Exact stochastic simulation of reaction networks, with gradients, in JAX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(p):
        p.add_argument("model", help="model file: reaction language (.rxn) or SBML (.xml, .sbml)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a parameter (repeatable)")
        p.add_argument("--runs", type=int, default=10_000, help="number of trajectories (default 10000)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("--max-steps", type=int, default=100_000, help="event budget per trajectory")

    p = sub.add_parser("simulate", help="simulate trajectories; write mean and SD per species to CSV")
    model_args(p)
    p.add_argument("--t-end", type=float, required=True, help="final time T (model time units)")
    p.add_argument("--points", type=int, required=True, help="K intervals: K+1 rows for times 0..T")
    p.add_argument("--out", required=True, help="CSV: time, <species>-mean, <species>-sd")
    p.add_argument("--plot", help="optional PNG of mean ± SD")
    p.add_argument("--method", choices=("direct", "next-reaction"), default="direct",
                   help="exact algorithm: Gillespie's direct method (default) or the next-reaction method "
                        "(one random stream per reaction: runs with the same seed at different --param "
                        "values stay coupled)")
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
    p.add_argument("--runs", type=int, default=10_000, help="trajectories per case (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
    p.add_argument("--runs", type=int, default=2000, help="trajectories per iteration")
    p.add_argument("--steps", type=int, default=200, help="optimiser iterations")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_cpu_cores()  # one JAX device per core: simulations split their batch over all of them
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("runs", "points", "max_steps", "steps"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"diffssa: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
