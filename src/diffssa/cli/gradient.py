"""``diffssa gradient``: E[X(T)] of one species and its gradient in parameters, as text or one JSON object."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import __version__
from .arguments import BudgetExhausted
from .output import strict_json
from .runs import load, metadata, parse_params, simulate_in_batches

__all__ = ["cmd_gradient"]


def cmd_gradient(args) -> int:
    """Check the inputs, estimate, print the estimate with its provenance; exit status."""
    from ..simulation.problems import SimulationBudgetError

    params = parse_params(args.param)
    network = load(args.model, params, args.scale)
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
            out = estimate(args, network, times, wrt)
    except SimulationBudgetError as err:
        message = str(err).replace("Raise max_steps.", "").strip()
        raise BudgetExhausted(f"{message} Raise --max-steps (now {args.max_steps}).") from None
    method = "next-reaction" if args.estimator == "finite-difference" else "direct"  # FD: coupled channels
    out.update(metadata(args, "gradient", network, params, method=method, species=args.species, t_end=args.t_end))
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


def estimate(args, network, times, wrt) -> dict:
    """E[``args.species`` at ``times`` (1,)] and its gradient in ``wrt`` with ``args.estimator``: value,
    gradient and stderr (name -> float), estimator, unbiased, check."""
    if args.estimator == "finite-difference":
        from ..reference.finite_differences import finite_difference_gradient

        index = network.species_names.index(args.species)
        fd = finite_difference_gradient(
            network, times, lambda states: states[:, -1, index], wrt, key=args.seed, runs=args.runs,
            max_steps=args.max_steps,
        )
        value = simulate_in_batches(network, times, args.runs, args.seed, args.max_steps)[args.species][:, -1]
        return {"value": float(np.mean(value)), "gradient": {w: float(fd[w].gradient) for w in wrt},
                "stderr": {w: float(fd[w].stderr) for w in wrt}, "estimator": "finite-difference",
                "unbiased": False, "check": None}
    from ..gradients import estimate_gradient

    name = "thinning" if args.estimator == "straight-through" else args.estimator
    est = estimate_gradient(network, times, args.species, wrt, key=args.seed, runs=args.runs,
                            estimator=name, max_steps=args.max_steps)
    return {"value": float(est.value[-1]), "gradient": {w: float(est.gradient[w][-1]) for w in wrt},
            "stderr": {w: float(est.stderr[w][-1]) for w in wrt}, "estimator": est.estimator,
            "unbiased": est.unbiased, "check": est.check}
