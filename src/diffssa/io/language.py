"""The reaction language: reaction networks as plain text that a chemist reads at once.

Example (``examples/dimerization.rxn``)::

    # reversible dimerisation
    network dimerization
    parameter k1 = 0.001      # per pair of P molecules per unit time
    parameter k2 = 0.01       # per P2 molecule per unit time
    species P = 100           # initial molecule counts
    species P2 = 0
    2 P -> P2 @ k1            # mass action: propensity k1 * P * (P - 1) / 2
    P2 -> 2 P @ k2

One statement per line; ``#`` starts a comment; blank lines are ignored; declarations and reactions
may come in any order (names are resolved once the whole text is read).

* ``parameter NAME = NUMBER``: a parameter (finite float), stored in declaration order.
* ``species NAME = COUNT``: a species and its initial molecule count (non-negative integer), in
  declaration order, which is the order of the state vector. Species are never created implicitly:
  a reaction or event naming an undeclared species is an error.
* ``variable NAME = NUMBER``: a real-valued quantity that only events change (a switch, a forcing),
  read by ``@=`` propensities, conditions and assignments; see :class:`diffssa.model.ReactionNetwork`.
* ``observable NAME = EXPRESSION``: an output computed at every recorded time from species,
  variables and parameters (``observable total = P + 2 * P2``).
* ``volume NUMBER``: system volume for mass action (default 1): a reaction of order ``n`` (total
  reactant coefficient) with rate constant ``k`` fires at ``k * V**(1 - n) * prod_s C(x_s, n_s)``.
* ``network NAME``: the network's name (free text up to the end of the line).
* ``[NAME:] LEFT -> RIGHT @ RATE``: a mass-action reaction. Each side is ``0`` (nothing) or terms
  ``[COUNT] SPECIES`` joined by ``+`` (``2 P``, ``2P``; repeated species add up); ``RATE`` is an
  expression of parameters (``k1``, ``2 * k``).
* ``[NAME:] LEFT -> RIGHT @= PROPENSITY``: the full propensity in events per unit time, an
  expression of species and parameters: ``+ - * / ^``, ``exp``, ``log``, ``min``, ``max``,
  ``hill(x, K, n)`` and the other functions of :mod:`diffssa.expressions`.
* ``[NAME:] LEFT <-> RIGHT @ FORWARD, BACKWARD``: two reactions (``@=`` takes two propensities
  the same way); a name ``n`` names them ``n_fwd`` and ``n_rev``.
* ``event [NAME] [initially false] when CONDITION: TARGET = VALUE, ...`` (a species or a variable): see
  :class:`diffssa.reactions.Event`. ``CONDITION`` is ``A OP B`` with ``OP`` one of
  ``>= > <= < == !=`` (stored as ``geq(A, B)``, ``gt``, ``leq``, ``lt``, ``eq``, ``neq``) or a
  boolean expression such as ``and(gt(X, 3), lt(Y, 2))``; the name ``time`` is the simulation time.
  ``initially false`` lets a condition already true at time 0 fire at time 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

from ..expressions import Call, Expr, parse_expression, symbols, to_string
from ..kinetics import MassAction, Propensity
from ..model import ReactionNetwork, check_count
from ..reactions import TIME, Event, Reaction

__all__ = ["ReactionLanguageError", "parse_network", "load_network", "format_network", "SUFFIXES"]

SUFFIXES = {".rxn": "reaction language", ".txt": "reaction language", ".xml": "SBML", ".sbml": "SBML"}

_NAME = r"[A-Za-z_][A-Za-z0-9_']*"  # the names that expressions can refer to
_IS_NAME = re.compile(_NAME + r"\Z")
_KEYWORD = re.compile(r"(parameter|species|variable|observable|volume|network|event)\b\s*(.*)\Z")
_OBSERVABLE = re.compile(rf"({_NAME})\s*=\s*(.+)\Z")
_DECLARATION = re.compile(rf"({_NAME})\s*=\s*(\S+)\Z")
_LABEL = re.compile(rf"({_NAME})\s*:\s*(.*)\Z")
_TERM = re.compile(rf"(?:(\d+(?:\.\d*)?)\s*)?({_NAME})\Z")
_EVENT = re.compile(rf"(?:({_NAME})\s+)?(initially\s+false\s+)?when\s+([^:]*):(.*)\Z")
_COMPARISON = re.compile(r">=|<=|==|!=|>|<")
_COMPARE_FN = {">=": "geq", ">": "gt", "<=": "leq", "<": "lt", "==": "eq", "!=": "neq"}
_COMPARE_OP = {fn: op for op, fn in _COMPARE_FN.items()}


class ReactionLanguageError(ValueError):
    """A bad model text; the message reads ``SOURCE:LINE: problem in 'line text'``."""


def parse_network(text: str, source: str = "<string>") -> ReactionNetwork:
    """Read a network written in the reaction language; ``source`` names it in error messages."""
    return _Parser(source).read(text)


def load_network(path, scale: None | float | str = None) -> ReactionNetwork:
    """Read a model file: the reaction language (``.rxn``, ``.txt``) or SBML (``.xml``, ``.sbml``).

    ``scale``: SBML only, molecules per unit of substance (:func:`diffssa.io.sbml.load_sbml`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        supported = ", ".join(f"{s} ({kind})" for s, kind in SUFFIXES.items())
        raise ValueError(f"{path}: unsupported model file suffix {suffix!r}; supported: {supported}")
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    if SUFFIXES[suffix] == "SBML":
        from .sbml import load_sbml

        return load_sbml(path, scale)
    if scale is not None:
        raise ValueError(f"{path}: a scale (molecules per unit of substance) applies to SBML files only; "
                         "reaction-language models are written in molecule counts")
    return parse_network(path.read_text(), source=str(path))


def format_network(network: ReactionNetwork) -> str:
    """The network in the reaction language; :func:`parse_network` reads it back to an equal network.

    Raises ValueError for what the language cannot express: callable propensities, and names that
    are not identifiers (species, parameters, reactions, events) or network names with ``#``.
    """
    name = network.name
    if name and (name != name.strip() or "#" in name or "\n" in name):
        raise ValueError(f"network name {name!r} cannot be written: no '#', newlines or surrounding spaces")
    for kind, names in [("species", network.species), ("parameter", network.parameters),
                        ("variable", network.variables), ("observable", network.observables)]:
        for n in names:
            _check_name(n, kind)
    lines = [f"network {name}"] if name else []
    lines += [f"parameter {p} = {v!r}" for p, v in network.parameters.items()]
    lines += [f"species {s} = {n}" for s, n in network.species.items()]
    lines += [f"variable {v} = {x!r}" for v, x in network.variables.items()]
    lines += [f"observable {o} = {to_string(e)}" for o, e in network.observables.items()]
    if network.volume != 1.0:
        lines.append(f"volume {network.volume!r}")
    for i, r in enumerate(network.reactions):
        if isinstance(r.law, Propensity) and callable(r.law.law):
            raise ValueError(f"reaction {r.name}: a callable propensity cannot be written as text")
        label = "" if r.name == f"R{i + 1}" else f"{_check_name(r.name, 'reaction')}: "
        lines.append(label + r.describe())
    for ev in network.events:
        head = "event" + (f" {_check_name(ev.name, 'event')}" if ev.name else "")
        head += "" if ev.initial_value else " initially false"
        actions = ", ".join(f"{s} = {to_string(e)}" for s, e in ev.assignments.items())
        lines.append(f"{head} when {_format_condition(ev.trigger)}: {actions}")
    return "\n".join(lines) + "\n"


def _check_name(name: str, kind: str) -> str:
    if not _IS_NAME.match(name):
        raise ValueError(f"{kind} name {name!r} cannot be written: names are letters, digits and '_'")
    return name


def _format_condition(trigger: Expr) -> str:
    if isinstance(trigger, Call) and trigger.fn in _COMPARE_OP and len(trigger.args) == 2:
        a, b = trigger.args
        return f"{to_string(a)} {_COMPARE_OP[trigger.fn]} {to_string(b)}"
    return to_string(trigger)


def _split_commas(text: str) -> list[str]:
    """Split at commas outside parentheses (``min(a, b), k`` -> ``['min(a, b)', ' k']``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None


def _side(text: str, what: str) -> dict[str, int]:
    """``'2 P + Q'`` -> ``{'P': 2, 'Q': 1}``; ``'0'`` -> ``{}``."""
    if text == "0":
        return {}
    if not text:
        raise ValueError(f"no {what} given; write 0 for none")
    counts: dict[str, int] = {}
    for term in (t.strip() for t in text.split("+")):
        m = _TERM.match(term)
        if m is None:
            raise ValueError(f"malformed term {term!r} in the {what}: expected SPECIES or COUNT SPECIES, e.g. '2 P'")
        coefficient, species = m.groups()
        n = float(coefficient or 1)
        if n <= 0 or not n.is_integer():
            raise ValueError(f"stoichiometric coefficient of {species!r} must be a positive integer, got {coefficient!r}")
        counts[species] = counts.get(species, 0) + int(n)
    return counts


def _condition(text: str) -> Expr:
    """``'P2 > 30'`` -> ``gt(P2, 30)``; text without a comparison is parsed as an expression."""
    ops = _COMPARISON.findall(text)
    if not ops:
        return parse_expression(text.strip())
    if len(ops) > 1:
        raise ValueError(f"a condition takes one comparison, got {' and '.join(map(repr, ops))}; "
                         "combine conditions with and(gt(a, b), ...)")
    left, right = (part.strip() for part in _COMPARISON.split(text))
    return Call(_COMPARE_FN[ops[0]], (parse_expression(left), parse_expression(right)))


class _Parser:
    """Collects statements with their line numbers, then builds and validates the network."""

    def __init__(self, source: str):
        self.source = source
        self.declared: dict[str, tuple[str, int]] = {}  # name -> (kind, line number)
        self.species: dict[str, int] = {}
        self.parameters: dict[str, float] = {}
        self.variables: dict[str, float] = {}
        self.observables: dict[str, Expr] = {}
        self.settings: dict[str, tuple[object, int]] = {}  # 'volume' / 'network' -> (value, line number)
        self.reactions: list[tuple[Reaction, int, str]] = []  # (reaction, line number, line text)
        self.events: list[tuple[Event, int, str]] = []

    def read(self, text: str) -> ReactionNetwork:
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                try:
                    self.statement(line, number)
                except ValueError as exc:  # ExpressionError included
                    raise self.error(number, line, str(exc)) from None
        return self.build()

    def error(self, number: int, line: str, message: str) -> ReactionLanguageError:
        return ReactionLanguageError(f"{self.source}:{number}: {message} in {line!r}")

    def statement(self, line: str, number: int) -> None:
        if "->" in line:
            return self.reaction(line, number)
        m = _KEYWORD.match(line)
        if m is None:
            raise ValueError("malformed line: expected a reaction with '->' or a declaration "
                             "(parameter, species, variable, observable, volume, network, event)")
        keyword, rest = m.groups()
        if keyword == "event":
            return self.event(rest, number, line)
        if keyword in ("volume", "network"):
            return self.setting(keyword, rest.removeprefix("=").strip(), number)
        m = (_OBSERVABLE if keyword == "observable" else _DECLARATION).match(rest)
        if m is None:
            raise ValueError(f"malformed declaration: expected '{keyword} NAME = "
                             f"{'EXPRESSION' if keyword == 'observable' else 'VALUE'}'")
        name, value = m.groups()
        v = parse_expression(value) if keyword == "observable" else _number(value, f"value of {keyword} {name!r}")
        if keyword in ("parameter", "variable") and not math.isfinite(v):
            raise ValueError(f"{keyword} {name!r} must be finite, got {value!r}")
        if keyword == "species":
            v = check_count(f"initial count of species {name!r}", int(value) if value.isdigit() else value)
        if name == TIME:
            raise ValueError(f"{TIME!r} is reserved for the simulation time")
        if name in self.declared:
            kind, first = self.declared[name]
            raise ValueError(f"duplicate declaration of {name!r} (declared as a {kind} on line {first})")
        self.declared[name] = (keyword, number)
        if keyword == "species":
            self.species[name] = int(v)
        else:
            {"parameter": self.parameters, "variable": self.variables, "observable": self.observables}[keyword][name] = v

    def setting(self, keyword: str, value: str, number: int) -> None:
        if keyword in self.settings:
            raise ValueError(f"duplicate {keyword!r} (given on line {self.settings[keyword][1]})")
        if not value:
            raise ValueError(f"malformed line: expected '{keyword} {'NUMBER' if keyword == 'volume' else 'NAME'}'")
        if keyword == "volume":
            v = _number(value, "volume")
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"volume must be positive and finite, got {value!r}")
            self.settings[keyword] = (v, number)
        else:
            self.settings[keyword] = (value, number)

    def reaction(self, line: str, number: int) -> None:
        m = _LABEL.match(line)
        label, body = m.groups() if m else ("", line)
        sides, at, law_text = body.partition("@")
        if not at:
            raise ValueError("missing '@ RATE' (mass action) or '@= PROPENSITY' after the products")
        if sides.count("->") != 1:
            raise ValueError("expected one '->' (or '<->') between reactants and products")
        reversible = "<->" in sides
        left, right = (s.strip() for s in sides.split("<->" if reversible else "->"))
        full = law_text.startswith("=")
        laws = [t.strip() for t in _split_commas(law_text[1:] if full else law_text)]
        if len(laws) != 1 + reversible:
            want = "two rate laws 'FORWARD, BACKWARD'" if reversible else "one rate law"
            raise ValueError(f"a {'reversible ' if reversible else ''}reaction takes {want} after '@', got {len(laws)}")
        if not all(laws):
            raise ValueError("missing rate law after '@'")
        reactants, products = _side(left, "reactants"), _side(right, "products")
        law = Propensity if full else MassAction
        channels = [(reactants, products, label)]
        if reversible:
            channels = [(reactants, products, label and f"{label}_fwd"), (products, reactants, label and f"{label}_rev")]
        for (a, b, name), text in zip(channels, laws):
            self.reactions.append((Reaction(a, b, law(parse_expression(text)), name), number, line))

    def event(self, rest: str, number: int, line: str) -> None:
        m = _EVENT.match(rest)
        if m is None:
            raise ValueError("malformed event: expected 'event [NAME] when CONDITION: SPECIES = VALUE, ...'")
        name, initially_false, condition, actions = m.groups()
        assignments = {}
        for item in _split_commas(actions):
            target, eq, value = (s.strip() for s in item.partition("="))
            if not eq or not _IS_NAME.match(target):
                raise ValueError(f"malformed assignment {item.strip()!r}: expected TARGET = VALUE")
            if target in assignments:
                raise ValueError(f"{target!r} assigned twice")
            assignments[target] = parse_expression(value)
        event = Event(_condition(condition), assignments, name or "", initially_false is None)
        self.events.append((event, number, line))

    def build(self) -> ReactionNetwork:
        if not self.reactions:
            raise ReactionLanguageError(f"{self.source}: the network has no reactions")
        if not self.species:
            raise ReactionLanguageError(f"{self.source}: no species declared (write 'species NAME = COUNT')")
        reactions = [replace(r, name=r.name or f"R{i + 1}") for i, (r, _, _) in enumerate(self.reactions)]
        events = [e for e, _, _ in self.events]
        name = self.settings.get("network", ("", 0))[0]
        try:
            return ReactionNetwork(self.species, self.parameters, reactions, self.volume, name, events,
                                   self.variables, self.observables)
        except ValueError as exc:
            raise self.locate(exc, reactions) from None

    @property
    def volume(self) -> float:
        return self.settings.get("volume", (1.0, 0))[0]

    def locate(self, exc: ValueError, reactions: list[Reaction]) -> ReactionLanguageError:
        """Tie a validation error of :class:`ReactionNetwork` to a line by validating items one by one."""
        for r, (_, number, line) in zip(reactions, self.reactions):
            try:
                ReactionNetwork(self.species, self.parameters, [r], self.volume, variables=self.variables)
            except ValueError as item_exc:
                message = str(item_exc)
                if isinstance(r.law, MassAction) and symbols(r.law.rate) & set(self.species):
                    message += " (a rate after '@' may use parameters only; write '@=' for a full propensity)"
                return self.error(number, line, message)
        for j, (ev, number, line) in enumerate(self.events):
            try:
                labelled = replace(ev, name=ev.name or f"#{j + 1}")  # its index in the file, not in [labelled]
                ReactionNetwork(self.species, self.parameters, reactions, self.volume, events=[labelled],
                                variables=self.variables)
            except ValueError as item_exc:
                return self.error(number, line, str(item_exc))
        for o, expr in self.observables.items():
            try:
                ReactionNetwork(self.species, self.parameters, reactions, self.volume, variables=self.variables,
                                observables={o: expr})
            except ValueError as item_exc:
                _, number = self.declared[o]
                return self.error(number, f"observable {o} = {to_string(expr)}", str(item_exc))
        return ReactionLanguageError(f"{self.source}: {exc}")
