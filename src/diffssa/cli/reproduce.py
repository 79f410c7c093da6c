"""``diffssa reproduce NAME``, ``diffssa demo`` and ``diffssa ionchannel``: hand over to the paper's
validations (:mod:`diffssa.applications`), each with its own options; results as one JSON line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .arguments import Parser, seed
from .output import strict_json

__all__ = ["REPRODUCTIONS", "cmd_demo", "cmd_ionchannel", "cmd_reproduce"]


def cmd_demo(args) -> int:
    """Fit the dimerisation rates from 10x off; plot and JSON in ``args.out``, the JSON also on stdout."""
    from ..applications.dimerization import fit_dimerization, plot_fit

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
    """``--out FIG.png --seed S --quiet --json`` (and ``extra(parser)``'s) of ``reproduce name``; makes
    the figure's folder."""
    p = Parser(prog=f"diffssa reproduce {name}")
    if extra:
        extra(p)
    p.add_argument("--out", default=f"reproduce-{name}.png", help="figure path (PNG)")
    p.add_argument("--seed", type=seed, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="(accepted: the last line is always JSON)")
    args = p.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return args


def _reproduce_dimerization(argv: list[str]) -> dict:
    from ..applications.dimerization import fit_dimerization, plot_fit

    args = _standard_options("dimerization", argv)
    results = fit_dimerization(runs=2000, steps=150, polish_runs=10_000, polish_steps=200, seed=args.seed,
                               progress=not args.quiet)
    plot_fit(results, args.out)
    print(f"figure: {args.out}", file=sys.stderr)
    return results


def _reproduce_oscillator(argv: list[str]) -> dict:
    from ..applications.oscillator import reproduce

    def jacobian_option(p):
        p.add_argument("--jacobian", choices=["regression", "pairs"], default="regression",
                       help="regression on antithetic forward pairs (default) or the pairs estimator")

    args = _standard_options("oscillator", argv, jacobian_option)
    results = reproduce(args.out, seed=args.seed, progress=not args.quiet, jacobian=args.jacobian)
    print(f"figure: {args.out}", file=sys.stderr)
    return results


def _reproduce_mnist(argv: list[str]) -> dict:
    from ..applications.mnist import reproduce

    return reproduce(argv)


def _reproduce_ionchannel(argv: list[str]) -> None:
    from ..applications.ionchannel.cli import add_reproduce_arguments, reproduce

    parser = Parser(prog="diffssa reproduce ionchannel")
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
    """Run validation ``args.name`` with its own options ``args.options``; its results as one JSON line."""
    run, _ = REPRODUCTIONS[args.name]
    results = run(args.options)
    if results is not None:
        print(strict_json({k: v for k, v in results.items() if not k.startswith("_")}))
    return 0


def cmd_ionchannel(args) -> int:
    """``ionchannel predict`` with its own options ``args.options``; its exit status."""
    from ..applications.ionchannel.cli import add_predict_arguments, predict

    parser = Parser(prog="diffssa ionchannel predict")
    add_predict_arguments(parser)
    return predict(parser.parse_args(args.options))  # prints {"r2_open": ..., "r2_shut": ...}
