"""SBML import and export (python-libsbml).

:func:`load_sbml` reads a model for *discrete stochastic* simulation: the state is molecule counts
and every kinetic law is used exactly as written, as the reaction's full propensity (so
``k * X * (X - 1) / 2`` means what it says; SBML has no mass-action convention to reinterpret).
Global parameters become network parameters; local parameters become parameters named
``<reactionId>_<parameterId>``. Species that are only concentrations in math (``hasOnlySubstanceUnits
="false"``) read as ``amount / compartment size``; compartments are constants. Assignment rules of
parameters are inlined; a species assignment rule is kept exact when it is an affine function of
species with integer coefficients (the species then changes with every reaction and event that
changes its inputs); a species set by a rule of any other form that no kinetic law or event reads
becomes an *observable* (its amount in molecules, computed at the recorded times), and one that is
read is refused. Initial assignments are evaluated at load. Events without delay or priority
become :class:`~diffssa.model.Event` objects; parameters that events assign become network
*variables* (piecewise constant, changed only by events). A comparison of ``time`` with a threshold
that is a constant or parameter expression in a kinetic law (``piecewise(k, time < 10, 0)``, also
inside parameter rules) becomes a variable ``time_<op>_<threshold>`` holding the comparison's value
(1.0 or 0.0), flipped by an exact time event; any other use of ``time`` in a law is refused. Anything
else that would change the meaning of the model (rate and algebraic rules, fast reactions, delays,
packages, ...) is refused with an :class:`SBMLError` naming the file, the element and its id.

Amounts and molecules (``scale``)
---------------------------------
SBML amounts are in the model's substance unit and kinetic laws give substance per time. By default
(``scale=None``) one substance unit is one molecule, as libroadrunner's Gillespie integrator reads
a model: initial amounts (``initialAmount``, or ``initialConcentration`` times the compartment size)
must then be whole numbers, else the model is refused naming the species (a model whose tiny
concentrations would round to 0 is never loaded as zeros). With ``scale=f`` (molecules per
substance unit, as COPASI and GillesPy2 convert), or ``scale="avogadro"`` (``f`` from the substance
unit: mole times its multiplier and 10^scale times Avogadro's number 6.02214179e23, item and
dimensionless 1; species in different units are refused):

* a species' count is ``f * amount`` (``f * concentration * size``), rounded to the nearest whole
  molecule; a warning names every species whose count was rounded, and a model whose counts all
  round to 0 is refused;
* a species symbol in math reads ``count / f`` (``count / (f * size)`` as a concentration);
* every kinetic law is multiplied by ``f`` (substance per time to molecules per time), and so are
  event assignments and assignment rules of species.

Reversible reactions
--------------------
A reversible reaction whose law is a difference ``forward - reverse`` (possibly multiplied or divided
by common factors, such as ``V * (kf * A * B - kr * C)``) is split into two irreversible reactions,
``<id>_forward`` and ``<id>_reverse``, as COPASI does. One whose law cannot be negative is kept as it is;
any other reversible reaction is refused when the model is loaded.

:func:`write_sbml` writes a network as SBML Level 3 Version 1 that :func:`load_sbml` reads back to
the same network (mass-action laws written out as explicit propensities).
"""

from __future__ import annotations

import math
import re
import warnings
from functools import reduce
from pathlib import Path

import libsbml

from ..expressions import (
    BinOp,
    Call,
    Expr,
    Neg,
    Num,
    Sym,
    evaluate,
    substitute,
    symbols,
)
from ..model import TIME, Event, MassAction, Propensity, Reaction, ReactionNetwork
from .sbml_forms import TimeSwitches, affine_form, may_be_negative, split_net

__all__ = ["SBMLError", "load_sbml", "write_sbml"]


class SBMLError(ValueError):
    """An SBML file that cannot be read, or that uses a feature this importer does not support."""


# ------------------------------------------------------------------------------------- MathML
_CALLS = {
    libsbml.AST_FUNCTION_EXP: "exp",
    libsbml.AST_FUNCTION_LN: "log",
    libsbml.AST_FUNCTION_ABS: "abs",
    libsbml.AST_FUNCTION_FLOOR: "floor",
    libsbml.AST_FUNCTION_CEILING: "ceil",
    libsbml.AST_FUNCTION_SIN: "sin",
    libsbml.AST_FUNCTION_COS: "cos",
    libsbml.AST_FUNCTION_TANH: "tanh",
    libsbml.AST_FUNCTION_MIN: "min",
    libsbml.AST_FUNCTION_MAX: "max",
    libsbml.AST_FUNCTION_PIECEWISE: "piecewise",
    libsbml.AST_LOGICAL_AND: "and",
    libsbml.AST_LOGICAL_OR: "or",
    libsbml.AST_LOGICAL_NOT: "not",
}
_RELATIONS = {
    libsbml.AST_RELATIONAL_EQ: "eq",
    libsbml.AST_RELATIONAL_NEQ: "neq",
    libsbml.AST_RELATIONAL_LT: "lt",
    libsbml.AST_RELATIONAL_LEQ: "leq",
    libsbml.AST_RELATIONAL_GT: "gt",
    libsbml.AST_RELATIONAL_GEQ: "geq",
}
_ARITHMETIC = {libsbml.AST_PLUS: "+", libsbml.AST_MINUS: "-", libsbml.AST_TIMES: "*", libsbml.AST_DIVIDE: "/"}
_CONSTANTS = {
    libsbml.AST_CONSTANT_PI: math.pi,
    libsbml.AST_CONSTANT_E: math.e,
    libsbml.AST_CONSTANT_TRUE: 1.0,
    libsbml.AST_CONSTANT_FALSE: 0.0,
    libsbml.AST_NAME_AVOGADRO: 6.02214179e23,  # the SBML Level 3 Version 1 value
}


def _fold(op: str, args: list[Expr], empty: float) -> Expr:
    return reduce(lambda a, b: BinOp(op, a, b), args) if args else Num(empty)


def _times(expr: Expr, factor: float) -> Expr:
    return expr if factor == 1.0 else BinOp("*", expr, Num(factor))


# ----------------------------------------------------------------------------- units
_AVOGADRO = _CONSTANTS[libsbml.AST_NAME_AVOGADRO]
_PER_KIND = {libsbml.UNIT_KIND_MOLE: _AVOGADRO, libsbml.UNIT_KIND_ITEM: 1.0, libsbml.UNIT_KIND_DIMENSIONLESS: 1.0}


def _unit_molecules(imp: _Importer, unit: str) -> float:
    """Molecules in one ``unit`` (an SBML unit id: a base unit or a unit definition of mole/item)."""
    if not unit:
        if imp.m.getLevel() >= 3:
            raise imp.error("model", imp.m.getId(), "scale='avogadro' needs the model's substanceUnits to be set")
        unit = "substance"
    definition = imp.m.getUnitDefinition(unit)
    if definition is None:
        kind = libsbml.UnitKind_forName("mole" if unit == "substance" else unit)
        if kind in _PER_KIND:
            return _PER_KIND[kind]
        raise imp.error("unit", unit, "is not a substance unit (mole, item or dimensionless)")
    factor = 1.0
    for u in definition.getListOfUnits():
        kind = u.getKind()
        if kind not in _PER_KIND or (u.getExponent() != 1 and kind != libsbml.UNIT_KIND_DIMENSIONLESS):
            raise imp.error("unitDefinition", unit, "is not a substance unit (mole, item or dimensionless)")
        factor *= (u.getMultiplier() * 10.0 ** u.getScale()) ** u.getExponent() * _PER_KIND[kind]
    return factor


def _molecules_per_unit(imp: _Importer, scale) -> float:
    """Molecules per model substance unit: ``scale`` itself, or from the substance units with ``"avogadro"``."""
    if scale == "avogadro":
        default = imp.m.getSubstanceUnits() if imp.m.getLevel() >= 3 else "substance"
        units = {s.getSubstanceUnits() or default for s in imp.species.values()}
        factors = {u: _unit_molecules(imp, u) for u in sorted(units)}
        if len(set(factors.values())) > 1:
            raise imp.error("model", imp.m.getId(), f"species use different substance units {sorted(units)}")
        return next(iter(factors.values()), 1.0)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0:
        return float(scale)
    raise SBMLError(f"{imp.path}: scale must be None, 'avogadro' or a positive number, not {scale!r}")


class _Importer:
    """Reads one libsbml Model into a ReactionNetwork; every error names the file and the element."""

    def __init__(self, model: libsbml.Model, path: Path, scale=None):
        self.m, self.path = model, path
        self.functions = {f.getId(): f for f in model.getListOfFunctionDefinitions()}
        self.species = {s.getId(): s for s in model.getListOfSpecies()}
        self.params = {p.getId(): p for p in model.getListOfParameters()}
        self.compartments = {c.getId(): c for c in model.getListOfCompartments()}
        self.initial = {a.getSymbol(): a for a in model.getListOfInitialAssignments()}
        self.rules: dict[str, Expr] = {}
        self._values: dict[str, float] = {}
        self._resolved: dict[tuple[str, bool], Expr] = {}
        self._busy: set[str] = set()
        self.factor = 1.0 if scale is None else _molecules_per_unit(self, scale)

    def error(self, kind: str, ident: str, message: str) -> SBMLError:
        return SBMLError(f"{self.path}: {kind} {ident!r}: {message}")

    # ----------------------------------------------------------------------------- math
    def math(self, node, kind: str, ident: str) -> Expr:
        """The expression of a libsbml ASTNode, user functions inlined, SBML ids as symbols."""
        if node is None:
            raise self.error(kind, ident, "missing math")
        t = node.getType()
        args = [self.math(node.getChild(i), kind, ident) for i in range(node.getNumChildren())]
        if t == libsbml.AST_INTEGER:
            return Num(float(node.getInteger()))
        if t in (libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL):
            return Num(float(node.getReal()))
        if t == libsbml.AST_NAME:
            return Sym(node.getName())
        if t == libsbml.AST_NAME_TIME:
            return Sym(TIME)
        if t in _CONSTANTS:
            return Num(_CONSTANTS[t])
        if t == libsbml.AST_MINUS and len(args) == 1:
            return Neg(args[0])
        if t in _ARITHMETIC and (len(args) == 2 or t in (libsbml.AST_PLUS, libsbml.AST_TIMES)):
            return _fold(_ARITHMETIC[t], args, 1.0 if t == libsbml.AST_TIMES else 0.0)
        if t in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER) and len(args) == 2:
            return BinOp("^", *args)
        if t == libsbml.AST_FUNCTION_LOG and len(args) in (1, 2):
            base, x = args if len(args) == 2 else (Num(10.0), args[0])
            return Call("log10", (x,)) if base == Num(10.0) else BinOp("/", Call("log", (x,)), Call("log", (base,)))
        if t == libsbml.AST_FUNCTION_ROOT and len(args) in (1, 2):
            degree, x = args if len(args) == 2 else (Num(2.0), args[0])
            return Call("sqrt", (x,)) if degree == Num(2.0) else BinOp("^", x, BinOp("/", Num(1.0), degree))
        if t in _RELATIONS and len(args) >= 2:
            pairs = [Call(_RELATIONS[t], (a, b)) for a, b in zip(args, args[1:])]
            return pairs[0] if len(pairs) == 1 else Call("and", tuple(pairs))
        if t == libsbml.AST_LOGICAL_XOR and args:
            return reduce(lambda a, b: Call("neq", (a, b)), args)
        if t in _CALLS and args:
            return Call(_CALLS[t], tuple(args))
        if t == libsbml.AST_FUNCTION and node.getName() in self.functions:
            fd = self.functions[node.getName()]
            names = [fd.getArgument(i).getName() for i in range(fd.getNumArguments())]
            if len(names) != len(args):
                raise self.error(kind, ident, f"function {fd.getId()!r} takes {len(names)} arguments, got {len(args)}")
            return substitute(self.math(fd.getBody(), "functionDefinition", fd.getId()), dict(zip(names, args)))
        raise self.error(kind, ident, f"unsupported MathML {libsbml.formulaToL3String(node)!r}")

    # ------------------------------------------------------------- values at time 0
    def value(self, name: str) -> float:
        """Numeric value of an SBML symbol at time 0 (species in their SBML units), rules applied."""
        if name == TIME:
            return 0.0
        if name not in self._values:
            if name in self._busy:
                raise self.error("symbol", name, "circular initial assignments or assignment rules")
            self._busy.add(name)
            self._values[name] = self._initial_value(name)
            self._busy.discard(name)
        return self._values[name]

    def _initial_value(self, name: str) -> float:
        expr = self.rules.get(name)
        if expr is None and name in self.initial:
            expr = self.math(self.initial[name].getMath(), "initialAssignment", name)
        if expr is not None:
            return float(evaluate(expr, {n: self.value(n) for n in symbols(expr)}))
        if name in self.compartments:
            c = self.compartments[name]
            if not c.isSetSize():
                raise self.error("compartment", name, "size is not set but is needed")
            return c.getSize()
        if name in self.params:
            if not self.params[name].isSetValue():
                raise self.error("parameter", name, "value is not set")
            return self.params[name].getValue()
        if name in self.species:
            s = self.species[name]
            if s.isSetInitialAmount():
                amount = s.getInitialAmount()
                return amount if self.in_amounts(name) else amount / self.value(s.getCompartment())
            if s.isSetInitialConcentration():
                conc = s.getInitialConcentration()
                return conc if not self.in_amounts(name) else conc * self.value(s.getCompartment())
            raise self.error("species", name, "has no initial amount, concentration or assignment")
        raise self.error("symbol", name, "is not a species, parameter or compartment")

    def size(self, species: str) -> float:
        """Size of the compartment of a species."""
        return self.value(self.species[species].getCompartment())

    def in_amounts(self, name: str) -> bool:
        """Whether the species' symbol means its amount (not its concentration) in math."""
        s = self.species[name]
        return s.getHasOnlySubstanceUnits() or self.compartments[s.getCompartment()].getSpatialDimensions() == 0

    def to_amount(self, name: str) -> float:
        """Molecules per unit of the species' symbol in math (amount or concentration)."""
        return self.factor * (1.0 if self.in_amounts(name) else self.size(name))

    def amount(self, name: str) -> float:
        """Initial molecule count (unrounded) of a species."""
        v = self.value(name) * self.to_amount(name)
        if not (math.isfinite(v) and v >= 0):
            raise self.error("species", name, f"initial amount {v!r} is not a non-negative number")
        return v

    # ------------------------------------------------------------------ symbolic
    def resolve(self, expr: Expr, inline_species: bool = False) -> Expr:
        """Rewrite SBML symbols to network terms: rules inlined, compartments numeric, species in amounts."""
        return substitute(expr, {n: self._meaning(n, inline_species) for n in symbols(expr)})

    def _meaning(self, name: str, inline_species: bool) -> Expr:
        if name in self.compartments:
            return Num(self.value(name))
        if name in self.species:
            if name in self.rules and inline_species:
                return self._inlined(name, inline_species)
            unit = self.to_amount(name)
            return Sym(name) if unit == 1.0 else BinOp("/", Sym(name), Num(unit))
        if name in self.rules:
            return self._inlined(name, inline_species)
        return Sym(name)

    def _inlined(self, name: str, inline_species: bool) -> Expr:
        """A rule's variable as an expression (a species' in concentration units if that is how it reads)."""
        key = (name, inline_species)
        if key not in self._resolved:
            if name in self._busy:
                raise self.error("assignmentRule", name, "assignment rules form a cycle")
            self._busy.add(name)
            self._resolved[key] = self.resolve(self.rules[name], inline_species)
            self._busy.discard(name)
        return self._resolved[key]

    def rule_amount(self, name: str) -> Expr:
        """A rule-determined species as an expression of the other species' amounts."""
        return _times(self._inlined(name, True), self.to_amount(name))

    def check_names(self, expr: Expr, allowed: set[str], kind: str, ident: str) -> Expr:
        for name in sorted(symbols(expr) - allowed):
            what = "time (other than compared with a constant threshold)" if name == TIME else f"{name!r}, which is not a species or a parameter"
            raise self.error(kind, ident, f"math uses {what} (not supported here)")
        return expr


def _check_document(doc: libsbml.SBMLDocument, path: Path) -> None:
    def raise_errors(what):
        errors = [doc.getError(i) for i in range(doc.getNumErrors())]
        errors = [e for e in errors if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
        if errors:
            lines = "\n".join(f"  line {e.getLine()}: {e.getMessage().strip()}" for e in errors)
            raise SBMLError(f"{path}: {what}:\n{lines}")

    for i in range(doc.getNumPlugins() if doc.getLevel() >= 3 else 0):  # Level 2 plugins are layout annotations
        raise SBMLError(f"{path}: package {doc.getPlugin(i).getPackageName()!r}: SBML packages are not supported")
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

    ``scale``: molecules per unit of the model's substance (see the module docstring). ``None``: one
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
    imp = _Importer(m, path, scale)
    _refuse_unsupported(imp)
    for rule in m.getListOfRules():
        var = rule.getVariable()
        if var not in imp.species and var not in imp.params:
            raise imp.error("assignmentRule", var, "only species and parameters may be set by assignment rules")
        imp.rules[var] = imp.math(rule.getMath(), "assignmentRule", var)

    free = [s for s in imp.species if s not in imp.rules]
    switched = _event_targets(imp)
    params = {p: imp.value(p) for p in imp.params if p not in imp.rules and p not in switched}
    variables = {p: imp.value(p) for p in imp.params if p in switched}
    forcing = TimeSwitches(set(params) | set(imp.species) | set(imp.params) | set(imp.compartments))
    reactions = [x for r in m.getListOfReactions() for x in _reactions(imp, r, params, free, variables, forcing)]
    read = _read_by_laws_and_events(imp, reactions)
    observables = {s: imp.rule_amount(s) for s in imp.rules
                   if s in imp.species and s not in read and _affine_rule(imp, s, free) is None}
    derived = {s: _species_rule(imp, s, free) for s in imp.rules if s in imp.species and s not in observables}
    reactions = [_with_derived(r, derived) for r in reactions]
    allowed = set(params) | set(free) | set(derived) | set(variables)
    events = [_event(imp, e, i, derived, allowed) for i, e in enumerate(m.getListOfEvents())]
    for s, expr in observables.items():
        imp.check_names(expr, allowed, "assignmentRule", s)
    counts = _counts(imp, {s: imp.amount(s) for s in free}, scale)
    counts |= _counts(imp, {s: float(evaluate(expr, counts)) for s, (expr, _) in derived.items()}, scale)
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


def _counts(imp: _Importer, amounts: dict[str, float], scale) -> dict[str, int]:
    """Whole molecule counts: exact ones required without a scale, rounding reported with one."""
    counts = {s: round(v) for s, v in amounts.items()}
    off = {s: v for s, v in amounts.items() if abs(v - counts[s]) > 1e-9 * abs(v)}
    if off and scale is None:
        s, v = next(iter(off.items()))
        raise imp.error(
            "species", s,
            f"initial amount {v:.6g} is not a whole number of molecules; pass scale= (molecules per substance unit, "
            f"or 'avogadro' to convert from the model's units) to load it as counts",
        )
    if off and not any(counts.values()) and any(amounts.values()):
        raise imp.error("model", imp.m.getId(), f"every initial amount rounds to 0 molecules with scale={scale!r}")
    if off:
        listed = ", ".join(f"{s} {v:.6g} -> {counts[s]}" for s, v in list(off.items())[:8])
        more = f" and {len(off) - 8} more" if len(off) > 8 else ""
        warnings.warn(f"{imp.path}: initial amounts rounded to whole molecules: {listed}{more}", stacklevel=3)
    return counts


def _refuse_unsupported(imp: _Importer) -> None:
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


def _reactions(imp: _Importer, r, params: dict, free: list[str], variables: dict, forcing: TimeSwitches) \
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
        part = _times(forcing.replace(imp.resolve(part), params), imp.factor)
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


def _affine_rule(imp: _Importer, name: str, free: list[str]):
    """(amount expression, integer coefficients) of a species set by an affine assignment rule, else None."""
    expr = imp.rule_amount(name)
    form = affine_form(expr, set(free))
    if form is None or any(not float(c).is_integer() for c in form[1].values()):
        return None
    return expr, {s: int(c) for s, c in form[1].items() if c}


def _species_rule(imp: _Importer, name: str, free: list[str]):
    """:func:`_affine_rule` of a species that laws or events read, which must be affine."""
    rule = _affine_rule(imp, name, free)
    if rule is None:
        raise imp.error(
            "assignmentRule", name,
            "a species assignment rule that kinetic laws or events read must be an affine function of species "
            "amounts with integer coefficients",
        )
    return rule


def _event_targets(imp: _Importer) -> set[str]:
    """Parameters that events assign (they become variables); events assigning compartments are refused."""
    targets = set()
    for i, e in enumerate(imp.m.getListOfEvents()):
        for a in e.getListOfEventAssignments():
            var = a.getVariable()
            if var in imp.params:
                targets.add(var)
            elif var not in imp.species:
                raise imp.error("event", e.getId() or f"#{i + 1}",
                                f"assigns {var!r}; only species and parameters may be assigned by events")
    return targets


def _read_by_laws_and_events(imp: _Importer, reactions: list[Reaction]) -> set[str]:
    """Names the kinetic laws, event triggers and event assignments read (parameter rules inlined)."""
    read = set().union(*(symbols(r.law.law) for r in reactions))
    for i, e in enumerate(imp.m.getListOfEvents()):
        maths = [e.getTrigger().getMath()] + [a.getMath() for a in e.getListOfEventAssignments()]
        for node in maths:
            read |= symbols(imp.resolve(imp.math(node, "event", e.getId() or f"#{i + 1}")))
    return read


def _with_derived(r: Reaction, derived: dict) -> Reaction:
    """The reaction with the net change of rule-determined species added to its stoichiometry."""
    reactants, products = dict(r.reactants), dict(r.products)
    for s, (_, coefs) in derived.items():
        change = sum(c * (r.products.get(x, 0) - r.reactants.get(x, 0)) for x, c in coefs.items())
        if change:
            (products if change > 0 else reactants)[s] = abs(change)
    return Reaction(reactants, products, r.law, r.name)


def _event(imp: _Importer, e, index: int, derived: dict, allowed: set[str]) -> Event:
    """An Event; species set by affine rules get assignments that keep their rules true.

    Assignments to species are in molecules (rounded to the nearest whole one when the model is
    scaled); parameters that events assign are variables, assigned as they are.
    """
    eid = e.getId() or f"#{index + 1}"
    trigger = e.getTrigger()
    if e.isSetDelay():
        raise imp.error("event", eid, "delayed events are not supported")
    if e.isSetPriority():
        raise imp.error("event", eid, "event priorities are not supported")
    if trigger is None or not trigger.isSetMath():
        raise imp.error("event", eid, "has no trigger")
    if not trigger.getPersistent():
        raise imp.error("event", eid, "non-persistent triggers are not supported")
    if not e.getUseValuesFromTriggerTime() and imp.m.getNumEvents() > 1:  # without delay, other events could differ
        raise imp.error("event", eid, "useValuesFromTriggerTime='false' with other events is not supported")
    assignments = {}
    for a in e.getListOfEventAssignments():
        var = a.getVariable()
        value = imp.resolve(imp.math(a.getMath(), "event", eid))
        if var in imp.species:
            value = _times(value, imp.to_amount(var))
            if imp.factor != 1.0 and symbols(value):  # scaled amounts: rounded to whole molecules
                value = Call("floor", (BinOp("+", value, Num(0.5)),))
        assignments[var] = imp.check_names(value, allowed | {TIME}, "event", eid)
    for s, (expr, coefs) in derived.items():
        if set(coefs) & set(assignments):
            assignments[s] = substitute(expr, {x: assignments[x] for x in coefs if x in assignments})
    trig = imp.check_names(imp.resolve(imp.math(trigger.getMath(), "event", eid)), allowed | {TIME}, "event", eid)
    return Event(trig, assignments, eid, bool(trigger.getInitialValue()))


# --------------------------------------------------------------------------------- export
_SID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BINARY_AST = {op: t for t, op in _ARITHMETIC.items()} | {"^": libsbml.AST_POWER}
_CALL_AST = {name: t for t, name in {**_CALLS, **_RELATIONS}.items()} | {"ln": libsbml.AST_FUNCTION_LN}


def _node(kind, *children, value=None, name=None) -> libsbml.ASTNode:
    node = libsbml.ASTNode(kind)
    if value is not None:
        node.setValue(value)
    if name is not None:
        node.setName(name)
    for child in children:
        node.addChild(child)
    return node


def _ast(expr: Expr, names: set[str]) -> libsbml.ASTNode:
    """An SBML L3V1 ASTNode for an expression (functions SBML lacks are written out)."""
    if isinstance(expr, Num):
        v = float(expr.value)
        if v.is_integer() and abs(v) < 2**31:
            return _node(libsbml.AST_INTEGER, value=int(v))
        return _node(libsbml.AST_REAL, value=v)
    if isinstance(expr, Sym):
        if expr.name == TIME:
            return _node(libsbml.AST_NAME_TIME, name=TIME)
        if expr.name in ("pi", "e") and expr.name not in names:
            return _node(libsbml.AST_CONSTANT_PI if expr.name == "pi" else libsbml.AST_CONSTANT_E)
        return _node(libsbml.AST_NAME, name=expr.name)
    if isinstance(expr, Neg):
        return _node(libsbml.AST_MINUS, _ast(expr.arg, names))
    if isinstance(expr, BinOp):
        return _node(_BINARY_AST[expr.op], _ast(expr.left, names), _ast(expr.right, names))
    fn, args = expr.fn, expr.args
    if fn == "pow":
        return _ast(BinOp("^", *args), names)
    if fn == "log10":
        return _node(libsbml.AST_FUNCTION_LOG, _ast(Num(10.0), names), _ast(args[0], names))
    if fn == "sqrt":
        return _node(libsbml.AST_FUNCTION_ROOT, _ast(Num(2.0), names), _ast(args[0], names))
    if fn == "hill":
        x, k, n = args
        return _ast(BinOp("/", BinOp("^", x, n), BinOp("+", BinOp("^", k, n), BinOp("^", x, n))), names)
    if fn in ("min", "max"):
        pick = "leq" if fn == "min" else "geq"
        return _ast(reduce(lambda a, b: Call("piecewise", (a, Call(pick, (a, b)), b)), args), names)
    return _node(_CALL_AST[fn], *(_ast(a, names) for a in args))


def _mass_action_law(r: Reaction, compartment: str) -> Expr:
    """``k * V^(1 - order) * prod_s C(x_s, n_s)`` written out, as :mod:`diffssa.model` defines it."""
    order = sum(r.reactants.values())
    terms = [r.law.rate] + ([BinOp("^", Sym(compartment), Num(1.0 - order))] if order != 1 else [])
    for s, n in r.reactants.items():
        terms += [Sym(s) if i == 0 else BinOp("-", Sym(s), Num(float(i))) for i in range(n)]
    law = _fold("*", terms, 1.0)
    divisor = math.prod(math.factorial(n) for n in r.reactants.values())
    return BinOp("/", law, Num(float(divisor))) if divisor != 1 else law


def _check(status: int, what: str) -> None:
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ValueError(f"libsbml could not set {what}: {libsbml.OperationReturnValue_toString(status)}")


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
    compartment = "compartment"
    while compartment in names:
        compartment += "_"
    doc = libsbml.SBMLDocument(3, 1)
    m = doc.createModel()
    m.setId(network.name if _SID.match(network.name or "") else "model")
    c = m.createCompartment()
    for status, what in [(c.setId(compartment), "compartment id"), (c.setSize(network.volume), "volume")]:
        _check(status, what)
    c.setConstant(True)
    c.setSpatialDimensions(3)
    for s, n in network.species.items():
        sp = m.createSpecies()
        sp.setId(s)
        sp.setCompartment(compartment)
        sp.setInitialAmount(float(n))
        sp.setHasOnlySubstanceUnits(True)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
    for p, v in [*network.parameters.items(), *network.variables.items()]:
        par = m.createParameter()
        par.setId(p)
        par.setValue(v)
        par.setConstant(p in network.parameters)
    for o, expr in network.observables.items():
        sp = m.createSpecies()
        for status, what in [(sp.setId(o), "observable id"), (sp.setCompartment(compartment), "compartment")]:
            _check(status, what)
        sp.setHasOnlySubstanceUnits(True)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
        rule = m.createAssignmentRule()
        rule.setVariable(o)
        _check(rule.setMath(_ast(expr, names)), f"the expression of observable {o}")
    used = set(names) | {compartment}
    for i, r in enumerate(network.reactions):
        rid = r.name if _SID.match(r.name) and r.name not in used else f"R{i + 1}"
        while rid in used:
            rid += "_"
        used.add(rid)
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
        _check(rx.createKineticLaw().setMath(_ast(law, names)), f"the kinetic law of reaction {rid}")
    for i, ev in enumerate(network.events):
        e = m.createEvent()
        eid = ev.name if _SID.match(ev.name) and ev.name not in used else f"E{i + 1}"
        while eid in used:
            eid += "_"
        used.add(eid)
        e.setId(eid)
        e.setUseValuesFromTriggerTime(True)
        trigger = e.createTrigger()
        trigger.setInitialValue(bool(ev.initial_value))
        trigger.setPersistent(True)
        _check(trigger.setMath(_ast(ev.trigger, names)), f"the trigger of event {eid}")
        for s, expr in ev.assignments.items():
            a = e.createEventAssignment()
            a.setVariable(s)
            _check(a.setMath(_ast(expr, names)), f"assignment to {s} in event {eid}")
    if not libsbml.writeSBMLToFile(doc, str(path)):
        raise OSError(f"could not write {path}")
