"""The Vilar-Kueh-Barkai-Leibler activator-repressor oscillator: recover its rates from trajectory statistics.

Model (Vilar, Kueh, Barkai, Leibler, PNAS 99, 5988 (2002)); 9 species, 16 reactions, 15 rates, hours:

    A + DA -> DA'       gammaA     DA' -> A + DA       thetaA      (activator binds its own gene)
    A + DR -> DR'       gammaR     DR' -> A + DR       thetaR      (activator binds the repressor gene)
    DA -> DA + MA       alphaA     DA' -> DA' + MA     alphaA'     (activator mRNA, basal / activated)
    DR -> DR + MR       alphaR     DR' -> DR' + MR     alphaR'     (repressor mRNA, basal / activated)
    MA -> MA + A        betaA      MR -> MR + R        betaR       (translation)
    A + R -> C          gammaC     C -> R              deltaA      (sequestration; A in C decays)
    A -> 0              deltaA     R -> 0              deltaR
    MA -> 0             deltaMA    MR -> 0             deltaMR

DA = DR = 1 at time 0, everything else 0. Primes are spelled ``_prime`` (``alphaA_prime``).

What is fitted and how (docs/oscillator.md has the measurements and the reasons):

* **Data.** ``target_runs`` exact trajectories at the true rates (fixed seed), observed at 61 times on
  [0, 30] h. Statistics: the mean time courses of A, R and C, their second moments (so their SDs), and
  the time-averaged autocorrelation products A(t) A(t + l) and R(t) R(t + l) for lags of 1..15 h.
  They are means over trajectories of per-trajectory features, so their covariance is estimated from
  the same data; the loss is the squared residual whitened by a shrunk estimate of that covariance
  (:class:`Metric`), in units of the per-trajectory spread. :class:`Design` can add a fine early grid
  and the products A(t) R(t); :func:`design_spectra` compares designs by their Fisher spectra (measured
  in docs/oscillator.md: neither changes the weak directions enough, so the default is the 0.5-h grid).
* **Start.** Every rate multiplied or divided by 2 (signs from ``numpy.random.default_rng(seed)``).
* **Held rates.** alphaR (no measurable effect) and the on-rates gammaA, gammaR of the fast gene
  binding equilibria (only thetaA / gammaA and thetaR / gammaR matter) stay at their perturbed start;
  thetaA and thetaR are fitted and stand for the two dissociation constants (:data:`HELD`).
* **Jacobian.** The straight-through surrogate gradient of the simulator is biased on this network
  (binary gene states; up to 40x off and of the wrong sign, measured in docs/oscillator.md), so the
  fit does not descend it. Each iteration instead simulates a batch at the current rates plus
  antithetic pairs at ``u +- d`` (``d``: random signs times ``h`` in every free log rate at once, per
  trajectory rates); a regression of the pairs' half-differences on ``d`` gives the Jacobian of every
  rate from every pair (:func:`local_model`).
* **Step.** Trust-region Gauss-Newton in log rates on the eigen-directions of the normal matrix that
  the batch resolves above the Jacobian's own noise (:func:`.fit._gauss_newton_step`).
* **Identifiability.** At the end, the pooled Jacobian of the last iterations (split in halves, so
  the Fisher matrix is unbiased) gives the Fisher information of the statistics per trajectory, its
  eigen-decomposition, and the standard error each rate would have at the optimum
  (:func:`fisher_analysis`).

Modules:

* :mod:`.network`: the network, the true rates, the perturbed start, the held rates.
* :mod:`.features`: the observation :class:`Design`, per-trajectory features, exact simulation to features.
* :mod:`.metric`: the whitened loss (:class:`Metric`).
* :mod:`.local_models`: the Jacobian estimators (regression on antithetic pairs, pairs estimator).
* :mod:`.identifiability`: split-halves Fisher analysis, observation designs compared.
* :mod:`.fit`: the trust-region Gauss-Newton fit and its schedules.
* :mod:`.reproduction`: the figure and ``reproduce`` (``diffssa reproduce oscillator``).
"""

from .features import Design, simulate_features, trajectory_features
from .fit import DEFAULT_SCHEDULE, PAIRS_SCHEDULE, fit_oscillator
from .identifiability import design_spectra, fisher_analysis
from .local_models import LocalModel, local_model, pairs_local_model
from .metric import Metric
from .network import (
    COMBINATIONS,
    HELD,
    OBSERVED,
    RATE_NAMES,
    SPECIES,
    TRUE_RATES,
    oscillator_network,
    perturbed_start,
)
from .reproduction import plot_fit, reproduce

__all__ = [
    "TRUE_RATES",
    "RATE_NAMES",
    "SPECIES",
    "OBSERVED",
    "HELD",
    "COMBINATIONS",
    "Design",
    "oscillator_network",
    "perturbed_start",
    "trajectory_features",
    "simulate_features",
    "Metric",
    "LocalModel",
    "local_model",
    "pairs_local_model",
    "fisher_analysis",
    "design_spectra",
    "DEFAULT_SCHEDULE",
    "PAIRS_SCHEDULE",
    "fit_oscillator",
    "plot_fit",
    "reproduce",
]
