"""The VKBL network, its true rates (per hour), the start of the fit and the rates it holds.

:data:`TRUE_RATES` name -> rate (1/h; the bimolecular ones per molecule and hour), :data:`RATE_NAMES`
their order (the order of every vector of log rates), :data:`SPECIES` name -> count at time 0,
:data:`OBSERVED` the species the statistics are formed from, :data:`HELD` the rates the fit does not
move and :data:`COMBINATIONS` the ratios that stand for them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...kinetics import MassAction
from ...model import ReactionNetwork
from ...reactions import Reaction

TRUE_RATES = {
    "alphaA": 50.0,
    "alphaA_prime": 500.0,
    "alphaR": 0.01,
    "alphaR_prime": 50.0,
    "betaA": 50.0,
    "betaR": 5.0,
    "deltaMA": 10.0,
    "deltaMR": 0.5,
    "deltaA": 1.0,
    "deltaR": 0.2,
    "gammaA": 1.0,
    "gammaR": 1.0,
    "gammaC": 2.0,
    "thetaA": 50.0,
    "thetaR": 100.0,
}
RATE_NAMES = tuple(TRUE_RATES)
SPECIES = {"DA": 1, "DA_prime": 0, "DR": 1, "DR_prime": 0, "MA": 0, "MR": 0, "A": 0, "R": 0, "C": 0}
OBSERVED = ("A", "R", "C")

# Rates held at their perturbed start (not fitted), and why (docs/oscillator.md):
HELD = {
    "alphaR": "basal repressor transcription, 0.01/h: about 0.1 mRNA per trajectory in 30 h; no statistic moves",
    "gammaA": "A-DA binding is faster than anything observed: only K_A = thetaA / gammaA matters (thetaA fitted)",
    "gammaR": "A-DR binding is faster than anything observed: only K_R = thetaR / gammaR matters (thetaR fitted)",
}
COMBINATIONS = {"K_A = thetaA / gammaA": ("thetaA", "gammaA"), "K_R = thetaR / gammaR": ("thetaR", "gammaR")}


def oscillator_network(**rates: float) -> ReactionNetwork:
    """The VKBL network with the documented rates (hours), any of them overridden by keyword."""
    unknown = set(rates) - set(TRUE_RATES)
    if unknown:
        raise ValueError(f"unknown rate {sorted(unknown)[0]!r}; known: {', '.join(RATE_NAMES)}")

    def r(reactants, products, rate, name):
        return Reaction(reactants, products, MassAction(rate), name)

    return ReactionNetwork(
        species=SPECIES,
        parameters={**TRUE_RATES, **rates},
        reactions=[
            r({"A": 1, "DA": 1}, {"DA_prime": 1}, "gammaA", "A binds DA"),
            r({"DA_prime": 1}, {"A": 1, "DA": 1}, "thetaA", "A unbinds DA"),
            r({"A": 1, "DR": 1}, {"DR_prime": 1}, "gammaR", "A binds DR"),
            r({"DR_prime": 1}, {"A": 1, "DR": 1}, "thetaR", "A unbinds DR"),
            r({"DA": 1}, {"DA": 1, "MA": 1}, "alphaA", "basal MA transcription"),
            r({"DA_prime": 1}, {"DA_prime": 1, "MA": 1}, "alphaA_prime", "activated MA transcription"),
            r({"DR": 1}, {"DR": 1, "MR": 1}, "alphaR", "basal MR transcription"),
            r({"DR_prime": 1}, {"DR_prime": 1, "MR": 1}, "alphaR_prime", "activated MR transcription"),
            r({"MA": 1}, {"MA": 1, "A": 1}, "betaA", "A translation"),
            r({"MR": 1}, {"MR": 1, "R": 1}, "betaR", "R translation"),
            r({"A": 1, "R": 1}, {"C": 1}, "gammaC", "sequestration"),
            r({"C": 1}, {"R": 1}, "deltaA", "A decays in C"),
            r({"A": 1}, {}, "deltaA", "A decays"),
            r({"R": 1}, {}, "deltaR", "R decays"),
            r({"MA": 1}, {}, "deltaMA", "MA decays"),
            r({"MR": 1}, {}, "deltaMR", "MR decays"),
        ],
        name="vilar-oscillator",
    )


def perturbed_start(seed: int = 0, factor: float = 2.0) -> dict[str, float]:
    """Every true rate multiplied or divided by ``factor``, the signs drawn with ``default_rng(seed)``."""
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=len(RATE_NAMES))
    return {k: TRUE_RATES[k] * factor ** s for k, s in zip(RATE_NAMES, signs)}


def free_rates(held: Sequence[str]) -> list[str]:
    """The rates that are fitted: :data:`RATE_NAMES` without ``held``, in their order."""
    return [k for k in RATE_NAMES if k not in held]
