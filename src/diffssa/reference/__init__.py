"""References to check against: the exact master equation, coupled finite differences, the SBML DSMTS."""
