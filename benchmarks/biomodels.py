#!/usr/bin/env python
"""diffssa against libroadrunner's Gillespie integrator on the BioModels corpus of the tests.

Usage::

    python benchmarks/biomodels.py [--runs N] [--models BIOMD0000000012 ...] [--out docs/biomodels.json]
    python benchmarks/biomodels.py --table docs/biomodels.json      # the table of docs/biomodels.md
    python benchmarks/biomodels.py --p53                            # time events: exact, diffssa, roadrunner

For every model in ``tests/data/biomodels`` with settings in ``settings.json`` there (horizon,
recorded points, runs, ``scale`` as passed to :func:`diffssa.load_sbml`, species compared,
``expect``: ``"pass"`` or the text of the error it must be refused with, and ``roadrunner_until``:
compare only the recorded times before it), the model is loaded and
simulated ``runs`` times by diffssa and by roadrunner, and every compared species is compared at
every recorded time by ``z = (m1 - m2) / sqrt(s1^2 / n1 + s2^2 / n2)`` (means m, sample SDs s, runs
n; where both SDs are 0 the means must be equal). A model passes when ``max |z| < 5``.

roadrunner's Gillespie integrator takes the model's amounts, in its substance units, as molecule
counts and its kinetic laws as propensities. For a model loaded with a scale ``f`` (molecules per
substance unit), roadrunner is given an equivalent document rewritten with libsbml here, separately
from diffssa's importer: every species symbol ``s`` in math replaced by ``s / f``, kinetic laws and
the right-hand sides of assignments to species multiplied by ``f``, initial amounts multiplied by
``f`` and rounded to whole molecules (as diffssa rounds them).

Prints one JSON object on stdout (per model: loaded, ran, max |z|, seconds each, or the error).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

import libsbml
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "biomodels"
LIMIT = 5.0


def settings() -> dict:
    """Per-model settings, keyed by BioModels id."""
    return json.loads((CORPUS / "settings.json").read_text())["models"]


# ------------------------------------------------------------------------- roadrunner side
def _scaled(node: libsbml.ASTNode, ids: set[str], factor: float, times: bool) -> libsbml.ASTNode:
    """A new ASTNode: ``node`` with every species ``s`` read as ``s / factor``, times ``factor`` if ``times``."""
    formula = re.sub(r"[A-Za-z_][A-Za-z0-9_]*",
                     lambda w: f"({w[0]} / {factor!r})" if w[0] in ids else w[0],
                     libsbml.formulaToL3String(node))
    new = libsbml.parseL3Formula(f"{factor!r} * ({formula})" if times else formula)
    if new is None:
        raise ValueError(f"could not rescale {formula!r}: {libsbml.getLastParseL3Error()}")
    return new


def scaled_document(path: Path, factor: float) -> str:
    """The SBML text of ``path`` with amounts in units of 1/``factor`` substance units (molecules)."""
    doc = libsbml.readSBMLFromFile(str(path))
    m = doc.getModel()
    ids = {s.getId() for s in m.getListOfSpecies()}
    if factor == 1.0:
        return libsbml.writeSBMLToString(doc)
    for s in m.getListOfSpecies():
        size = m.getCompartment(s.getCompartment()).getSize()
        amount = s.getInitialAmount() if s.isSetInitialAmount() else s.getInitialConcentration() * size
        s.unsetInitialConcentration()
        s.setInitialAmount(float(round(amount * factor)))
    for r in m.getListOfReactions():
        kl = r.getKineticLaw()
        kl.setMath(_scaled(kl.getMath(), ids, factor, True))
    for holder in [*m.getListOfRules(), *m.getListOfInitialAssignments()]:
        var = holder.getVariable() if hasattr(holder, "getVariable") else holder.getSymbol()
        holder.setMath(_scaled(holder.getMath(), ids, factor, var in ids))
    for e in m.getListOfEvents():
        e.getTrigger().setMath(_scaled(e.getTrigger().getMath(), ids, factor, False))
        for a in e.getListOfEventAssignments():
            a.setMath(_scaled(a.getMath(), ids, factor, a.getVariable() in ids))
    return libsbml.writeSBMLToString(doc)


def roadrunner_runs(path: Path, factor: float, names: list[str], horizon: float, points: int, runs: int, seed: int):
    """(runs, points, len(names)) amounts from roadrunner's Gillespie integrator."""
    import roadrunner

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)  # its warning on time events is discussed in docs
    rr = roadrunner.RoadRunner(scaled_document(path, factor))
    rr.setIntegrator("gillespie")
    rr.timeCourseSelections = list(names)
    out = np.empty((runs, points, len(names)))
    for i in range(runs):
        rr.reset()
        rr.integrator.seed = seed + i
        out[i] = np.asarray(rr.simulate(0.0, horizon, points))
    return out


# ----------------------------------------------------------------------------- diffssa side
def diffssa_runs(network, names: list[str], horizon: float, points: int, runs: int, seed: int):
    """(runs, points, len(names)) counts (or observables) from diffssa, and the number of exhausted runs."""
    import diffssa

    traj = diffssa.simulate(network, np.linspace(0.0, horizon, points), key=seed, runs=runs, estimator=None,
                            max_steps=10_000_000, on_exhausted="ignore")
    states = np.asarray(traj.states)
    observables = getattr(traj, "observables", None) or {}
    columns = [np.asarray(observables[n]) if n in observables else states[..., traj.species.index(n)] for n in names]
    return np.stack(columns, axis=-1), int(np.sum(np.asarray(traj.exhausted)))


def max_z(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Largest |z| of the means of two (runs, T, S) samples, with its (time index, species index)."""
    m1, m2 = a.mean(0), b.mean(0)
    v = a.var(0, ddof=1) / a.shape[0] + b.var(0, ddof=1) / b.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v > 0, np.abs(m1 - m2) / np.sqrt(v), np.where(m1 == m2, 0.0, np.inf))
    where = np.unravel_index(int(np.argmax(z)), z.shape)
    return float(z[where]), (int(where[0]), int(where[1]))


def compare(model: str, config: dict, runs: int | None = None, seed: int = 20261203) -> dict:
    """Load, simulate and compare one model; a dict for the JSON report."""
    from diffssa import SBMLError, load_sbml

    path = CORPUS / f"{model}.xml"
    runs = runs or config["runs"]
    row: dict = {"model": model, "name": config.get("name", ""), "expect": config["expect"], "runs": runs}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = load_sbml(path, scale=config.get("scale"))
    except SBMLError as exc:
        row.update(loaded=False, error=str(exc).replace(str(ROOT) + "/", ""))
        return row
    row["loaded"] = True
    factor = molecules_per_unit(path, config.get("scale"))
    names = config.get("species") or list(network.species)
    horizon, points = float(config["horizon"]), int(config["points"])
    try:
        ours, exhausted = diffssa_runs(network, names, horizon, points, runs, seed)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        row.update(ran=False, error=f"{type(exc).__name__}: {exc}")
        return row
    row.update(ran=True, exhausted=exhausted, diffssa_s=round(time.perf_counter() - t0, 2))
    t1 = time.perf_counter()
    theirs = roadrunner_runs(path, factor, names, horizon, points, runs, seed)
    row["roadrunner_s"] = round(time.perf_counter() - t1, 2)
    until = config.get("roadrunner_until")
    compared = np.linspace(0.0, horizon, points) < until if until is not None else np.ones(points, bool)
    z, (ti, si) = max_z(ours[:, compared], theirs[:, compared])
    row.update(
        max_abs_z=round(z, 3), worst={"species": names[si], "time": round(ti * horizon / (points - 1), 6),
                                      "diffssa_mean": float(ours[:, ti, si].mean()),
                                      "roadrunner_mean": float(theirs[:, ti, si].mean())},
        passed=bool(z < LIMIT), species=names, horizon=horizon, points=points, scale=config.get("scale"),
        compared_times=int(compared.sum()),
    )
    return row


def molecules_per_unit(path: Path, scale) -> float:
    """The scale as a number; for ``"avogadro"`` read here from the model's substance unit (a mole unit)."""
    if scale != "avogadro":
        return 1.0 if scale is None else float(scale)
    m = libsbml.readSBMLFromFile(str(path)).getModel()
    definition = m.getUnitDefinition(m.getSubstanceUnits() or "substance")
    factor = 6.02214179e23
    for u in definition.getListOfUnits() if definition else []:
        factor *= (u.getMultiplier() * 10.0 ** u.getScale()) ** u.getExponent()
    return factor


def p53_window(runs: int = 400) -> list[dict]:
    """Mean damDNA of the Proctor 2008 p53 models at t = 4200 s: exact, diffssa, roadrunner.

    IR = 25 for 3600 <= t < 3660 (two time events); damDNA is made at kdam * IR and repaired at
    krepair * damDNA, so its mean is exact: kdam * 25 / krepair * (1 - e^(-60 krepair)) e^(-540 krepair).
    """
    import diffssa

    rows = []
    for model in ("BIOMD0000000188", "BIOMD0000000189"):
        path = CORPUS / f"{model}.xml"
        net = diffssa.load_sbml(path)
        kdam, krepair = net.parameters["kdam"], net.parameters["krepair"]
        exact = kdam * 25 / krepair * (1 - math.exp(-60 * krepair)) * math.exp(-540 * krepair)
        ours = np.asarray(diffssa.simulate(net, [4200.0], key=7, runs=runs, estimator=None)["damDNA"])[:, 0]
        theirs = roadrunner_runs(path, 1.0, ["damDNA"], 4200.0, 2, runs, 20261203)[:, -1, 0]
        row = {"model": model, "exact": round(exact, 3)}
        for name, x in (("diffssa", ours), ("roadrunner", theirs)):
            se = float(x.std(ddof=1) / math.sqrt(runs))
            row[name] = {"mean": round(float(x.mean()), 3), "se": round(se, 3), "z": round(float((x.mean() - exact) / se), 2)}
        rows.append(row)
    return rows


def markdown_table(report: dict) -> str:
    """The report as the Markdown table of docs/biomodels.md."""
    lines = ["| model | name | scale | horizon | runs | max abs z | diffssa s | roadrunner s | result |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if not r.get("loaded") or not r.get("ran"):
            result = "refused: " + r["error"].split(": ", 1)[1].replace("|", "/")
            lines.append(f"| {r['model']} | {r['name']} | | | | | | | {result} |")
            continue
        result = "pass" if r["passed"] else f"FAIL ({r['worst']['species']} at t = {r['worst']['time']})"
        if r["compared_times"] < r["points"]:
            result += f" (first {r['compared_times']} of {r['points']} times)"
        lines.append(f"| {r['model']} | {r['name']} | {r['scale']} | {r['horizon']:g} | {r['runs']} | "
                     f"{r['max_abs_z']:.2f} | {r['diffssa_s']:.1f} | {r['roadrunner_s']:.1f} | {result} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per simulator (default: per model)")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--out", default=None, help="also write the JSON here (e.g. docs/biomodels.json)")
    parser.add_argument("--table", default=None, help="print the Markdown table of a saved JSON report and exit")
    parser.add_argument("--p53", action="store_true", help="print the exact p53 irradiation check and exit")
    args = parser.parse_args(argv)
    if args.p53:
        print(json.dumps(p53_window(args.runs or 400), indent=1))
        return 0
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return 0
    table = settings()
    rows = []
    for model in args.models or sorted(table):
        row = compare(model, table[model], args.runs)
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    ok = [r for r in rows if r.get("passed")]
    report = {"limit": LIMIT, "models": len(rows), "passed": len(ok), "results": rows}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
