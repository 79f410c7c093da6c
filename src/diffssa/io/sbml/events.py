"""SBML events as :class:`~diffssa.reactions.Event` objects.

Events without delay or priority, with persistent triggers, become events of the network;
parameters that events assign become network *variables* (piecewise constant, changed only by
events). Anything else is refused.
"""

from __future__ import annotations

from ...expressions import BinOp, Call, Num, substitute, symbols
from ...reactions import TIME, Event
from .importer import Importer
from .mathml import times

__all__ = ["event", "event_id", "event_targets"]


def event_id(e, index: int) -> str:
    """The event's id, or ``#<n>`` for the ``n``-th event of the model (``index`` counts from 0) without one."""
    return e.getId() or f"#{index + 1}"


def event_targets(imp: Importer) -> set[str]:
    """Parameters that events assign (they become variables); events assigning compartments are refused."""
    targets = set()
    for i, e in enumerate(imp.m.getListOfEvents()):
        for a in e.getListOfEventAssignments():
            var = a.getVariable()
            if var in imp.params:
                targets.add(var)
            elif var not in imp.species:
                raise imp.error("event", event_id(e, i),
                                f"assigns {var!r}; only species and parameters may be assigned by events")
    return targets


def event(imp: Importer, e, index: int, derived: dict, allowed: set[str]) -> Event:
    """An Event; species set by affine rules get assignments that keep their rules true.

    Assignments to species are in molecules (rounded to the nearest whole one when the model is
    scaled); parameters that events assign are variables, assigned as they are. ``index``: the
    event's position in the model (it names an event without id); ``derived``: species ->
    :func:`.rules.species_rule` of the species kept exact; ``allowed``: the names math may read.
    """
    eid = event_id(e, index)
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
            value = times(value, imp.to_amount(var))
            if imp.factor != 1.0 and symbols(value):  # scaled amounts: rounded to whole molecules
                value = Call("floor", (BinOp("+", value, Num(0.5)),))
        assignments[var] = imp.check_names(value, allowed | {TIME}, "event", eid)
    for s, (expr, coefs) in derived.items():
        if set(coefs) & set(assignments):
            assignments[s] = substitute(expr, {x: assignments[x] for x in coefs if x in assignments})
    trig = imp.check_names(imp.resolve(imp.math(trigger.getMath(), "event", eid)), allowed | {TIME}, "event", eid)
    return Event(trig, assignments, eid, bool(trigger.getInitialValue()))
