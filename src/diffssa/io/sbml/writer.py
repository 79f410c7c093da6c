"""Writing a network as SBML Level 3 Version 1 (:func:`write_sbml`).

:func:`~diffssa.io.sbml.load_sbml` reads the file back to the same network: species in amounts in
one compartment of size ``network.volume``, mass-action laws written out as explicit propensities.
"""

from __future__ import annotations

import math
import re

import libsbml

from ...expressions import BinOp, Expr, Num, Sym, symbols
from ...kinetics import MassAction, Propensity
from ...model import ReactionNetwork
from ...reactions import TIME, Reaction
from .mathml import fold, to_mathml

__all__ = ["write_sbml"]

_SID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # the syntax of an SBML id (SId)


def _mass_action_law(r: Reaction, compartment: str) -> Expr:
    """``k * V^(1 - order) * prod_s C(x_s, n_s)`` written out, as :mod:`diffssa.kinetics` defines it."""
    order = sum(r.reactants.values())
    terms = [r.law.rate] + ([BinOp("^", Sym(compartment), Num(1.0 - order))] if order != 1 else [])
    for s, n in r.reactants.items():
        terms += [Sym(s) if i == 0 else BinOp("-", Sym(s), Num(float(i))) for i in range(n)]
    law = fold("*", terms, 1.0)
    divisor = math.prod(math.factorial(n) for n in r.reactants.values())
    return BinOp("/", law, Num(float(divisor))) if divisor != 1 else law


def _check(status: int, what: str) -> None:
    """Raise ValueError naming ``what`` unless a libsbml setter's ``status`` is success."""
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ValueError(f"libsbml could not set {what}: {libsbml.OperationReturnValue_toString(status)}")


def _fresh(name: str, used: set[str]) -> str:
    """``name`` with ``_`` appended until it is not in ``used``; added to ``used``."""
    while name in used:
        name += "_"
    used.add(name)
    return name


def _sbml_id(name: str, fallback: str, used: set[str]) -> str:
    """``name`` if it is an SBML id not in ``used``, else ``fallback`` made unique (:func:`_fresh`)."""
    return _fresh(name if _SID.match(name) and name not in used else fallback, used)


def _amount_species(m: libsbml.Model, sid: str, compartment: str, what: str) -> libsbml.Species:
    """A new non-constant species ``sid`` in ``compartment``, in amounts; ``what`` names it in errors."""
    sp = m.createSpecies()
    for status, part in [(sp.setId(sid), f"{what} id"), (sp.setCompartment(compartment), "compartment")]:
        _check(status, part)
    sp.setHasOnlySubstanceUnits(True)
    sp.setBoundaryCondition(False)
    sp.setConstant(False)
    return sp


def write_sbml(network: ReactionNetwork, path) -> None:
    """Write ``network`` as SBML Level 3 Version 1: amounts, one compartment of size ``network.volume``.

    Variables are written as non-constant parameters (events assign them, so they load back as
    variables); observables as species set by assignment rules (they load back as observables, or as
    exact counts when affine with integer coefficients). Raises ValueError for names that are not
    SBML ids and for laws given as Python callables.
    """
    names = set(network.species) | set(network.parameters) | set(network.variables) | set(network.observables)
    for n in sorted(names):
        if not _SID.match(n) or n == TIME:
            raise ValueError(f"{n!r} is not usable as an SBML id")
    used = set(names)
    compartment = _fresh("compartment", used)
    doc = libsbml.SBMLDocument(3, 1)
    m = doc.createModel()
    m.setId(network.name if _SID.match(network.name or "") else "model")
    c = m.createCompartment()
    for status, what in [(c.setId(compartment), "compartment id"), (c.setSize(network.volume), "volume")]:
        _check(status, what)
    c.setConstant(True)
    c.setSpatialDimensions(3)
    for s, n in network.species.items():
        _amount_species(m, s, compartment, "species").setInitialAmount(float(n))
    for p, v in [*network.parameters.items(), *network.variables.items()]:
        par = m.createParameter()
        par.setId(p)
        par.setValue(v)
        par.setConstant(p in network.parameters)
    for o, expr in network.observables.items():
        _amount_species(m, o, compartment, "observable")
        rule = m.createAssignmentRule()
        rule.setVariable(o)
        _check(rule.setMath(to_mathml(expr, names)), f"the expression of observable {o}")
    for i, r in enumerate(network.reactions):
        rid = _sbml_id(r.name, f"R{i + 1}", used)
        if isinstance(r.law, Propensity) and callable(r.law.law):
            raise ValueError(f"reaction {r.name}: a law given as a Python callable cannot be written to SBML")
        law = _mass_action_law(r, compartment) if isinstance(r.law, MassAction) else r.law.law
        rx = m.createReaction()
        rx.setId(rid)
        rx.setReversible(False)
        rx.setFast(False)
        for side, create in ((r.reactants, rx.createReactant), (r.products, rx.createProduct)):
            for s, n in side.items():
                ref = create()
                ref.setSpecies(s)
                ref.setStoichiometry(float(n))
                ref.setConstant(True)
        for s in sorted(symbols(law) & set(network.species) - set(r.reactants) - set(r.products)):
            rx.createModifier().setSpecies(s)
        _check(rx.createKineticLaw().setMath(to_mathml(law, names)), f"the kinetic law of reaction {rid}")
    for i, ev in enumerate(network.events):
        e = m.createEvent()
        eid = _sbml_id(ev.name, f"E{i + 1}", used)
        e.setId(eid)
        e.setUseValuesFromTriggerTime(True)
        trigger = e.createTrigger()
        trigger.setInitialValue(bool(ev.initial_value))
        trigger.setPersistent(True)
        _check(trigger.setMath(to_mathml(ev.trigger, names)), f"the trigger of event {eid}")
        for s, expr in ev.assignments.items():
            a = e.createEventAssignment()
            a.setVariable(s)
            _check(a.setMath(to_mathml(expr, names)), f"assignment to {s} in event {eid}")
    if not libsbml.writeSBMLToFile(doc, str(path)):
        raise OSError(f"could not write {path}")
