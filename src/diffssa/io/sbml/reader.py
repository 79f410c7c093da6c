"""Reading an SBML document into a :class:`~diffssa.model.ReactionNetwork` (:func:`load_sbml`).

The document is checked (libsbml's errors, packages and model-level features that would change the
model's meaning are refused), then the network is built: parameters and kinetic laws here, species
assignment rules in :mod:`.rules`, events in :mod:`.events`, initial counts by :mod:`.units`.

Reversible reactions
--------------------
A reversible reaction whose law is a difference ``forward - reverse`` (possibly multiplied or divided
by common factors, such as ``V * (kf * A * B - kr * C)``) is split into two irreversible reactions,
``<id>_forward`` and ``<id>_reverse``, as COPASI does. One whose law cannot be negative is kept as it is;
any other reversible reaction is refused when the model is loaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import libsbml

from ...expressions import Sym, evaluate, substitute
from ...kinetics import Propensity
from ...model import ReactionNetwork
from ...reactions import TIME, Reaction
from .errors import SBMLError
from .events import event, event_targets
from .forms import TimeSwitches, may_be_negative, split_net
from .importer import Importer
from .mathml import times
from .rules import affine_rule, read_by_laws_and_events, species_rule, with_derived
from .units import whole_counts

__all__ = ["load_sbml"]


def _check_document(doc: libsbml.SBMLDocument, path: Path) -> None:
    """Refuse SBML packages, a document without a model and libsbml's errors (unit checks off), with line numbers."""
    def raise_errors(what):
        errors = [doc.getError(i) for i in range(doc.getNumErrors())]
        errors = [e for e in errors if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
        if errors:
            lines = "\n".join(f"  line {e.getLine()}: {e.getMessage().strip()}" for e in errors)
            raise SBMLError(f"{path}: {what}:\n{lines}")

    for i in range(doc.getNumPlugins() if doc.getLevel() >= 3 else 0):  # Level 2 plugins are layout annotations
        package = doc.getPlugin(i).getPackageName()
        if package == "l3v2extendedmath":  # libsbml's name for L3V2 core math, on every L3V2 document:
            continue  # functions the reader does not know are refused by name (.mathml)
        raise SBMLError(f"{path}: package {package!r}: SBML packages are not supported")
    if doc.getNumUnknownPackages():
        raise SBMLError(f"{path}: package {doc.getUnknownPackagePrefix(0)!r}: SBML packages are not supported")
    raise_errors("invalid SBML")
    if doc.getModel() is None:
        raise SBMLError(f"{path}: the document has no model")
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.checkConsistency()
    raise_errors("inconsistent SBML")


def load_sbml(path, scale: None | float | str = None) -> ReactionNetwork:
    """Read an SBML file (any level/version libsbml reads) as a network of molecule counts.

    ``scale``: molecules per unit of the model's substance (see :mod:`.units`). ``None``: one
    unit is one molecule and initial amounts must be whole numbers; a positive number: that many
    molecules per unit; ``"avogadro"``: from the model's substance units (mole with its
    scale/multiplier times Avogadro's number, item and dimensionless 1). With a scale, initial
    counts are rounded to whole molecules (with a warning naming the species that changed).

    Raises :class:`SBMLError` for a missing, malformed or invalid file (with libsbml's messages and
    line numbers) and for every feature that cannot be simulated exactly as written.
    """
    path = Path(path)
    if not path.is_file():
        raise SBMLError(f"{path}: no such file")
    doc = libsbml.readSBMLFromFile(str(path))
    _check_document(doc, path)
    m = doc.getModel()
    imp = Importer(m, path, scale)
    _refuse_unsupported(imp)
    for rule in m.getListOfRules():
        var = rule.getVariable()
        if var not in imp.species and var not in imp.params:
            raise imp.error("assignmentRule", var, "only species and parameters may be set by assignment rules")
        imp.rules[var] = imp.math(rule.getMath(), "assignmentRule", var)

    free = [s for s in imp.species if s not in imp.rules]
    switched = event_targets(imp)
    params = {p: imp.value(p) for p in imp.params if p not in imp.rules and p not in switched}
    variables = {p: imp.value(p) for p in imp.params if p in switched}
    forcing = TimeSwitches(set(params) | set(imp.species) | set(imp.params) | set(imp.compartments))
    reactions = [x for r in m.getListOfReactions() for x in _reactions(imp, r, params, free, variables, forcing)]
    read = read_by_laws_and_events(imp, reactions)
    observables = {s: imp.rule_amount(s) for s in imp.rules
                   if s in imp.species and s not in read and affine_rule(imp, s, free) is None}
    derived = {s: species_rule(imp, s, free) for s in imp.rules if s in imp.species and s not in observables}
    reactions = [with_derived(r, derived) for r in reactions]
    allowed = set(params) | set(free) | set(derived) | set(variables)
    events = [event(imp, e, i, derived, allowed) for i, e in enumerate(m.getListOfEvents())]
    for s, expr in observables.items():
        imp.check_names(expr, allowed, "assignmentRule", s)
    counts = whole_counts(imp, {s: imp.amount(s) for s in free}, scale)
    counts |= whole_counts(imp, {s: float(evaluate(expr, counts)) for s, (expr, _) in derived.items()}, scale)
    species = {s: counts[s] for s in imp.species if s not in observables}
    volume = 1.0
    if len(imp.compartments) == 1:
        (c,) = imp.compartments.values()
        if c.isSetSize() or c.getId() in imp.initial:
            volume = imp.value(c.getId())
    try:
        return ReactionNetwork(
            species, params, reactions, volume if math.isfinite(volume) and volume > 0 else 1.0, m.getId(),
            events + forcing.events, variables | forcing.variables, observables,
        )
    except ValueError as exc:
        raise SBMLError(f"{path}: model {m.getId()!r}: {exc}") from None


def _refuse_unsupported(imp: Importer) -> None:
    """Model-level features that would change the meaning of the model if ignored."""
    m = imp.m
    ids = set(imp.species) | set(imp.params) | set(imp.compartments)
    if TIME in ids:
        raise imp.error("symbol", TIME, "the id 'time' is reserved for simulation time")
    for rule in m.getListOfRules():
        if not rule.isAssignment():
            kind = "algebraicRule" if rule.isAlgebraic() else "rateRule"
            raise imp.error(kind, rule.getVariable() or "(no variable)", f"{kind}s are not supported")
    if m.getNumConstraints():
        raise imp.error("constraint", m.getConstraint(0).getMetaId() or "#1", "constraints are not supported")
    if m.isSetConversionFactor():
        raise imp.error("model", m.getId(), "conversion factors are not supported")
    for s in imp.species.values():
        if s.isSetConversionFactor():
            raise imp.error("species", s.getId(), "conversion factors are not supported")
    for r in m.getListOfReactions():
        if r.isSetFast() and r.getFast():
            raise imp.error("reaction", r.getId(), "fast reactions are not supported")
        if r.getKineticLaw() is None:
            raise imp.error("reaction", r.getId(), "has no kinetic law")


def _reactions(imp: Importer, r, params: dict, free: list[str], variables: dict, forcing: TimeSwitches) \
        -> list[Reaction]:
    """The reaction with its kinetic law (times the scale) as a Propensity; a reversible one split in two.

    A reversible reaction whose law is a difference ``f - b`` (possibly times or divided by common
    factors) becomes ``<id>_forward`` (reactants -> products at rate ``f``) and ``<id>_reverse``
    (products -> reactants at rate ``b``) when neither part can be negative; one whose law cannot be
    negative is kept as it is; any other is refused. Comparisons of time with constants become variables switched by time events
    (``forcing``); any other use of time is refused. Local parameters are added to ``params``.
    """
    rid = r.getId()
    kl = r.getKineticLaw()
    local = {}
    for p in kl.getListOfParameters():
        name = f"{rid}_{p.getId()}"
        if name in params or name in imp.species or name in imp.compartments:
            raise imp.error("reaction", rid, f"local parameter {p.getId()!r} would be renamed {name!r}, which is taken")
        if not p.isSetValue():
            raise imp.error("reaction", rid, f"local parameter {p.getId()!r} has no value")
        params[name] = p.getValue()
        local[p.getId()] = Sym(name)
    law = substitute(imp.math(kl.getMath(), "reaction", rid), local)
    parts = split_net(law) if r.getReversible() else None
    if r.getReversible() and any(map(may_be_negative, parts or (law,))):
        raise imp.error(
            "reaction", rid,
            "reversible with a kinetic law that is not a difference of a forward and a reverse rate; "
            "write it as two irreversible reactions",
        )
    laws = []
    for part in parts or (law,):
        part = times(forcing.replace(imp.resolve(part), params), imp.factor)
        allowed = set(params) | set(imp.species) | set(variables) | set(forcing.variables)
        laws.append(Propensity(imp.check_names(part, allowed, "reaction", rid)))
    sides = []
    for refs in (r.getListOfReactants(), r.getListOfProducts()):
        side = {}
        for ref in refs:
            s = ref.getSpecies()
            n = ref.getStoichiometry()
            if ref.isSetStoichiometryMath() or math.isnan(n):  # NaN: not set in Level 3
                raise imp.error("reaction", rid, f"species {s!r}: stoichiometry must be a constant number")
            if not (math.isfinite(n) and n >= 0 and float(n).is_integer()):
                raise imp.error("reaction", rid, f"species {s!r}: stoichiometry {n!r} is not a non-negative integer")
            sp = imp.species[s]
            if n and not sp.getBoundaryCondition() and not sp.getConstant() and s in free:
                side[s] = side.get(s, 0) + int(n)
        sides.append(side)
    if parts is None:
        return [Reaction(sides[0], sides[1], laws[0], rid)]
    return [Reaction(sides[0], sides[1], laws[0], f"{rid}_forward"),
            Reaction(sides[1], sides[0], laws[1], f"{rid}_reverse")]
