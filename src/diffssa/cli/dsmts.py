"""``diffssa dsmts``: SBML Discrete Stochastic Model Test Suite cases, as a report or one JSON object."""

from __future__ import annotations

from .. import __version__
from .arguments import BudgetExhausted
from .output import strict_json

__all__ = ["cmd_dsmts"]


def cmd_dsmts(args) -> int:
    """Run the case folders ``args.cases``; exit status 0 when every case passed, 1 otherwise."""
    from ..reference.dsmts import format_report, run_conformance
    from ..simulation.problems import SimulationBudgetError

    if args.runs < 2:
        raise ValueError(f"--runs: the suite's criterion needs at least 2 runs, got {args.runs}")
    try:
        results = run_conformance(args.cases, runs=args.runs, seed=args.seed)
    except SimulationBudgetError as err:
        raise BudgetExhausted(f"{err} (the dsmts budget is 10x the expected events + 10,000)") from None
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
