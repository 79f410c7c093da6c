"""Bias and noise of every gradient estimator against exact derivatives of E[X(t)].

Usage: python benchmarks/gradient_table.py [--runs 40000] [--seed 0] [--markdown FILE]
       python benchmarks/gradient_table.py --gene-circuits [--runs 40000] [--seed 0] [--markdown FILE]
       python benchmarks/gradient_table.py --oscillator [--runs 4000] [--seed 0] [--markdown FILE]
       python benchmarks/gradient_table.py --coupling [--runs 20000] [--oscillator-runs 1000] [--seed 0]
           [--markdown FILE]

Prints one JSON object: for each estimator, case, time and parameter, the estimate of
d E[X(t)] / d log(theta), the exact value (analytic, or the chemical master equation for
dimerisation), the relative bias with its standard error, and the per-trajectory SD relative to the
exact value (the estimator's noise: a gradient from n trajectories has relative SE = that / sqrt(n)).

``--gene-circuits``: the telegraph gene, negative autoregulation and a Hill toggle switch
(``examples/*.rxn``), every rate at t = 1 and 4, against the master equation.

``--oscillator``: the Vilar-Kueh-Barkai-Leibler oscillator (9 species, 16 reactions; no exact
solution), E[A(t)] at t = 1 h and 3 h (the first rise of the activator), against a reference of
central finite differences with common random numbers on ``OSCILLATOR_REFERENCE_RUNS`` trajectories
per side (h = 5% in each rate); the bias's standard error combines the estimate's and the reference's.

``--coupling``: standard errors of central finite differences (h = 5%, ``finite_difference_gradient``)
under its two couplings, ``method="direct"`` (event-indexed random numbers) and
``method="next-reaction"`` (common reaction paths), both with the same seed: d E[X(t)] / d theta for
immigration-death (t = 0.5, 10) and dimerisation (t = 2, 20), ``--runs`` pairs, against the master
equation; d E[A(t)], E[R(t)] / d log(theta) for the oscillator (t = 1, 3, 10, 20 h),
``--oscillator-runs`` pairs, no exact value. One row per (case, species, time, parameter).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from diffssa import (
    MassAction,
    PoissonPairs,
    Reaction,
    ReactionNetwork,
    ScoreFunction,
    Surrogate,
)
from diffssa.gradients import estimate_gradient
from diffssa.io.language import load_network
from diffssa.reference.cme import solve_cme
from diffssa.reference.finite_differences import finite_difference_gradient

PAIRS_LABEL = "pairs, 4 per reaction (default, unbiased)"
THINNING_LABEL = "thinning c=1.2 + propensity ST"
SCORE_LABEL = "score function (likelihood ratio, leave-one-out baseline)"
ESTIMATORS = {
    PAIRS_LABEL: PoissonPairs(per_reaction=4),
    THINNING_LABEL: Surrogate(clock_factor=1.2),
    "thinning c=1.5 + propensity ST": Surrogate(clock_factor=1.5),
    "thinning c=1.2 + Gumbel-softmax ST T=0.5": Surrogate(choice="gumbel-softmax", temperature=0.5),
    "thinning c=1.2 + Gumbel-softmax ST T=0.1": Surrogate(choice="gumbel-softmax", temperature=0.1),
    "direct + choice ST": Surrogate(clock="direct"),
    "direct + choice ST + smooth observation step w=0.01": Surrogate(clock="direct", observation_width=0.01),
    SCORE_LABEL: ScoreFunction(),
}
GENE_CIRCUIT_ESTIMATORS = (PAIRS_LABEL, THINNING_LABEL, "thinning c=1.2 + Gumbel-softmax ST T=0.5",
                           "direct + choice ST", SCORE_LABEL)
EXAMPLES = Path(__file__).parents[1] / "examples"


def step_budget(estimator, steps: int) -> int:
    """A thinning clock's null events count against the budget."""
    return int(steps * (estimator.thinning_factor or 1))


def cases():
    birth = ReactionNetwork({"X": 0}, {"k": 20.0}, [Reaction({}, {"X": 1}, MassAction("k"))])
    birth_death = ReactionNetwork(
        {"X": 20}, {"b": 0.5, "d": 1.0},
        [Reaction({"X": 1}, {"X": 2}, MassAction("b")), Reaction({"X": 1}, {}, MassAction("d"))],
    )
    imm = ReactionNetwork(
        {"X": 0}, {"k": 10.0, "mu": 0.5},
        [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))],
    )
    dimer = ReactionNetwork(
        {"P": 100, "P2": 0}, {"k1": 0.001, "k2": 0.01},
        [Reaction({"P": 2}, {"P2": 1}, MassAction("k1")), Reaction({"P2": 1}, {"P": 2}, MassAction("k2"))],
    )

    def birth_exact(t):
        return {"k": 20.0 * t}

    def bd_exact(t):
        m = 20 * np.exp(-0.5 * t)
        return {"b": 0.5 * t * m, "d": -1.0 * t * m}

    def imm_exact(t):
        e = np.exp(-0.5 * t)
        return {"k": 10.0 * (1 - e) / 0.5, "mu": 0.5 * (-(10 / 0.25) * (1 - e) + (10 / 0.5) * t * e)}

    small = ReactionNetwork(
        {"P": 10, "P2": 0}, {"k1": 0.02, "k2": 0.1},
        [Reaction({"P": 2}, {"P2": 1}, MassAction("k1")), Reaction({"P2": 1}, {"P": 2}, MassAction("k2"))],
    )

    def cme_exact(net):
        def exact(t):
            sol = solve_cme(net, [t])
            return {p: float(sol.mean_gradient[0, 0, i]) * net.parameters[p] for i, p in enumerate(sol.parameter_names)}

        return exact

    return [
        ("pure birth 0->X", birth, "X", [0.2, 1.0], birth_exact, 100),
        ("birth-death X->2X, X->0", birth_death, "X", [0.3, 1.5], bd_exact, 300),
        ("immigration-death", imm, "X", [0.5, 10.0], imm_exact, 600),
        ("dimerisation 2P<->P2", dimer, "P", [2.0, 20.0], cme_exact(dimer), 200),
        ("dimerisation, small counts (P0 = 10)", small, "P", [1.0, 20.0], cme_exact(small), 200),
    ]


def row(label, case, t, name, estimate, stderr, per_run_sd, exact, seconds, exact_stderr=0.0):
    return {
        "estimator": label, "case": case, "time": t, "parameter": f"log {name}",
        "estimate": estimate, "exact": exact,
        "relative_bias": estimate / exact - 1,
        "relative_stderr": float(np.hypot(stderr, exact_stderr * estimate / exact)) / abs(exact),
        "relative_per_run_sd": per_run_sd / abs(exact), "seconds": seconds,
    }


OSCILLATOR_RATES = ("alphaA_prime", "betaA", "gammaA", "deltaA")
OSCILLATOR_TIMES = (1.0, 3.0)
OSCILLATOR_REFERENCE_RUNS = 16_000
OSCILLATOR_ESTIMATORS = {
    label: ESTIMATORS[label] for label in (
        PAIRS_LABEL,
        THINNING_LABEL,
        "thinning c=1.2 + Gumbel-softmax ST T=0.5",
        "direct + choice ST",
        SCORE_LABEL,
    )
} | {"thinning c=1.6 + propensity ST": Surrogate(clock_factor=1.6)}


def run_oscillator(runs: int, seed: int):
    """Rows for the oscillator, against finite differences; the score function gets 3x the runs."""
    from diffssa.applications.oscillator import oscillator_network

    net, case, times = oscillator_network(), "oscillator (Vilar et al.), observable A", list(OSCILLATOR_TIMES)
    index = net.species_names.index("A")
    start = time.perf_counter()
    fd = finite_difference_gradient(net, times, lambda s: s[:, :, index], list(OSCILLATOR_RATES),
                                    key=seed + 1, runs=OSCILLATOR_REFERENCE_RUNS, max_steps=40_000)
    print(f"{case}: reference (finite differences) {time.perf_counter() - start:6.1f} s", file=sys.stderr)
    reference = {name: (np.asarray(r.gradient) * net.parameters[name], np.asarray(r.stderr) * net.parameters[name])
                 for name, r in fd.items()}
    rows = []
    for label, est in OSCILLATOR_ESTIMATORS.items():
        n = 3 * runs if isinstance(est, ScoreFunction) else runs
        start = time.perf_counter()
        g = estimate_gradient(net, times, "A", list(OSCILLATOR_RATES), key=seed, runs=n, estimator=est,
                              max_steps=step_budget(est, 25_000), batch_size=2_000, check=False)
        seconds = time.perf_counter() - start
        for i, t in enumerate(times):
            for name in OSCILLATOR_RATES:
                value = net.parameters[name]
                r = row(label, case, t, name, float(g.gradient[name][i]) * value, float(g.stderr[name][i]) * value,
                        float(g.per_run_sd[name][i]) * value, float(reference[name][0][i]), seconds,
                        exact_stderr=float(reference[name][1][i]))
                r["runs"] = n
                rows.append(r)
        print(f"{case}: {label:55s} {n} runs {seconds:6.1f} s", file=sys.stderr)
    return rows


def gene_circuits():
    """(case, network, species, times, exact, max_steps) for the gene circuits; exact from the master
    equation with the molecule counts bounded (truncation error below 1e-8)."""
    cases = []
    for name, species, bounds in (("telegraph", "M", {"M": 120}), ("autoregulation", "P", {"P": 120}),
                                  ("toggle_switch", "U", {"U": 35, "V": 35})):
        net = load_network(EXAMPLES / f"{name}.rxn")
        solution = solve_cme(net, [1.0, 4.0], bounds=bounds)
        assert solution.truncation_error < 1e-8, (name, solution.truncation_error)
        i = solution.species.index(species)

        def exact(t, solution=solution, i=i, net=net):
            row = list(solution.times).index(t)
            return {p: float(solution.mean_gradient[row, i, j]) * net.parameters[p]
                    for j, p in enumerate(solution.parameter_names)}

        cases.append((f"{net.name}, observable {species}", net, species, [1.0, 4.0], exact, 2000))
    return cases


def run(runs: int, seed: int, gene: bool = False):
    rows = []
    for case, net, species, times, exact_fn, max_steps in (gene_circuits() if gene else cases()):
        exact = {t: exact_fn(t) for t in times}
        for label, est in ESTIMATORS.items():
            if gene and label not in GENE_CIRCUIT_ESTIMATORS:
                continue
            start = time.perf_counter()
            g = estimate_gradient(net, times, species, list(net.parameters), key=seed, runs=runs,
                                  estimator=est, max_steps=step_budget(est, max_steps) + 50, check=False)
            seconds = time.perf_counter() - start
            for i, t in enumerate(times):
                for name, value in net.parameters.items():
                    rows.append(row(label, case, t, name, float(g.gradient[name][i]) * value,
                                    float(g.stderr[name][i]) * value, float(g.per_run_sd[name][i]) * value,
                                    exact[t][name], seconds))
            print(f"{case:28s} {label:55s} {seconds:6.1f} s", file=sys.stderr)
        start = time.perf_counter()
        index = net.species_names.index(species)
        fd = finite_difference_gradient(net, times, lambda s: s[:, :, index], list(net.parameters),
                                        key=seed, runs=runs, max_steps=max_steps * 2)
        seconds = time.perf_counter() - start
        for i, t in enumerate(times):
            for name, value in net.parameters.items():
                r = fd[name]
                rows.append(row("finite differences, common random numbers (h = 5%)", case, t, name,
                                float(r.gradient[i]) * value, float(r.stderr[i]) * value,
                                float(r.stderr[i]) * value * np.sqrt(runs), exact[t][name], seconds))
    return rows


COUPLING_METHODS = ("direct", "next-reaction")
COUPLING_OSCILLATOR_RATES = ("alphaA_prime", "deltaA", "deltaR", "gammaA")
COUPLING_OSCILLATOR_TIMES = (1.0, 3.0, 10.0, 20.0)
# (case, species, time, parameter) of the rows shown in docs/gradients.md; the JSON has them all
COUPLING_TABLE = (
    ("immigration-death", "X", 0.5, "mu"), ("immigration-death", "X", 10.0, "mu"),
    ("dimerisation", "P", 2.0, "k2"), ("dimerisation", "P", 20.0, "k2"),
    ("oscillator", "A", 1.0, "log deltaA"), ("oscillator", "A", 3.0, "log deltaA"),
    ("oscillator", "A", 3.0, "log gammaA"), ("oscillator", "R", 10.0, "log deltaR"),
    ("oscillator", "R", 20.0, "log alphaA_prime"),
)


def _coupled(case, net, times, species, wrt, runs, seed, max_steps, scale):
    """Rows for one network: both couplings, every species x time x parameter; ``scale`` -> d/d log theta."""
    indices = [net.species_names.index(s) for s in species]
    fds, seconds = {}, {}
    for method in COUPLING_METHODS:
        start = time.perf_counter()
        # one simulation per side for all species: (B, T, S) -> (B, T * len(species)), time-major
        fds[method] = finite_difference_gradient(
            net, times, lambda s: s[:, :, indices].reshape(s.shape[0], -1), list(wrt), key=seed, runs=runs,
            method=method, max_steps=max_steps,
        )
        seconds[method] = time.perf_counter() - start
        print(f"coupling: {case:18s} {method:14s} {runs} pairs {seconds[method]:6.1f} s", file=sys.stderr)
    rows = []
    for k, (t, sp) in enumerate((t, sp) for t in times for sp in species):
        for name in wrt:
            factor = net.parameters[name] if scale else 1.0
            r = {"case": case, "species": sp, "time": t, "parameter": f"log {name}" if scale else name,
                 "pairs": runs}
            for method in COUPLING_METHODS:
                r[f"gradient_{method}"] = float(fds[method][name].gradient[k]) * factor
                r[f"stderr_{method}"] = float(fds[method][name].stderr[k]) * factor
                r[f"seconds_{method}"] = seconds[method]
            ratio_ok = r["stderr_next-reaction"] > 0
            r["stderr_ratio"] = r["stderr_direct"] / r["stderr_next-reaction"] if ratio_ok else None
            rows.append(r)
    return rows


def run_coupling(runs: int, oscillator_runs: int, seed: int):
    """Finite-difference standard errors, direct vs next-reaction coupling (the table in docs/gradients.md)."""
    from diffssa.applications.oscillator import oscillator_network

    nets = {c[0]: c[1] for c in cases()}
    rows = []
    for case, net, species, times, bounds in (
        ("immigration-death", nets["immigration-death"], "X", [0.5, 10.0], {"X": 80}),
        ("dimerisation", nets["dimerisation 2P<->P2"], "P", [2.0, 20.0], None),
    ):
        exact = solve_cme(net, times, bounds=bounds)  # mean_gradient: (T, S, P), d/d theta
        for r in _coupled(case, net, times, [species], list(net.parameters), runs, seed, 5_000, scale=False):
            i, j = times.index(r["time"]), exact.parameter_names.index(r["parameter"])
            r["exact"] = float(exact.mean_gradient[i, net.species_names.index(species), j])
            rows.append(r)
    for r in _coupled("oscillator", oscillator_network(), list(COUPLING_OSCILLATOR_TIMES), ["A", "R"],
                      COUPLING_OSCILLATOR_RATES, oscillator_runs, seed, 150_000, scale=True):
        r["exact"] = None
        rows.append(r)
    return rows


def coupling_markdown(rows):
    """The rows of ``COUPLING_TABLE`` in the layout of docs/gradients.md."""
    lines = ["| case | t | d/d | SE, direct method | SE, next-reaction | exact |", "|---|---|---|---|---|---|"]
    for case, species, t, p in COUPLING_TABLE:
        r = next(r for r in rows if (r["case"], r["species"], r["time"], r["parameter"]) == (case, species, t, p))
        exact = "" if r["exact"] is None else f"{r['exact']:.4g}"
        lines.append(f"| {case}, {species} | {t:g} | {p} | {r['stderr_direct']:.3g} | {r['stderr_next-reaction']:.3g} "
                     f"| {exact} |")
    return "\n".join(lines) + "\n"


def markdown(rows, runs):
    """One line per (case, time, parameter), one column per estimator."""
    keys = list(dict.fromkeys((r["case"], r["time"], r["parameter"]) for r in rows))
    labels = list(dict.fromkeys(r["estimator"] for r in rows))
    lines = ["| case | t | d/d | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 3)]
    for case, t, p in keys:
        cells = []
        for label in labels:
            r = next(r for r in rows if r["estimator"] == label and (r["case"], r["time"], r["parameter"]) == (case, t, p))
            cells.append(f"{100 * r['relative_bias']:+.1f}% ± {100 * r['relative_stderr']:.1f} (sd {r['relative_per_run_sd']:.2g})")
        lines.append(f"| {case} | {t:g} | {p} | " + " | ".join(cells) + " |")
    reference = "the exact value" if runs else "the finite-difference reference"
    return "\n".join(lines) + (
        f"\n\nEach cell: relative bias ± its standard error, in %, and (sd) the per-trajectory SD of the "
        f"gradient relative to {reference}; {runs or 'see the JSON for the'} trajectories per estimate.\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None,
                        help="trajectories per estimate (default 40000; with --coupling, pairs per exact case: 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", help="also write the table as markdown to this file")
    parser.add_argument("--from-json", help="re-render the markdown from an earlier JSON output instead of running")
    parser.add_argument("--oscillator", action="store_true",
                        help="the oscillator against finite differences instead of the exact cases")
    parser.add_argument("--gene-circuits", action="store_true",
                        help="the telegraph gene, autoregulation and a toggle switch against the master equation")
    parser.add_argument("--coupling", action="store_true",
                        help="finite-difference standard errors, direct vs next-reaction coupling")
    parser.add_argument("--oscillator-runs", type=int, default=1_000,
                        help="with --coupling: pairs for the oscillator (default 1000)")
    args = parser.parse_args()
    if args.oscillator + args.coupling + args.gene_circuits > 1:
        parser.error("--oscillator, --gene-circuits and --coupling are separate tables; give one")
    if args.runs is None:
        args.runs = 20_000 if args.coupling else 40_000
    from diffssa import use_cpu_cores

    use_cpu_cores()
    oscillator, coupling = args.oscillator, args.coupling
    if args.from_json:
        with open(args.from_json) as f:
            data = json.load(f)
        rows, oscillator, coupling = data["rows"], data.get("oscillator", False), data.get("coupling", False)
        if coupling:
            args.runs, args.oscillator_runs = data["runs"], data["oscillator_runs"]
    elif coupling:
        rows = run_coupling(args.runs, args.oscillator_runs, args.seed)
    else:
        rows = run_oscillator(args.runs, args.seed) if oscillator else run(args.runs, args.seed, args.gene_circuits)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(coupling_markdown(rows) if coupling else markdown(rows, None if oscillator else args.runs))
    out = {"runs": args.runs, "seed": args.seed, "oscillator": oscillator, "gene_circuits": args.gene_circuits,
           "rows": rows}
    if coupling:
        out |= {"coupling": True, "oscillator_runs": args.oscillator_runs, "relative_step": 0.05}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
