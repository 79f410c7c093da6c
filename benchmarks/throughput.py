#!/usr/bin/env python
"""Throughput benchmark: diffssa forward and forward+backward, against rebop and gillespy2.

Usage::

    python benchmarks/throughput.py [--quick] [--out FILE.json] [--repeats N] [--no-peers]

Prints ONE JSON object on stdout (progress goes to stderr). A "step" is one reaction event fired,
counted from ``Trajectories.events`` (for the differentiable path this includes the null events of
the thinning clock, since each one is a full iteration of the simulator). Every timing excludes
compilation: each configuration is run once to compile, then timed ``--repeats`` times with
different keys; the JSON gives every repeat and the median.

Workloads (see ``benchmarks/README.md`` and ``docs/performance.md``):

* ``dimerisation``: 2 P -> P2 @ k1 (propensity k1 P (P - 1) / 2), P2 -> 2 P @ k2, P(0) = 1000,
  P2(0) = 0, k1 = 0.001, k2 = 0.01, recorded at t = 0, 1, ..., 60: about 980 events per trajectory
  (about 1170 iterations with the thinning clock's null events).
* ``random50``: a random mass-action network of 20 species and 50 uni- and bimolecular reactions
  (generator :func:`random_network_spec`, fixed seed), recorded at 21 times on [0, 1]: about 1060
  events per trajectory.

Peak memory of the gradient is measured in a fresh subprocess (``--memory-child``), see
:func:`memory_child`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

# ----------------------------------------------------------------------------------- workloads

DIMERISATION = {
    "description": "2 P -> P2 @ k1 (propensity k1*P*(P-1)/2), P2 -> 2 P @ k2",
    "species": {"P": 1000, "P2": 0},
    "parameters": {"k1": 0.001, "k2": 0.01},
    "reactions": [({"P": 2}, {"P2": 1}, "k1"), ({"P2": 1}, {"P": 2}, "k2")],
    "t_end": 60.0,
    "points": 60,  # grid intervals: T = points + 1 recorded times
    "max_steps": 2000,
    "loss": "mean over runs of P at t_end",
}

RANDOM_SEED = 20240607


def random_network_spec(seed: int = RANDOM_SEED, n_species: int = 20) -> dict:
    """A random mass-action network: 20 species, 50 reactions, initial counts uniform on 50..200.

    Reaction kinds (reactants and products drawn without replacement among the species):
    5 synthesis 0 -> A @ U(1, 10); 5 degradation A -> 0 @ U(0.01, 0.1); 15 conversion A -> B @
    U(0.05, 0.5); 10 association A + B -> C @ U(0.0005, 0.002); 2 dimerisation 2 A -> C @
    U(0.0005, 0.002) (propensity k A (A - 1) / 2); 13 dissociation C -> A + B @ U(0.05, 0.5).
    Bimolecular rates are small enough that counts stay in the hundreds over the horizon.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    species = {f"S{i}": int(rng.integers(50, 201)) for i in range(n_species)}
    names = list(species)
    kinds = (["synthesis"] * 5 + ["degradation"] * 5 + ["conversion"] * 15 + ["association"] * 10
             + ["dimerisation"] * 2 + ["dissociation"] * 13)

    def pick(k):
        return [names[i] for i in rng.choice(n_species, size=k, replace=False)]

    reactions, parameters = [], {}
    for j, kind in enumerate(kinds):
        if kind == "synthesis":
            (a,) = pick(1)
            reactants, products, k = {}, {a: 1}, rng.uniform(1.0, 10.0)
        elif kind == "degradation":
            (a,) = pick(1)
            reactants, products, k = {a: 1}, {}, rng.uniform(0.01, 0.1)
        elif kind == "conversion":
            a, b = pick(2)
            reactants, products, k = {a: 1}, {b: 1}, rng.uniform(0.05, 0.5)
        elif kind == "association":
            a, b, c = pick(3)
            reactants, products, k = {a: 1, b: 1}, {c: 1}, rng.uniform(0.0005, 0.002)
        elif kind == "dimerisation":
            a, c = pick(2)
            reactants, products, k = {a: 2}, {c: 1}, rng.uniform(0.0005, 0.002)
        else:
            c, a, b = pick(3)
            reactants, products, k = {c: 1}, {a: 1, b: 1}, rng.uniform(0.05, 0.5)
        name = f"k{j}"
        parameters[name] = float(np.float32(k))
        reactions.append((reactants, products, name))
    return {
        "description": (f"random mass-action network, numpy default_rng({seed}): {n_species} species, "
                        "50 reactions (5 synthesis, 5 degradation, 15 conversion, 10 association A+B, "
                        "2 dimerisation 2A, 13 dissociation)"),
        "species": species,
        "parameters": parameters,
        "reactions": reactions,
        "t_end": 1.0,
        "points": 20,
        "max_steps": 2500,
        "loss": "mean over runs of the total count of all species at t_end",
    }


def grid_of(spec):
    import numpy as np

    return np.linspace(0.0, spec["t_end"], spec["points"] + 1, dtype=np.float32)


def to_diffssa(spec):
    from diffssa import MassAction, Reaction, ReactionNetwork

    return ReactionNetwork(
        spec["species"], spec["parameters"],
        [Reaction(r, p, MassAction(k)) for r, p, k in spec["reactions"]],
    )


def peer_rate(spec, reactants, name):
    """Peers (rebop, gillespy2) use k A (A - 1) for 2 A: halve k to get diffssa's k A (A - 1) / 2."""
    k = spec["parameters"][name]
    return k / 2.0 if any(n == 2 for n in reactants.values()) else k


# ------------------------------------------------------------------------------------ helpers


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def machine_info():
    import jax
    import numpy as np

    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
        "memory_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    for peer in ("rebop", "gillespy2"):
        try:
            info[peer] = __import__(peer).__version__
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            info[peer] = f"unavailable: {exc!r}"
    return info


def summarise(times, steps):
    """Median over repeats of the wall time and of steps/s."""
    rates = [s / t for s, t in zip(steps, times)]
    return {
        "repeats": len(times),
        "seconds": [round(t, 4) for t in times],
        "steps": steps,
        "steps_per_s": [round(r) for r in rates],
        "median_seconds": round(statistics.median(times), 4),
        "median_steps_per_s": round(statistics.median(rates)),
    }


# ----------------------------------------------------------------------------------- diffssa


def diffssa_forward(spec, runs, repeats, method="direct"):
    import jax
    import numpy as np

    from diffssa import simulate

    net, grid = to_diffssa(spec), grid_of(spec)

    def once(seed):
        t0 = time.perf_counter()
        res = simulate(net, grid, key=seed, runs=runs, max_steps=spec["max_steps"], method=method)
        events = np.asarray(res.events)  # blocks until the simulation is done
        jax.block_until_ready(res.states)
        return time.perf_counter() - t0, res, events

    first, _, _ = once(0)
    times, steps, exhausted, per_traj, final_mean = [], [], 0, [], None
    for i in range(repeats):
        dt, res, events = once(1000 + i)
        times.append(dt)
        steps.append(int(events.sum(dtype=np.int64)))
        exhausted += int(np.asarray(res.exhausted).sum())
        per_traj.append(float(events.mean()))
        final_mean = np.asarray(res.states[:, -1]).mean(axis=0)
    out = summarise(times, steps)
    out.update(runs=runs, first_call_seconds=round(first, 3), events_per_trajectory=round(statistics.mean(per_traj), 2),
               exhausted_trajectories=exhausted, mean_final_state=[round(float(v), 3) for v in final_mean])
    return out


def make_gradient(spec, runs):
    """``(grad_fn, count_fn, params)``: jitted ``grad(loss)(params, key)`` and the events it simulates.

    The timed function is the plain gradient. Returning ``Trajectories.events`` from the
    differentiated function (``value_and_grad(..., has_aux=True)``) was measured to cost about 50 %
    more time, so the events are counted by ``count_fn``: the same differentiable simulation (same
    key, hence the same trajectories, null events included) run forward only, outside the timing.
    """
    import jax
    import jax.numpy as jnp

    from diffssa import simulate

    net, grid = to_diffssa(spec), grid_of(spec)
    dimer = "P" in spec["species"] and len(spec["species"]) == 2

    def sim(params, key):
        return simulate(net, grid, key=key, runs=runs, params=params, max_steps=spec["max_steps"],
                        estimator="thinning", on_exhausted="ignore")

    def loss(params, key):
        res = sim(params, key)
        final = res.states[:, -1, 0] if dimer else jnp.sum(res.states[:, -1, :], axis=1)
        return jnp.mean(final)

    def count(params, key):
        res = sim(params, key)
        return jnp.sum(res.events), jnp.sum(res.exhausted)

    params = {k: jnp.float32(v) for k, v in spec["parameters"].items()}
    return jax.jit(jax.grad(loss)), jax.jit(count), params


def diffssa_gradient(spec, runs, repeats):
    import jax
    import numpy as np

    from diffssa.rng import as_key

    fn, count, params = make_gradient(spec, runs)

    def once(seed):
        key = as_key(seed)
        t0 = time.perf_counter()
        grad = fn(params, key)
        jax.block_until_ready(grad)
        dt = time.perf_counter() - t0
        events, exhausted = count(params, key)
        return dt, int(events), int(exhausted), grad

    first, _, _, _ = once(0)
    times, steps, exhausted = [], [], 0
    for i in range(repeats):
        dt, events, ex, grad = once(2000 + i)
        times.append(dt)
        steps.append(events)
        exhausted += ex
    out = summarise(times, steps)
    finite = all(bool(np.all(np.isfinite(np.asarray(g)))) for g in jax.tree_util.tree_leaves(grad))
    out.update(runs=runs, first_call_seconds=round(first, 3),
               events_per_trajectory=round(statistics.mean(steps) / runs, 2),
               exhausted_trajectories=exhausted, gradient_finite=finite,
               n_parameters=len(params),
               gradient_last_repeat={k: float(v) for k, v in grad.items()} if len(grad) <= 4 else None)
    return out


def _rss_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak():
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_child(workload, runs):
    """Run in a fresh process: peak memory of one jitted gradient call (printed as JSON).

    The baseline is the resident set (``VmRSS``) after importing JAX and compiling a trivial op.
    ``ru_maxrss`` is reported for reference only (``ru_maxrss_*``): Linux carries it across
    fork + exec, so in a child it starts at the parent's RSS (hundreds of MB once the parent has run
    benchmarks), and it cannot be reset. Peaks are the kernel's RSS high-water mark ``VmHWM``, reset
    through ``/proc/self/clear_refs`` before each phase:

    * ``compile_peak_minus_baseline_mb``: tracing, lowering and XLA compilation of the gradient;
    * ``execution_peak_minus_baseline_mb``: the gradient call itself (compiled code and inputs
      included, compiler scratch excluded) -- the backward pass's memory;
    * ``execution_peak_minus_rss_before_run_mb``: what the call allocates on top of the process as
      it stands after compilation (the compiled executable and JAX's caches stay resident);
    * ``peak_rss_minus_baseline_mb``: the larger of the two peaks minus the baseline: what computing
      the gradient costs the process (this is the figure checked against the target);
    * ``xla_memory_analysis``: ``jit(f).lower(...).compile().memory_analysis()``; ``xla_total_mb`` =
      temp + argument + output - alias bytes (XLA's own buffer plan, no allocator overhead).
    """
    import jax
    import jax.numpy as jnp

    jax.jit(lambda x: x * 2 + 1)(jnp.ones(8)).block_until_ready()
    baseline_kb = _rss_kb("VmRSS")
    maxrss_import_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak()
    spec = DIMERISATION if workload == "dimerisation" else random_network_spec()
    fn, count, params = make_gradient(spec, runs)
    key = jax.random.PRNGKey(7)
    compiled = fn.lower(params, key).compile()
    analysis = {}
    try:
        ma = compiled.memory_analysis()
        for name in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                     "alias_size_in_bytes", "generated_code_size_in_bytes"):
            analysis[name] = int(getattr(ma, name))
        analysis["xla_total_mb"] = round((analysis["temp_size_in_bytes"] + analysis["argument_size_in_bytes"]
                                          + analysis["output_size_in_bytes"] - analysis["alias_size_in_bytes"]) / 2**20, 1)
    except Exception as exc:  # noqa: BLE001
        analysis["error"] = repr(exc)
    compile_hwm_kb = _rss_kb("VmHWM")
    rss_before_run_kb = _rss_kb("VmRSS")
    reset = _reset_peak() and reset
    t0 = time.perf_counter()
    grad = compiled(params, key)
    jax.block_until_ready(grad)
    seconds = time.perf_counter() - t0
    run_hwm_kb = _rss_kb("VmHWM")
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    events, exhausted = count(params, key)  # after the peaks are read
    mb = lambda kb: round(kb / 1024, 1)  # noqa: E731
    out = {
        "workload": workload,
        "runs": runs,
        "events_per_trajectory": round(int(events) / runs, 2),
        "exhausted_trajectories": int(exhausted),
        "seconds": round(seconds, 3),
        "baseline_rss_mb": mb(baseline_kb),
        "rss_before_run_mb": mb(rss_before_run_kb),
        "ru_maxrss_after_import_mb": mb(maxrss_import_kb),
        "ru_maxrss_final_mb": mb(maxrss_kb),
        "ru_maxrss_final_minus_baseline_rss_mb": mb(maxrss_kb - baseline_kb),
        "hwm_reset_supported": reset,
        "xla_memory_analysis": analysis,
    }
    if reset:
        out.update(
            compile_peak_mb=mb(compile_hwm_kb),
            execution_peak_mb=mb(run_hwm_kb),
            compile_peak_minus_baseline_mb=mb(compile_hwm_kb - baseline_kb),
            execution_peak_minus_baseline_mb=mb(run_hwm_kb - baseline_kb),
            execution_peak_minus_rss_before_run_mb=mb(run_hwm_kb - rss_before_run_kb),
            peak_rss_minus_baseline_mb=mb(max(compile_hwm_kb, run_hwm_kb) - baseline_kb),
        )
    else:  # no resettable high-water mark: fall back to ru_maxrss (includes the import transient)
        out["peak_rss_minus_baseline_mb"] = mb(maxrss_kb - baseline_kb)
    return out


def measure_memory(workload, runs):
    import jax

    devices = str(len(jax.devices("cpu")))
    cmd = [sys.executable, os.path.abspath(__file__), "--devices", devices, "--memory-child", workload, str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": f"child exited {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------- peers


def rebop_system(spec):
    import rebop

    system = rebop.Gillespie()
    for reactants, products, name in spec["reactions"]:
        expand = lambda side: [s for s, n in side.items() for _ in range(n)]  # noqa: E731
        system.add_reaction(peer_rate(spec, reactants, name), expand(reactants), expand(products))
    return system


def rebop_bench(spec, runs, repeats, count_runs):
    """rebop, one trajectory per call, recorded on the same grid, single thread.

    ``public``: ``Gillespie.run`` (returns an xarray Dataset per trajectory). ``core``: the compiled
    ``_lib`` object's ``run`` that ``Gillespie.run`` wraps (same Rust simulation, no xarray). Steps
    are not in grid output: events per trajectory are counted exactly from ``count_runs``
    event-resolved runs (``nb_steps=0``, every reaction returned) with other seeds, and the timed
    runs' steps are estimated as runs x that mean.
    """
    import numpy as np

    system = rebop_system(spec)
    init = dict(spec["species"])
    t_end, points = spec["t_end"], spec["points"]
    counts = []
    for i in range(count_runs):
        ds = system.run(init, t_end, 0, rng=10_000_000 + i)
        counts.append(ds.sizes["time"] - 1)  # row 0 is the initial state, then one row per reaction
    per_traj = float(np.mean(counts))

    def public(seed0):
        finals = []
        for i in range(runs):
            ds = system.run(init, t_end, points, rng=seed0 + i)
            finals.append([int(ds[s].values[-1]) for s in init])
        return np.mean(finals, axis=0)

    def core(seed0):
        lib = system.gillespie
        finals = []
        for i in range(runs):
            lib.set_init(init)
            _, result = lib.run(t_end, points, params={}, seed=seed0 + i, sparse=None, var_names=None)
            finals.append([int(result[s][-1]) for s in init])
        return np.mean(finals, axis=0)

    out = {"runs": runs, "events_per_trajectory": round(per_traj, 2), "event_count_runs": count_runs,
           "steps_estimated": True}
    for label, fn in (("public", public), ("core", core)):
        fn(1)  # warm-up
        times, final = [], None
        for r in range(repeats):
            t0 = time.perf_counter()
            final = fn((r + 1) * 1_000_003)
            times.append(time.perf_counter() - t0)
        res = summarise(times, [round(per_traj * runs)] * repeats)
        res["mean_final_state"] = [round(float(v), 3) for v in final]
        out[label] = res
    return out


def gillespy2_model(spec):
    import gillespy2
    import numpy as np

    model = gillespy2.Model(name="bench")
    species = {s: gillespy2.Species(name=s, initial_value=n, mode="discrete") for s, n in spec["species"].items()}
    model.add_species(list(species.values()))
    for j, (reactants, products, name) in enumerate(spec["reactions"]):
        p = gillespy2.Parameter(name=f"{name}_g", expression=repr(peer_rate(spec, reactants, name)))
        model.add_parameter(p)
        model.add_reaction(gillespy2.Reaction(
            name=f"r{j}", reactants={species[s]: n for s, n in reactants.items()},
            products={species[s]: n for s, n in products.items()}, rate=p))
    model.timespan(np.linspace(0.0, spec["t_end"], spec["points"] + 1))
    return model


def gillespy2_bench(spec, solver_name, runs, repeats, events_per_trajectory):
    """gillespy2 with an exact SSA solver; compilation (C++) is excluded from the timings.

    gillespy2 returns states on the grid only, so steps are estimated as runs x the events per
    trajectory counted exactly by rebop's event-resolved runs of the same model (same law).
    """
    import gillespy2
    import numpy as np

    # gillespy2 runs SCons as `<resolved sys.executable> -m SCons` unless a `scons` executable is on
    # PATH; in a virtualenv the resolved interpreter is the base one, without SCons. Put the venv's
    # bin (which has pip's `scons` script) first on PATH.
    bindir = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(bindir, "scons")) and bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    model = gillespy2_model(spec)
    t0 = time.perf_counter()
    solver = getattr(gillespy2, solver_name)(model=model)
    build = time.perf_counter() - t0
    model.run(solver=solver, number_of_trajectories=min(runs, 2), seed=1)  # warm-up
    times, final = [], None
    for r in range(repeats):
        t0 = time.perf_counter()
        results = model.run(solver=solver, number_of_trajectories=runs, seed=100 + r)
        times.append(time.perf_counter() - t0)
        final = np.mean([[traj[s][-1] for s in spec["species"]] for traj in results], axis=0)
    out = summarise(times, [round(events_per_trajectory * runs)] * repeats)
    out.update(solver=solver_name, runs=runs, build_seconds=round(build, 2), steps_estimated=True,
               events_per_trajectory=events_per_trajectory,
               mean_final_state=[round(float(v), 3) for v in final])
    return out


def guarded(label, fn, *args):
    log(f"[bench] {label} ...")
    t0 = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - a failing peer is recorded, not fatal
        log(f"[bench] {label} FAILED: {exc!r}")
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    log(f"[bench] {label} done in {time.perf_counter() - t0:.1f} s: "
        f"{out.get('median_steps_per_s', out.get('core', {}).get('median_steps_per_s', ''))} steps/s")
    return out


def ratio(a, b):
    try:
        return round(a["median_steps_per_s"] / b["median_steps_per_s"], 3)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


# --------------------------------------------------------------------------------------- main


def run_benchmark(args):
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    dimer_runs = [1000, 4000] if quick else [10_000, 100_000]
    random_runs = 1000 if quick else 10_000
    peer_runs = {"rebop": 100 if quick else 2000, "rebop_count": 50 if quick else 500,
                 "SSACSolver": 100 if quick else 2000, "NumPySSASolver": 2 if quick else 10}
    specs = {"dimerisation": DIMERISATION, "random50": random_network_spec()}

    result = {
        "benchmark": "diffssa throughput",
        "command": "python benchmarks/throughput.py" + (" --quick" if quick else "")
                   + (f" --devices {args.devices}" if args.devices else ""),
        "quick": quick,
        "repeats": repeats,
        "step_definition": ("one reaction event fired per trajectory, from Trajectories.events; "
                            "the differentiable path's count includes thinning null events"),
        "machine": machine_info(),
        "workloads": {},
    }
    for name, spec in specs.items():
        result["workloads"][name] = {
            "description": spec["description"],
            "species": len(spec["species"]),
            "reactions": len(spec["reactions"]),
            "initial": spec["species"] if len(spec["species"]) <= 2 else "uniform integers on [50, 200]",
            "parameters": spec["parameters"] if len(spec["parameters"]) <= 2 else "see random_network_spec",
            "t_end": spec["t_end"],
            "recorded_times": spec["points"] + 1,
            "max_steps": spec["max_steps"],
            "loss": spec["loss"],
            "diffssa": {},
            "peers": {},
        }

    # diffssa -------------------------------------------------------------------------------
    dimer = result["workloads"]["dimerisation"]
    for runs in dimer_runs:
        dimer["diffssa"][f"forward_B{runs}"] = guarded(f"dimerisation forward B={runs}", diffssa_forward,
                                                        DIMERISATION, runs, repeats)
        dimer["diffssa"][f"gradient_B{runs}"] = guarded(f"dimerisation forward+backward B={runs}",
                                                         diffssa_gradient, DIMERISATION, runs, repeats)
    dimer["diffssa"][f"forward_next_reaction_B{dimer_runs[-1]}"] = guarded(
        f"dimerisation forward, next-reaction method, B={dimer_runs[-1]}", diffssa_forward, DIMERISATION,
        dimer_runs[-1], repeats, "next-reaction")
    mem_runs = dimer_runs[-1]
    dimer["diffssa"][f"gradient_memory_B{mem_runs}"] = guarded(
        f"dimerisation gradient memory B={mem_runs} (subprocess)", measure_memory, "dimerisation", mem_runs)
    rnd = result["workloads"]["random50"]
    rnd["diffssa"][f"forward_B{random_runs}"] = guarded(f"random50 forward B={random_runs}", diffssa_forward,
                                                        specs["random50"], random_runs, repeats)
    rnd["diffssa"][f"gradient_B{random_runs}"] = guarded(f"random50 forward+backward B={random_runs}",
                                                         diffssa_gradient, specs["random50"], random_runs, repeats)

    # peers -----------------------------------------------------------------------------------
    for name, spec in specs.items():
        w = result["workloads"][name]
        if args.no_peers:
            w["peers"] = {"skipped": "--no-peers"}
            continue
        rb = guarded(f"{name} rebop", rebop_bench, spec, peer_runs["rebop"], repeats, peer_runs["rebop_count"])
        w["peers"]["rebop"] = rb
        # events per trajectory for peers that only return grid states: rebop's exact count, or
        # diffssa's forward count (same law) if rebop is unavailable.
        per_traj = rb.get("events_per_trajectory")
        if per_traj is None:
            fwd = next(v for k, v in w["diffssa"].items() if k.startswith("forward"))
            per_traj = fwd.get("events_per_trajectory")
        for solver in ("SSACSolver", "NumPySSASolver"):
            w["peers"][f"gillespy2_{solver}"] = guarded(f"{name} gillespy2 {solver}", gillespy2_bench, spec, solver,
                                                       peer_runs[solver], repeats, per_traj)

    # ratios ----------------------------------------------------------------------------------
    n_devices = len(result["machine"]["devices"])
    for name, w in result["workloads"].items():
        ratios = {}
        for label, ours in w["diffssa"].items():
            if not label.startswith("forward"):
                continue
            for peer, theirs in w["peers"].items():
                if not isinstance(theirs, dict):
                    continue
                if peer == "rebop":
                    for variant in ("public", "core"):
                        if variant in theirs:
                            ratios[f"{label}/rebop_{variant}"] = ratio(ours, theirs[variant])
                else:
                    ratios[f"{label}/{peer}"] = ratio(ours, theirs)
        w["ratios_diffssa_over_peer"] = ratios
        # peers run on one core; diffssa on result["machine"]["devices"] (one per core)
        w["ratios_per_core"] = {k: (round(v / n_devices, 3) if v is not None else None) for k, v in ratios.items()}

    # targets ----------------------------------------------------------------------------------
    big = dimer_runs[-1]
    fwd = dimer["diffssa"].get(f"forward_B{big}", {})
    grad = dimer["diffssa"].get(f"gradient_B{big}", {})
    mem = dimer["diffssa"].get(f"gradient_memory_B{big}", {})

    def target(value, bound, op):
        if value is None:
            return {"value": None, "target": bound, "pass": False}
        return {"value": value, "target": bound, "pass": bool(value >= bound if op == ">=" else value <= bound)}

    result["targets"] = {
        "note": ("targets are defined at B=100000 (dimerisation, ~1000 events per trajectory)"
                 + ("; --quick ran a smaller B, so these are NOT the target measurements" if quick else "")),
        "B": big,
        "forward_steps_per_s >= 3e7": target(fwd.get("median_steps_per_s"), 3e7, ">="),
        "forward_backward_steps_per_s >= 1e7": target(grad.get("median_steps_per_s"), 1e7, ">="),
        "backward_peak_rss_minus_baseline_mb <= 300": target(mem.get("peak_rss_minus_baseline_mb"), 300, "<="),
        "backward_execution_peak_minus_baseline_mb <= 300": target(mem.get("execution_peak_minus_baseline_mb"), 300, "<="),
        "backward_xla_memory_analysis_mb <= 300": target(mem.get("xla_memory_analysis", {}).get("xla_total_mb"), 300, "<="),
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches and 1 repeat (smoke run)")
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3, 1 with --quick)")
    parser.add_argument("--no-peers", action="store_true", help="skip rebop and gillespy2")
    parser.add_argument("--devices", type=int, default=None,
                        help="JAX CPU devices the batch is split over (default: one per available core)")
    parser.add_argument("--memory-child", nargs=2, metavar=("WORKLOAD", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from diffssa import use_cpu_cores

    use_cpu_cores(args.devices)  # before any JAX operation

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return 0

    stdout = sys.stdout
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # anything a library prints goes to stderr
        result = run_benchmark(args)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    stdout.write(text + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
