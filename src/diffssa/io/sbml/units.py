"""Amounts and molecules: the count scale ``scale`` of :func:`~diffssa.io.sbml.load_sbml`.

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
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import libsbml

from .errors import SBMLError
from .mathml import AVOGADRO

if TYPE_CHECKING:
    from .importer import Importer

__all__ = ["molecules_per_unit", "whole_counts"]

_PER_KIND = {libsbml.UNIT_KIND_MOLE: AVOGADRO, libsbml.UNIT_KIND_ITEM: 1.0, libsbml.UNIT_KIND_DIMENSIONLESS: 1.0}


def _unit_molecules(imp: Importer, unit: str) -> float:
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


def molecules_per_unit(imp: Importer, scale) -> float:
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


def whole_counts(imp: Importer, amounts: dict[str, float], scale) -> dict[str, int]:
    """Whole molecule counts: exact ones required without a scale, rounding reported with one.

    ``amounts``: unrounded molecule counts by species. The rounding warning is attributed to the
    caller of :func:`~diffssa.io.sbml.load_sbml` (which calls this directly).
    """
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
