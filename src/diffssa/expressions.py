"""Arithmetic expressions for kinetic laws: a small AST, an infix parser and a JAX evaluator.

Expressions are immutable trees of :class:`Num`, :class:`Sym`, :class:`Neg`, :class:`BinOp` and
:class:`Call`. They are written by people in the reaction language (``mu * X``, ``hill(A, K, 2)``)
and produced by the SBML importer from MathML; both end up evaluated by :func:`evaluate` on JAX
arrays, so every expression is differentiable in the parameters and species it names.

Grammar (precedence low to high)::

    expr   := term (('+' | '-') term)*
    term   := unary (('*' | '/') unary)*
    unary  := '-' unary | '+' unary | power
    power  := atom ('^' unary)?              # right associative; '**' is accepted for '^'
    atom   := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import jax.numpy as jnp

__all__ = [
    "Expr",
    "Num",
    "Sym",
    "Neg",
    "BinOp",
    "Call",
    "ExpressionError",
    "FUNCTIONS",
    "parse_expression",
    "as_expression",
    "evaluate",
    "symbols",
    "substitute",
    "to_string",
]


class ExpressionError(ValueError):
    """A malformed expression; the message names the offending token and its column."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Sym:
    name: str


@dataclass(frozen=True)
class Neg:
    arg: "Expr"


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / ^
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple["Expr", ...]


Expr = Num | Sym | Neg | BinOp | Call


def _hill(x, k, n):
    xn = jnp.power(x, n)
    return xn / (jnp.power(k, n) + xn)


def _piecewise(*args):
    """SBML-style piecewise(value1, cond1, value2, cond2, ..., otherwise)."""
    result = args[-1] if len(args) % 2 == 1 else jnp.nan
    for value, cond in reversed(list(zip(args[0::2], args[1::2]))):
        result = jnp.where(cond, value, result)
    return result


# name -> (function, allowed argument counts; None means any count >= 1)
FUNCTIONS: dict[str, tuple[Callable, tuple[int, ...] | None]] = {
    "exp": (jnp.exp, (1,)),
    "log": (jnp.log, (1,)),
    "ln": (jnp.log, (1,)),
    "log10": (jnp.log10, (1,)),
    "sqrt": (jnp.sqrt, (1,)),
    "abs": (jnp.abs, (1,)),
    "floor": (jnp.floor, (1,)),
    "ceil": (jnp.ceil, (1,)),
    "sin": (jnp.sin, (1,)),
    "cos": (jnp.cos, (1,)),
    "tanh": (jnp.tanh, (1,)),
    "pow": (jnp.power, (2,)),
    "min": (lambda *a: _fold(jnp.minimum, a), None),
    "max": (lambda *a: _fold(jnp.maximum, a), None),
    "hill": (_hill, (3,)),
    "piecewise": (_piecewise, None),
    # comparisons and logic (used by SBML piecewise and event triggers)
    "lt": (jnp.less, (2,)),
    "leq": (jnp.less_equal, (2,)),
    "gt": (jnp.greater, (2,)),
    "geq": (jnp.greater_equal, (2,)),
    "eq": (jnp.equal, (2,)),
    "neq": (jnp.not_equal, (2,)),
    "and": (lambda *a: _fold(jnp.logical_and, a), None),
    "or": (lambda *a: _fold(jnp.logical_or, a), None),
    "not": (jnp.logical_not, (1,)),
}

_CONSTANTS = {"pi": math.pi, "e": math.e}


def _fold(op, args):
    out = args[0]
    for a in args[1:]:
        out = op(out, a)
    return out


_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_']*)"
    r"|(?P<op>\*\*|[-+*/^(),]))"
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip()[:1] or text[pos:pos + 1]
            col = pos + (len(text[pos:]) - len(text[pos:].lstrip())) + 1
            raise ExpressionError(f"unexpected character {bad!r} at column {col} in {text!r}")
        kind = m.lastgroup
        value = m.group(kind)
        tokens.append((kind, "^" if value == "**" else value, m.start(kind) + 1))
        pos = m.end()
    tokens.append(("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok, what):
        shown = tok[1] if tok[0] != "end" else "end of expression"
        raise ExpressionError(f"{what}: got {shown!r} at column {tok[2]} in {self.text!r}")

    def expect(self, value):
        tok = self.take()
        if tok[1] != value:
            self.fail(tok, f"expected {value!r}")

    def parse(self) -> Expr:
        node = self.expr()
        tok = self.peek()
        if tok[0] != "end":
            self.fail(tok, "unexpected token")
        return node

    def expr(self) -> Expr:
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.unary())
        return node

    def unary(self) -> Expr:
        tok = self.peek()
        if tok[1] == "-" and self.tokens[self.i + 1][0] == "num" and self.tokens[self.i + 2][1] != "^":
            following = self.tokens[self.i + 1]
            self.i += 2  # a negative literal reads back as one number
            return Num(-float(following[1]))
        if tok[0] == "op" and tok[1] in ("-", "+"):
            self.take()
            arg = self.unary()
            return Neg(arg) if tok[1] == "-" else arg
        return self.power()

    def power(self) -> Expr:
        node = self.atom()
        if self.peek()[1] == "^":
            self.take()
            node = BinOp("^", node, self.unary())
        return node

    def atom(self) -> Expr:
        tok = self.take()
        kind, value, _ = tok
        if kind == "num":
            return Num(float(value))
        if kind == "name":
            if self.peek()[1] == "(":
                self.take()
                args = [self.expr()]
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.expr())
                self.expect(")")
                if value not in FUNCTIONS:
                    raise ExpressionError(
                        f"unknown function {value!r} at column {tok[2]} in {self.text!r}; "
                        f"known: {', '.join(sorted(FUNCTIONS))}"
                    )
                arity = FUNCTIONS[value][1]
                if arity is not None and len(args) not in arity:
                    raise ExpressionError(
                        f"function {value!r} takes {arity[0]} argument(s), got {len(args)} "
                        f"at column {tok[2]} in {self.text!r}"
                    )
                return Call(value, tuple(args))
            return Sym(value)
        if value == "(":
            node = self.expr()
            self.expect(")")
            return node
        self.fail(tok, "expected a number, a name or '('")


def parse_expression(text: str) -> Expr:
    """Parse an infix expression such as ``"k * X * (X - 1) / 2"`` or ``"hill(A, K, 2)"``."""
    if not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()


def as_expression(value: str | float | Expr) -> Expr:
    """An expression from text (parsed), a number (:class:`Num`) or an expression tree (as it is)."""
    if isinstance(value, str):
        return parse_expression(value)
    if isinstance(value, (int, float)):
        return Num(float(value))
    return value


def symbols(expr: Expr) -> set[str]:
    """Names that the expression refers to (named constants ``pi`` and ``e`` excluded)."""
    if isinstance(expr, Sym):
        return set() if expr.name in _CONSTANTS else {expr.name}
    if isinstance(expr, Num):
        return set()
    if isinstance(expr, Neg):
        return symbols(expr.arg)
    if isinstance(expr, BinOp):
        return symbols(expr.left) | symbols(expr.right)
    return set().union(*(symbols(a) for a in expr.args))


def substitute(expr: Expr, replacements: Mapping[str, Expr]) -> Expr:
    """Replace symbols by expressions (used to inline SBML assignment rules)."""
    if isinstance(expr, Sym):
        return replacements.get(expr.name, expr)
    if isinstance(expr, Num):
        return expr
    if isinstance(expr, Neg):
        return Neg(substitute(expr.arg, replacements))
    if isinstance(expr, BinOp):
        return BinOp(expr.op, substitute(expr.left, replacements), substitute(expr.right, replacements))
    return Call(expr.fn, tuple(substitute(a, replacements) for a in expr.args))


_BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "^": jnp.power,
}


def evaluate(expr: Expr, env: Mapping[str, object]):
    """Evaluate ``expr`` with ``env`` mapping every symbol to a number or JAX array.

    Works on tracers, so the result is differentiable in whatever ``env`` holds.
    """
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Sym):
        if expr.name in env:
            return env[expr.name]
        if expr.name in _CONSTANTS:
            return _CONSTANTS[expr.name]
        raise ExpressionError(f"unknown name {expr.name!r}")
    if isinstance(expr, Neg):
        return -evaluate(expr.arg, env)
    if isinstance(expr, BinOp):
        return _BINARY[expr.op](evaluate(expr.left, env), evaluate(expr.right, env))
    return FUNCTIONS[expr.fn][0](*(evaluate(a, env) for a in expr.args))


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "^": 4}


def to_string(expr: Expr, parent: int = 0) -> str:
    """Infix text that :func:`parse_expression` reads back to an equal tree."""
    if isinstance(expr, Num):
        v = expr.value
        text = repr(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
        return f"({text})" if v < 0 and parent >= 3 else text
    if isinstance(expr, Sym):
        return expr.name
    if isinstance(expr, Neg):
        text = "-" + to_string(expr.arg, 3)
        return f"({text})" if parent >= 3 else text
    if isinstance(expr, BinOp):
        prec = _PRECEDENCE[expr.op]
        if expr.op == "^":
            text = f"{to_string(expr.left, prec + 1)} ^ {to_string(expr.right, prec)}"
        else:
            text = f"{to_string(expr.left, prec)} {expr.op} {to_string(expr.right, prec + 1)}"
        return f"({text})" if prec < parent else text
    return f"{expr.fn}({', '.join(to_string(a) for a in expr.args)})"
