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
become :class:`~diffssa.reactions.Event` objects; parameters that events assign become network
*variables* (piecewise constant, changed only by events). A comparison of ``time`` with a threshold
that is a constant or parameter expression in a kinetic law (``piecewise(k, time < 10, 0)``, also
inside parameter rules) becomes a variable ``time_<op>_<threshold>`` holding the comparison's value
(1.0 or 0.0), flipped by an exact time event; any other use of ``time`` in a law is refused. Anything
else that would change the meaning of the model (rate and algebraic rules, fast reactions, delays,
packages, ...) is refused with an :class:`SBMLError` naming the file, the element and its id.
Amounts are converted to molecules by the count scale ``scale`` (:mod:`.units`); reversible
reactions are split into forward and reverse reactions where their law is a difference
(:mod:`.reader`).

:func:`write_sbml` writes a network as SBML Level 3 Version 1 that :func:`load_sbml` reads back to
the same network (mass-action laws written out as explicit propensities).

Modules: :mod:`.reader` (the document and the network), :mod:`.importer` (symbols, values and
amounts), :mod:`.mathml` (math in and out), :mod:`.units` (the count scale), :mod:`.forms`
(kinetic-law forms and time switches), :mod:`.rules` and :mod:`.events`, :mod:`.writer`.
"""

from .errors import SBMLError
from .reader import load_sbml
from .writer import write_sbml

__all__ = ["SBMLError", "load_sbml", "write_sbml"]
