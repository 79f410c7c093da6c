"""MathML (libsbml ASTNodes) to :mod:`diffssa.expressions` trees and back.

:func:`from_mathml` reads an SBML math element (user functions inlined, SBML ids as symbols);
:func:`to_mathml` writes an expression as SBML Level 3 Version 1 math (functions SBML lacks written
out). Both use the same tables of operators and functions.
"""

from __future__ import annotations

import math
from functools import reduce

import libsbml

from ...expressions import BinOp, Call, Expr, Neg, Num, Sym, substitute
from ...reactions import TIME

__all__ = ["AVOGADRO", "fold", "from_mathml", "times", "to_mathml"]

AVOGADRO = 6.02214179e23  # molecules per mole, the SBML Level 3 Version 1 value

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
    libsbml.AST_NAME_AVOGADRO: AVOGADRO,
}


def fold(op: str, args: list[Expr], empty: float) -> Expr:
    """``args`` joined left to right by the binary ``op``; ``Num(empty)`` when there are none."""
    return reduce(lambda a, b: BinOp(op, a, b), args) if args else Num(empty)


def times(expr: Expr, factor: float) -> Expr:
    """``expr * factor``, or ``expr`` itself when the factor is 1."""
    return expr if factor == 1.0 else BinOp("*", expr, Num(factor))


# ---------------------------------------------------------------------------------- reading
def from_mathml(node, functions: dict, error, kind: str, ident: str) -> Expr:
    """The expression of a libsbml ASTNode, user functions inlined, SBML ids as symbols.

    ``functions``: the model's FunctionDefinitions by id. ``error(kind, ident, message)`` makes the
    SBMLError raised for missing or unsupported math, naming the element (``kind``, ``ident``) it is in.
    """
    if node is None:
        raise error(kind, ident, "missing math")
    t = node.getType()
    args = [from_mathml(node.getChild(i), functions, error, kind, ident) for i in range(node.getNumChildren())]
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
        return fold(_ARITHMETIC[t], args, 1.0 if t == libsbml.AST_TIMES else 0.0)
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
    if t == libsbml.AST_FUNCTION and node.getName() in functions:
        fd = functions[node.getName()]
        names = [fd.getArgument(i).getName() for i in range(fd.getNumArguments())]
        if len(names) != len(args):
            raise error(kind, ident, f"function {fd.getId()!r} takes {len(names)} arguments, got {len(args)}")
        body = from_mathml(fd.getBody(), functions, error, "functionDefinition", fd.getId())
        return substitute(body, dict(zip(names, args)))
    raise error(kind, ident, f"unsupported MathML {libsbml.formulaToL3String(node)!r}")


# ---------------------------------------------------------------------------------- writing
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


def to_mathml(expr: Expr, names: set[str]) -> libsbml.ASTNode:
    """An SBML L3V1 ASTNode for an expression (functions SBML lacks are written out).

    ``names``: the model's ids; a symbol ``pi`` or ``e`` that is not one of them is the constant.
    """
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
        return _node(libsbml.AST_MINUS, to_mathml(expr.arg, names))
    if isinstance(expr, BinOp):
        return _node(_BINARY_AST[expr.op], to_mathml(expr.left, names), to_mathml(expr.right, names))
    fn, args = expr.fn, expr.args
    if fn == "pow":
        return to_mathml(BinOp("^", *args), names)
    if fn == "log10":
        return _node(libsbml.AST_FUNCTION_LOG, to_mathml(Num(10.0), names), to_mathml(args[0], names))
    if fn == "sqrt":
        return _node(libsbml.AST_FUNCTION_ROOT, to_mathml(Num(2.0), names), to_mathml(args[0], names))
    if fn == "hill":
        x, k, n = args
        return to_mathml(BinOp("/", BinOp("^", x, n), BinOp("+", BinOp("^", k, n), BinOp("^", x, n))), names)
    if fn in ("min", "max"):
        pick = "leq" if fn == "min" else "geq"
        return to_mathml(reduce(lambda a, b: Call("piecewise", (a, Call(pick, (a, b)), b)), args), names)
    return _node(_CALL_AST[fn], *(to_mathml(a, names) for a in args))
