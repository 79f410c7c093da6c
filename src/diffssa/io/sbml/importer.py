"""The symbols of one SBML model: their values at time 0 and their meaning in network terms."""

from __future__ import annotations

import math
from pathlib import Path

import libsbml

from ...expressions import BinOp, Expr, Num, Sym, evaluate, substitute, symbols
from ...reactions import TIME
from .errors import SBMLError
from .mathml import from_mathml, times
from .units import molecules_per_unit

__all__ = ["Importer"]


class Importer:
    """One libsbml Model's elements by id, as read into a network; every error names the file and the element.

    Evaluates initial values (initial assignments and assignment rules applied), converts species
    between their SBML units and molecules, and rewrites SBML math into network terms (rules
    inlined, compartments numeric, species in molecules). ``rules``: the assignment rules by
    variable, filled in by :func:`~diffssa.io.sbml.load_sbml`; ``factor``: molecules per model
    substance unit (the count scale, :mod:`.units`).
    """

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
        self.factor = 1.0 if scale is None else molecules_per_unit(self, scale)

    def error(self, kind: str, ident: str, message: str) -> SBMLError:
        """The SBMLError for element ``kind`` ``ident`` (``"reaction"``, ``"R1"``), naming the file."""
        return SBMLError(f"{self.path}: {kind} {ident!r}: {message}")

    def math(self, node, kind: str, ident: str) -> Expr:
        """The expression of a libsbml ASTNode in element ``kind`` ``ident`` (:func:`.mathml.from_mathml`)."""
        return from_mathml(node, self.functions, self.error, kind, ident)

    # ------------------------------------------------------------- values at time 0
    def value(self, name: str) -> float:
        """Numeric value of an SBML symbol at time 0 (species in their SBML units), rules applied."""
        if name == TIME:
            return 0.0
        return self._once(self._values, name, name, "symbol", "circular initial assignments or assignment rules",
                          lambda: self._initial_value(name))

    def _once(self, cache: dict, key, name: str, kind: str, cycle: str, compute):
        """``cache[key]``, from ``compute()`` the first time it is asked for.

        ``name`` asked for again while it computes (values and rule inlining share the guard) is a
        cycle: the error for element ``kind`` ``name`` says ``cycle``.
        """
        if key not in cache:
            if name in self._busy:
                raise self.error(kind, name, cycle)
            self._busy.add(name)
            cache[key] = compute()
            self._busy.discard(name)
        return cache[key]

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
        return self._once(self._resolved, key, name, "assignmentRule", "assignment rules form a cycle",
                          lambda: self.resolve(self.rules[name], inline_species))

    def rule_amount(self, name: str) -> Expr:
        """A rule-determined species as an expression of the other species' amounts."""
        return times(self._inlined(name, True), self.to_amount(name))

    def check_names(self, expr: Expr, allowed: set[str], kind: str, ident: str) -> Expr:
        """``expr`` if it reads only ``allowed`` names, else an error naming the element and the first other name."""
        for name in sorted(symbols(expr) - allowed):
            what = "time (other than compared with a constant threshold)" if name == TIME else f"{name!r}, which is not a species or a parameter"
            raise self.error(kind, ident, f"math uses {what} (not supported here)")
        return expr
