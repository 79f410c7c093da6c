"""Reading and writing models: the reaction language (.rxn) and SBML."""
