#!/usr/bin/env python
"""Tau-leaping benchmark: forward accuracy, gradient bias and speed-up over the exact engine.

Usage::

    python benchmarks/tau_leap.py [--quick] [--out FILE.json] [--repeats N]

Prints ONE JSON object on stdout (progress on stderr); ``docs/tau-leap.json`` is its output and
``docs/tau-leap.md`` discusses it. Models (mass action, times in the rate constants' units):

* ``immigration_death``: 0 -> X @ k = 1e4, X -> 0 @ mu = 1, X(0) = 5000, t = 0, 0.5, ..., 2: exact mean,
  SD and derivatives in closed form.
* ``dimerisation``: 2 P -> P2 @ k1 = 1e-4 (propensity k1 P (P - 1) / 2), P2 -> 2 P @ k2 = 0.01,
  P(0) = 1e4, t = 0, 5, ..., 20; reference: diffssa's exact direct method, and coupled (next-reaction)
  central finite differences of the exact simulation for the derivatives.
* ``lotka_volterra``: X -> 2 X @ c1 = 1, X + Y -> 2 Y @ c2 = 1e-4, Y -> 0 @ c3 = 1, X(0) = 8000,
  Y(0) = 1e4 (equilibrium 1e4, 1e4), t = 0, 0.5, ..., 2; references as for the dimerisation.

Accuracy: tau-leap means and SDs at epsilon 0.01, 0.03, 0.05 (CGP's step selection, and with the
``flux_bound`` option) relative to the reference, at every grid time after 0 (the largest absolute
relative error is reported, and every value). Gradients: per-run derivatives of the mean of the
last-time counts (``params`` as (B,) arrays) with the EAT and Gumbel-softmax surrogates at epsilon
0.01, 0.03 and 0.03 with ``flux_bound`` (``"0.03+flux"``), against the closed form or the exact coupled
finite differences (whose standard error is given), and against the tau-leap's own coupled finite
differences. Speed: immigration-death with k / mu = 1e4 and 1e6 molecules from half that
(X(0) = k / (2 mu), t = 0, 0.5, ..., 2: the accuracy model, scaled), the exact direct method against
tau-leap (epsilon 0.03, without and with ``flux_bound``), same batch, compilation excluded, medians of
``--repeats`` timed runs with different keys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def networks():
    from diffssa import MassAction, Reaction, ReactionNetwork

    immigration = ReactionNetwork({"X": 5000}, {"k": 1e4, "mu": 1.0},
                                  [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))])
    dimer = ReactionNetwork({"P": 10_000, "P2": 0}, {"k1": 1e-4, "k2": 0.01},
                            [Reaction({"P": 2}, {"P2": 1}, MassAction("k1")),
                             Reaction({"P2": 1}, {"P": 2}, MassAction("k2"))])
    lv = ReactionNetwork({"X": 8000, "Y": 10_000}, {"c1": 1.0, "c2": 1e-4, "c3": 1.0},
                         [Reaction({"X": 1}, {"X": 2}, MassAction("c1")),
                          Reaction({"X": 1, "Y": 1}, {"Y": 2}, MassAction("c2")),
                          Reaction({"Y": 1}, {}, MassAction("c3"))])
    return immigration, dimer, lv


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test, not the published numbers)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from diffssa import simulate, use_cpu_cores
    from diffssa.reference.finite_differences import finite_difference_gradient
    from diffssa.simulation.tau_leap import TauLeap

    use_cpu_cores(os.cpu_count() or 1)
    scale = 0.1 if args.quick else 1.0
    n_tau, n_exact, n_fd = int(4000 * scale), int(1000 * scale), int(1000 * scale)
    immigration, dimer, lv = networks()
    result = {"platform": {"python": platform.python_version(), "jax": jax.__version__, "machine": platform.machine(),
                           "cpu_count": os.cpu_count(), "devices": [str(d) for d in jax.local_devices()]},
              "command": "python benchmarks/tau_leap.py" + (" --quick" if args.quick else ""),
              "runs": {"tau_leap": n_tau, "exact": n_exact, "finite_differences_per_side": n_fd}}

    def f64(states):
        return np.asarray(states, np.float64)

    def moments(states):
        x = f64(states)[:, 1:]
        return x.mean(axis=0), x.std(axis=0, ddof=1)

    def compare(tau_states, ref_mean, ref_sd):
        mean, sd = moments(tau_states)
        rel_mean, rel_sd = mean / ref_mean - 1, sd / ref_sd - 1
        return {"max_abs_rel_mean": float(np.max(np.abs(rel_mean))), "max_abs_rel_sd": float(np.max(np.abs(rel_sd))),
                "rel_mean": np.round(rel_mean, 5).tolist(), "rel_sd": np.round(rel_sd, 4).tolist()}

    models = {
        "immigration_death": (immigration, np.linspace(0, 2, 5), ["k", "mu"], lambda s: s[:, -1, 0]),
        "dimerisation": (dimer, np.linspace(0, 20, 5), ["k1", "k2"], lambda s: s[:, -1, 0]),
        "lotka_volterra": (lv, np.linspace(0, 2, 5), ["c1", "c3"], lambda s: s[:, -1, :2]),
    }
    accuracy, gradients = {}, {}
    for name, (net, times, wrt, observable) in models.items():
        log(f"[{name}] reference")
        t = times[1:]
        if name == "immigration_death":
            p = np.exp(-t)
            ref_mean = (1e4 * (1 - p) + 5000 * p)[:, None]
            ref_sd = np.sqrt(1e4 * (1 - p) + 5000 * p * (1 - p))[:, None]
            ref_events = None
            reference = "closed form"
        else:
            start = time.perf_counter()
            exact = simulate(net, times, key=11, runs=n_exact, estimator=None, max_steps=200_000)
            ref_events = float(np.mean(exact.events))
            ref_mean, ref_sd = moments(exact.states)
            reference = f"exact direct method, {n_exact} runs ({time.perf_counter() - start:.1f} s incl. compilation)"
        accuracy[name] = {"reference": reference, "exact_events_per_run": ref_events, "by_epsilon": {},
                          "by_epsilon_flux_bound": {}}
        for flux in (False, True):
            for eps in (0.01, 0.03, 0.05):
                log(f"[{name}] tau-leap epsilon {eps} flux_bound {flux}")
                tr = simulate(net, times, key=12, runs=n_tau, method=TauLeap(epsilon=eps, flux_bound=flux),
                              estimator=None)
                entry = compare(tr.states, ref_mean, ref_sd)
                entry["steps_per_run"] = float(np.mean(tr.events))
                accuracy[name]["by_epsilon_flux_bound" if flux else "by_epsilon"][str(eps)] = entry

        # gradients of E[observable] at epsilon 0.03
        log(f"[{name}] gradients")
        base = net.parameter_values()
        grads = {"observable": "mean over runs of the counts at the last time",
                 "species": list(net.species)[: (1 if name != "lotka_volterra" else 2)], "by_parameter": {}}
        if name == "immigration_death":
            T = times[-1]
            closed = {"k": (1 - np.exp(-T)), "mu": -1e4 * (1 - np.exp(-T)) + 1e4 * T * np.exp(-T) - 5000 * T * np.exp(-T)}
            reference_grad = {w: {"value": [float(closed[w])], "stderr": [0.0], "kind": "closed form"} for w in wrt}
        else:
            fd = finite_difference_gradient(net, times, observable, wrt, key=13, runs=n_fd, max_steps=500_000,
                                            relative_step=0.05)
            reference_grad = {w: {"value": np.atleast_1d(fd[w].gradient).tolist(),
                                  "stderr": np.atleast_1d(fd[w].stderr).tolist(),
                                  "kind": f"exact coupled central differences (next-reaction, h = 5%, {n_fd} runs)"}
                              for w in wrt}
        for w in wrt:
            grads["by_parameter"][w] = {"reference": reference_grad[w], "by_epsilon": {}}
        for eps in (0.01, 0.03, "0.03+flux"):
            config = TauLeap(0.03, flux_bound=True) if eps == "0.03+flux" else TauLeap(eps, flux_bound=False)
            tau_fd = finite_difference_gradient(net, times, observable, wrt, key=14, runs=n_tau,
                                                method=config, relative_step=0.01)
            for w in wrt:
                ref = np.asarray(reference_grad[w]["value"])
                entry = {"tau_leap_finite_differences": {
                    "value": np.atleast_1d(tau_fd[w].gradient).tolist(),
                    "stderr": np.atleast_1d(tau_fd[w].stderr).tolist(),
                    "rel_error_vs_reference": (np.atleast_1d(tau_fd[w].gradient) / ref - 1).tolist(),
                    "kind": f"tau-leap coupled central differences (same key, h = 1%, {n_tau} runs)"}}
                for est in ("eat", "gumbel"):
                    def total(values, est=est, w=w, config=config):
                        params = {q: (values if q == w else base[q]) for q in base}
                        tr = simulate(net, times, key=15, runs=n_tau, params=params, method=config,
                                      estimator=est)
                        return jnp.sum(observable(tr.states).reshape(n_tau, -1), axis=0)

                    start = time.perf_counter()
                    jac = np.asarray(jax.jacrev(total)(jnp.full(n_tau, base[w], jnp.float32)), np.float64)  # (K, B)
                    per_run = jac.T  # per-trajectory derivatives
                    value = per_run.mean(axis=0)
                    entry[est] = {"value": value.tolist(),
                                  "stderr": (per_run.std(axis=0, ddof=1) / np.sqrt(n_tau)).tolist(),
                                  "rel_error_vs_reference": (value / ref - 1).tolist(),
                                  "seconds_incl_compilation": round(time.perf_counter() - start, 2)}
                grads["by_parameter"][w]["by_epsilon"][str(eps)] = entry
                log(f"  eps {eps} {w}: ref {ref} tau-FD {entry['tau_leap_finite_differences']['value']} "
                    f"eat {entry['eat']['value']} gumbel {entry['gumbel']['value']}")
        gradients[name] = grads
    result["accuracy"], result["gradients"] = accuracy, gradients

    # speed: immigration-death, 1e4 and 1e6 molecules
    speed = {}
    for size, runs in ((10_000, int(1000 * scale)), (1_000_000, max(2, int(16 * scale)))):
        from diffssa import MassAction, Reaction, ReactionNetwork

        net = ReactionNetwork({"X": size // 2}, {"k": float(size), "mu": 1.0},
                              [Reaction({}, {"X": 1}, MassAction("k")), Reaction({"X": 1}, {}, MassAction("mu"))])
        times = np.linspace(0, 2, 5)
        entry = {"molecules": size, "runs": runs, "t_end": 2.0, "x0": size // 2}
        for label, kwargs in (("exact", dict(estimator=None, max_steps=4 * size)),
                              ("tau_leap", dict(method=TauLeap(0.03, flux_bound=False), estimator=None)),
                              ("tau_leap_flux_bound", dict(method=TauLeap(0.03, flux_bound=True), estimator=None))):
            simulate(net, times, key=0, runs=runs, **kwargs).states.block_until_ready()  # compile
            seconds, steps = [], []
            for r in range(args.repeats):
                start = time.perf_counter()
                tr = simulate(net, times, key=100 + r, runs=runs, **kwargs)
                tr.states.block_until_ready()
                seconds.append(time.perf_counter() - start)
                steps.append(float(np.mean(tr.events)))
            entry[label] = {"seconds": seconds, "median_seconds": statistics.median(seconds),
                            "steps_per_run": statistics.median(steps)}
            log(f"[speed {size}] {label}: {entry[label]['median_seconds']:.3f} s, {entry[label]['steps_per_run']:.0f} steps/run")
        entry["speedup"] = entry["exact"]["median_seconds"] / entry["tau_leap"]["median_seconds"]
        entry["speedup_flux_bound"] = entry["exact"]["median_seconds"] / entry["tau_leap_flux_bound"]["median_seconds"]
        speed[str(size)] = entry
    result["speed"] = speed
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
