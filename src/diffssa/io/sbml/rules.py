"""Species set by assignment rules: exact counts when the rule is affine, else observables.

A species assignment rule that is an affine function of species with integer coefficients is kept
exact: the species becomes a count that changes with every reaction (:func:`with_derived`) and event
that changes its inputs. One of any other form that no kinetic law or event reads becomes an
*observable* (its amount in molecules, computed at the recorded times); one that is read is refused.
(Assignment rules of parameters are inlined by :meth:`.importer.Importer.resolve`.)
"""

from __future__ import annotations

from ...expressions import Expr, symbols
from ...reactions import Reaction
from .events import event_id
from .forms import affine_form
from .importer import Importer

__all__ = ["affine_rule", "read_by_laws_and_events", "species_rule", "with_derived"]


def affine_rule(imp: Importer, name: str, free: list[str]) -> tuple[Expr, dict[str, int]] | None:
    """(amount expression, integer coefficients) of a species set by an affine assignment rule, else None.

    ``free``: the species not set by rules; the expression gives the species' molecules in theirs.
    """
    expr = imp.rule_amount(name)
    form = affine_form(expr, set(free))
    if form is None or any(not float(c).is_integer() for c in form[1].values()):
        return None
    return expr, {s: int(c) for s, c in form[1].items() if c}


def species_rule(imp: Importer, name: str, free: list[str]) -> tuple[Expr, dict[str, int]]:
    """:func:`affine_rule` of a species that laws or events read, which must be affine."""
    rule = affine_rule(imp, name, free)
    if rule is None:
        raise imp.error(
            "assignmentRule", name,
            "a species assignment rule that kinetic laws or events read must be an affine function of species "
            "amounts with integer coefficients",
        )
    return rule


def read_by_laws_and_events(imp: Importer, reactions: list[Reaction]) -> set[str]:
    """Names the kinetic laws, event triggers and event assignments read (parameter rules inlined)."""
    read = set().union(*(symbols(r.law.law) for r in reactions))
    for i, e in enumerate(imp.m.getListOfEvents()):
        trigger = e.getTrigger()  # optional in L3V2: an event without one is refused by .events.event
        maths = [trigger.getMath()] if trigger is not None and trigger.isSetMath() else []
        maths += [a.getMath() for a in e.getListOfEventAssignments()]
        for node in maths:
            read |= symbols(imp.resolve(imp.math(node, "event", event_id(e, i))))
    return read


def with_derived(r: Reaction, derived: dict) -> Reaction:
    """The reaction with the net change of rule-determined species added to its stoichiometry.

    ``derived``: species -> :func:`species_rule` of the species kept exact.
    """
    reactants, products = dict(r.reactants), dict(r.products)
    for s, (_, coefs) in derived.items():
        change = sum(c * (r.products.get(x, 0) - r.reactants.get(x, 0)) for x, c in coefs.items())
        if change:
            (products if change > 0 else reactants)[s] = abs(change)
    return Reaction(reactants, products, r.law, r.name)
