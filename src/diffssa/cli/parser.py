"""The ``diffssa`` argument parser: its commands and their options."""

from __future__ import annotations

import argparse

from .arguments import Parser, count, positive_int, scale, seed
from .dsmts import cmd_dsmts
from .gradient import cmd_gradient
from .reproduce import REPRODUCTIONS, cmd_demo, cmd_ionchannel, cmd_reproduce
from .simulate import cmd_simulate

__all__ = ["build_parser"]

EXAMPLES = """examples:
  diffssa simulate examples/dimerization.rxn --t-end 50 --points 50 --runs 10000 --seed 1 --out dimer.csv --plot dimer.png
  diffssa simulate examples/dimerization.rxn --times 0,0.5,2,10 --runs 100 --seed 1 --out d.csv --trajectories d.npz
  diffssa gradient examples/dimerization.rxn --t-end 20 --runs 20000 --seed 1 --species P --wrt k1,k2 --json
  diffssa dsmts ../shared/dsmts/00001 --runs 10000 --seed 1
  diffssa reproduce dimerization --out dimerization.png
  diffssa demo --out demo-output

exit status: 0 ok, 1 dsmts case failed, 2 bad input, 3 step budget ran out (--max-steps)
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; a parsed command's ``func(args)`` runs it and returns the exit status."""
    parser = Parser(
        prog="diffssa",
        description="Exact stochastic simulation of reaction networks, with gradients, in JAX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(p):
        p.add_argument("model", help="model file: reaction language (.rxn) or SBML (.xml, .sbml)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a parameter (repeatable)")
        p.add_argument("--runs", type=positive_int, default=10_000, help="number of trajectories (default 10000)")
        p.add_argument("--seed", type=seed, default=0, help="random seed, 0 <= S < 2**64 (default 0)")
        p.add_argument("--max-steps", type=positive_int, default=100_000,
                       help="event budget per trajectory; running out is exit status 3")
        p.add_argument("--scale", type=scale, help="SBML only: molecules per unit of substance (a number, or "
                       "'avogadro' from the model's units); default: one unit is one molecule")

    p = sub.add_parser("simulate", help="simulate trajectories; write mean and SD per species to CSV")
    model_args(p)
    p.add_argument("--t-end", type=float, help="final time T (model time units); with --points")
    p.add_argument("--points", type=positive_int, help="K intervals: K+1 rows for times 0..T")
    p.add_argument("--times", metavar="T0,T1,...", help="output times instead of --t-end/--points "
                   "(non-negative, non-decreasing)")
    p.add_argument("--out", required=True, help="CSV: '# ...' provenance lines, then time, <species>-mean, "
                   "<species>-sd")
    p.add_argument("--plot", help="optional PNG of mean ± SD and --samples trajectories")
    p.add_argument("--samples", type=count, default=3, help="sample trajectories drawn in --plot (default 3)")
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
                        "propensity straight-through: biased, checked and warned), or a "
                        "comparison surrogate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_gradient, max_steps=10_000)

    p = sub.add_parser("dsmts", help="run SBML Discrete Stochastic Model Test Suite cases")
    p.add_argument("cases", nargs="+", help="case folders (NNNNN/ with *-sbml-l3v1.xml, *-settings.txt, *-results.csv)")
    p.add_argument("--runs", type=positive_int, default=10_000, help="trajectories per case (default 10000)")
    p.add_argument("--seed", type=seed, default=0,
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
    p.add_argument("--runs", type=positive_int, default=2000, help="trajectories per iteration")
    p.add_argument("--steps", type=positive_int, default=200, help="optimiser iterations")
    p.add_argument("--seed", type=seed, default=0, help="random seed")
    p.set_defaults(func=cmd_demo)
    return parser
