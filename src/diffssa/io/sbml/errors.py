"""The error every part of the SBML importer raises."""

__all__ = ["SBMLError"]


class SBMLError(ValueError):
    """An SBML file that cannot be read, or that uses a feature this importer does not support."""
