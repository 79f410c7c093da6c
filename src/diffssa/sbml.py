"""SBML import and export (python-libsbml).

:func:`load_sbml` reads a model for *discrete stochastic* simulation: the state is species amounts
(molecule counts) and every kinetic law is used exactly as written, as the reaction's full propensity
(so ``k * X * (X - 1) / 2`` means what it says; SBML has no mass-action convention to reinterpret).
Global parameters become network parameters; local parameters become parameters named
``<reactionId>_<parameterId>``. Species that are only concentrations in math (``hasOnlySubstanceUnits
="false"``) read as ``amount / compartment size``; compartments are constants. Assignment rules of
parameters are inlined; a species assignment rule is kept exact when it is an affine function of
species with integer coefficients (the species then changes with every reaction and event that
changes its inputs). Initial assignments are evaluated at load. Events without delay or priority
become :class:`~diffssa.model.Event` objects. Anything else that would change the meaning of the model
(rate and algebraic rules, fast reactions, delays, packages, ...) is refused with an
:class:`SBMLError` naming the file, the element and its id.

:func:`write_sbml` writes a network as SBML Level 3 Version 1 that :func:`load_sbml` reads back to
the same network (mass-action laws written out as explicit propensities).
"""

from __future__ import annotations

import math
import re
from functools import reduce
from pathlib import Path

import libsbml

from .expressions import BinOp, Call, Expr, Neg, Num, Sym, evaluate, substitute, symbols
from .model import TIME, Event, MassAction, Propensity, Reaction, ReactionNetwork

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


class _Importer:
    """Reads one libsbml Model into a ReactionNetwork; every error names the file and the element."""

    def __init__(self, model: libsbml.Model, path: Path):
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

    def amount(self, name: str) -> int:
        v = self.value(name) * (1.0 if self.in_amounts(name) else self.size(name))
        if not (math.isfinite(v) and v >= 0 and abs(v - round(v)) <= 1e-9 * max(1.0, abs(v))):
            raise self.error("species", name, f"initial amount {v!r} is not a non-negative whole number")
        return int(round(v))

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
            return Sym(name) if self.in_amounts(name) else BinOp("/", Sym(name), Num(self.size(name)))
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
        expr = self._inlined(name, True)
        return expr if self.in_amounts(name) else BinOp("*", expr, Num(self.size(name)))

    def check_names(self, expr: Expr, allowed: set[str], kind: str, ident: str) -> Expr:
        for name in sorted(symbols(expr) - allowed):
            what = "time" if name == TIME else f"{name!r}, which is not a species or a parameter"
            raise self.error(kind, ident, f"math uses {what} (not supported here)")
        return expr


def _affine(expr: Expr, species: set[str]):
    """``(constant, {species: coefficient})`` if ``expr`` is affine in species with numeric coefficients."""
    if isinstance(expr, Num):
        return expr.value, {}
    if isinstance(expr, Sym):
        return (0.0, {expr.name: 1.0}) if expr.name in species else None
    if isinstance(expr, Neg):
        inner = _affine(expr.arg, species)
        return inner and (-inner[0], {s: -c for s, c in inner[1].items()})
    if not isinstance(expr, BinOp) or expr.op == "^":
        return None
    left, right = _affine(expr.left, species), _affine(expr.right, species)
    if left is None or right is None:
        return None
    if expr.op in "+-":
        sign = 1.0 if expr.op == "+" else -1.0
        coefs = dict(left[1])
        for s, c in right[1].items():
            coefs[s] = coefs.get(s, 0.0) + sign * c
        return left[0] + sign * right[0], coefs
    if expr.op == "*" and (not left[1] or not right[1]):
        (k, _), (c0, coefs) = (left, right) if not left[1] else (right, left)
        return k * c0, {s: k * c for s, c in coefs.items()}
    if expr.op == "/" and not right[1] and right[0] != 0:
        return left[0] / right[0], {s: c / right[0] for s, c in left[1].items()}
    return None


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


def load_sbml(path) -> ReactionNetwork:
    """Read an SBML file (any level/version libsbml reads) as a network of species amounts.

    Raises :class:`SBMLError` for a missing, malformed or invalid file (with libsbml's messages and
    line numbers) and for every feature that cannot be simulated exactly as written.
    """
    path = Path(path)
    if not path.is_file():
        raise SBMLError(f"{path}: no such file")
    doc = libsbml.readSBMLFromFile(str(path))
    _check_document(doc, path)
    m = doc.getModel()
    imp = _Importer(m, path)
    _refuse_unsupported(imp)
    for rule in m.getListOfRules():
        var = rule.getVariable()
        if var not in imp.species and var not in imp.params:
            raise imp.error("assignmentRule", var, "only species and parameters may be set by assignment rules")
        imp.rules[var] = imp.math(rule.getMath(), "assignmentRule", var)

    free = [s for s in imp.species if s not in imp.rules]
    params = {p: imp.value(p) for p in imp.params if p not in imp.rules}
    reactions = [_reaction(imp, r, params, free) for r in m.getListOfReactions()]
    derived = {s: _species_rule(imp, s, free) for s in imp.species if s in imp.rules}
    reactions = [_with_derived(r, derived) for r in reactions]
    events = [_event(imp, e, i, derived, set(params) | set(imp.species)) for i, e in enumerate(m.getListOfEvents())]
    species = {s: imp.amount(s) for s in imp.species}
    volume = 1.0
    if len(imp.compartments) == 1:
        (c,) = imp.compartments.values()
        if c.isSetSize() or c.getId() in imp.initial:
            volume = imp.value(c.getId())
    try:
        return ReactionNetwork(
            species, params, reactions, volume if math.isfinite(volume) and volume > 0 else 1.0, m.getId(), events
        )
    except ValueError as exc:
        raise SBMLError(f"{path}: model {m.getId()!r}: {exc}") from None


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


def _reaction(imp: _Importer, r, params: dict, free: list[str]) -> Reaction:
    """The reaction with its kinetic law as a Propensity; its local parameters are added to ``params``."""
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
    law = imp.resolve(substitute(imp.math(kl.getMath(), "reaction", rid), local))
    imp.check_names(law, set(params) | set(imp.species), "reaction", rid)
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
    return Reaction(sides[0], sides[1], Propensity(law), rid)


def _species_rule(imp: _Importer, name: str, free: list[str]):
    """(amount expression, integer coefficients) of a species set by an affine assignment rule."""
    expr = imp.rule_amount(name)
    form = _affine(expr, set(free))
    if form is None or any(not float(c).is_integer() for c in form[1].values()):
        raise imp.error(
            "assignmentRule", name,
            "a species assignment rule must be an affine function of species amounts with integer coefficients",
        )
    return expr, {s: int(c) for s, c in form[1].items() if c}


def _with_derived(r: Reaction, derived: dict) -> Reaction:
    """The reaction with the net change of rule-determined species added to its stoichiometry."""
    reactants, products = dict(r.reactants), dict(r.products)
    for s, (_, coefs) in derived.items():
        change = sum(c * (r.products.get(x, 0) - r.reactants.get(x, 0)) for x, c in coefs.items())
        if change:
            (products if change > 0 else reactants)[s] = abs(change)
    return Reaction(reactants, products, r.law, r.name)


def _event(imp: _Importer, e, index: int, derived: dict, allowed: set[str]) -> Event:
    """An Event; species set by affine rules get assignments that keep their rules true."""
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
        if var not in imp.species:
            raise imp.error("event", eid, f"assigns {var!r}; only species may be assigned by events")
        value = imp.resolve(imp.math(a.getMath(), "event", eid))
        if not imp.in_amounts(var):
            value = BinOp("*", value, Num(imp.size(var)))
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

    Raises ValueError for names that are not SBML ids and for laws given as Python callables.
    """
    names = set(network.species) | set(network.parameters)
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
    for p, v in network.parameters.items():
        par = m.createParameter()
        par.setId(p)
        par.setValue(v)
        par.setConstant(True)
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
