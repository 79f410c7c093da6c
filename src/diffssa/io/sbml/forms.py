"""Forms of kinetic-law expressions that the SBML importer recognises.

Pure functions of :mod:`diffssa.expressions` trees: affine forms (species assignment rules kept as
exact counts), net laws ``forward - reverse`` of reversible reactions and whether a law may be
negative, and comparisons of time with constant thresholds turned into variables switched by exact
time events (:class:`TimeSwitches`).
"""

from __future__ import annotations

import re

from ...expressions import (
    BinOp,
    Call,
    Expr,
    Neg,
    Num,
    Sym,
    evaluate,
    symbols,
    to_string,
)
from ...reactions import TIME, Event

__all__ = ["TimeSwitches", "affine_form", "may_be_negative", "split_net"]


def affine_form(expr: Expr, species: set[str]):
    """``(constant, {species: coefficient})`` if ``expr`` is affine in species with numeric coefficients."""
    if isinstance(expr, Num):
        return expr.value, {}
    if isinstance(expr, Sym):
        return (0.0, {expr.name: 1.0}) if expr.name in species else None
    if isinstance(expr, Neg):
        inner = affine_form(expr.arg, species)
        return inner and (-inner[0], {s: -c for s, c in inner[1].items()})
    if not isinstance(expr, BinOp) or expr.op == "^":
        return None
    left, right = affine_form(expr.left, species), affine_form(expr.right, species)
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


def split_net(law: Expr) -> tuple[Expr, Expr] | None:
    """``(forward, reverse)`` if ``law`` is ``forward - reverse``, possibly times or over common factors."""
    if isinstance(law, BinOp) and law.op == "-":
        return law.left, law.right
    if isinstance(law, BinOp) and law.op == "+" and isinstance(law.right, Neg):
        return law.left, law.right.arg
    if isinstance(law, BinOp) and law.op in "*/":
        left = split_net(law.left)
        if left is not None:
            return tuple(BinOp(law.op, part, law.right) for part in left)
        right = split_net(law.right) if law.op == "*" else None
        if right is not None:
            return tuple(BinOp("*", law.left, part) for part in right)
    return None


_NON_NEGATIVE_CALLS = {"exp", "abs", "sqrt", "lt", "leq", "gt", "geq", "eq", "neq", "and", "or", "not"}


def may_be_negative(expr: Expr) -> bool:
    """Whether ``expr`` can be negative for non-negative symbols (conservatively: True when unsure)."""
    if isinstance(expr, Num):
        return expr.value < 0
    if isinstance(expr, Sym):
        return False
    if isinstance(expr, Neg):
        return True
    if isinstance(expr, BinOp):
        return expr.op == "-" or may_be_negative(expr.left) or (expr.op != "^" and may_be_negative(expr.right))
    if expr.fn in _NON_NEGATIVE_CALLS:
        return False
    if expr.fn == "piecewise":
        return any(may_be_negative(a) for a in (*expr.args[0:-1:2], expr.args[-1]))
    return expr.fn not in ("min", "max", "hill") or any(may_be_negative(a) for a in expr.args)


_MIRROR = {"lt": "gt", "leq": "geq", "gt": "lt", "geq": "leq"}  # c < time is time > c, ...


class TimeSwitches:
    """Comparisons of time with constant thresholds in kinetic laws, as variables switched by time events.

    ``time < c`` (also ``<=``, ``>``, ``>=`` and the mirrored forms; ``c`` an expression of parameters)
    becomes a variable that holds the comparison's truth (1.0 or 0.0) at time 0 and is flipped by an
    event with trigger ``time >= c`` (``time > c``): piecewise-constant forcing, simulated exactly.
    """

    def __init__(self, taken: set[str]):
        self.taken = taken
        self.names: dict[tuple[str, Expr], str] = {}
        self.variables: dict[str, float] = {}
        self.events: list[Event] = []

    def replace(self, expr: Expr, params: dict) -> Expr:
        """``expr`` with every comparison of time with a parameter expression replaced by its variable."""
        if isinstance(expr, Neg):
            return Neg(self.replace(expr.arg, params))
        if isinstance(expr, BinOp):
            return BinOp(expr.op, self.replace(expr.left, params), self.replace(expr.right, params))
        if not isinstance(expr, Call):
            return expr
        expr = Call(expr.fn, tuple(self.replace(a, params) for a in expr.args))
        if expr.fn not in _MIRROR or len(expr.args) != 2:
            return expr
        a, b = expr.args
        op, threshold = (expr.fn, b) if a == Sym(TIME) else (_MIRROR[expr.fn], a) if b == Sym(TIME) else (None, None)
        if op is None or symbols(threshold) - set(params):
            return expr
        return Sym(self._variable(op, threshold, params))

    def _variable(self, op: str, threshold: Expr, params: dict) -> str:
        if (op, threshold) not in self.names:
            name = f"time_{op}_" + re.sub(r"\W+", "_", to_string(threshold)).strip("_")
            while name in self.taken:
                name += "_"
            self.taken.add(name)
            self.names[op, threshold] = name
            self.variables[name] = float(evaluate(Call(op, (Num(0.0), threshold)), params))
            after = 1.0 if op in ("gt", "geq") else 0.0  # the comparison's value once time passes c
            trigger = Call("geq" if op in ("lt", "geq") else "gt", (Sym(TIME), threshold))
            self.events.append(Event(trigger, {name: Num(after)}, name, True))
        return self.names[op, threshold]
