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
  the batch resolves above the Jacobian's own noise (:func:`_gauss_newton_step`).
* **Identifiability.** At the end, the pooled Jacobian of the last iterations (split in halves, so
  the Fisher matrix is unbiased) gives the Fisher information of the statistics per trajectory, its
  eigen-decomposition, and the standard error each rate would have at the optimum
  (:func:`fisher_analysis`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple, Sequence

import jax
import numpy as np

from ..model import MassAction, Reaction, ReactionNetwork
from ..progress import progress_bar
from ..rng import batches
from ..simulation.api import simulate
from ..simulation.batches import simulate_batches
from ..simulation.trajectories import time_grid

__all__ = [
    "TRUE_RATES",
    "RATE_NAMES",
    "OBSERVED",
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
    "fit_oscillator",
    "plot_fit",
    "reproduce",
]

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


class Design(NamedTuple):
    """Observation design: what is recorded and which statistics are formed.

    Coarse grid ``[0, t_end]`` with ``points + 1`` equally spaced times; the autocorrelation lags (hours,
    multiples of its spacing) are taken on the coarse grid only. Optionally a fine early grid: times
    ``0, early_dt, 2 early_dt, ...`` up to ``early_end`` hours, merged with the coarse grid for the
    mean and second-moment features (the first hours, before phase diffusion, resolve the mRNA and
    protein time scales). ``cross``: also the products A(t) R(t) at every recorded time, divided by
    ``cross_scale`` molecules^2 (default ``scale ** 2``). Counts are divided by ``scale``. The
    defaults are the original design (coarse grid only, no cross terms).
    """

    t_end: float = 30.0
    points: int = 60
    lags: tuple[float, ...] = tuple(float(l) for l in range(1, 16))
    scale: float = 1000.0
    early_end: float = 0.0
    early_dt: float = 0.05
    cross: bool = False
    cross_scale: float | None = None

    @property
    def coarse_times(self) -> np.ndarray:
        return time_grid(self.t_end, self.points)

    @property
    def times(self) -> np.ndarray:
        """The recording grid: the coarse grid merged with the early fine grid (sorted, float32)."""
        coarse = self.coarse_times
        if self.early_end <= 0:
            return coarse
        if not self.early_dt > 0:
            raise ValueError(f"early_dt must be positive, got {self.early_dt!r}")
        n = int(math.floor(self.early_end / self.early_dt + 1e-9))
        early = np.arange(n + 1, dtype=np.float64) * self.early_dt
        early = early[early < min(self.early_end, self.t_end) + 1e-9]
        merged = np.concatenate([coarse.astype(np.float64), early])
        merged = np.unique(np.round(merged, 6))
        return merged.astype(np.float32)

    @property
    def coarse_index(self) -> np.ndarray:
        """Indices of the coarse grid's times in :attr:`times` (where the autocorrelations are formed)."""
        t = self.times.astype(np.float64)
        idx = np.searchsorted(np.round(t, 6), np.round(self.coarse_times.astype(np.float64), 6))
        assert np.allclose(t[idx], self.coarse_times, atol=1e-5)
        return idx

    @property
    def lag_steps(self) -> tuple[int, ...]:
        dt = self.t_end / self.points
        return tuple(int(round(l / dt)) for l in self.lags)

    def feature_names(self) -> list[str]:
        t = self.times
        names = [f"mean {s}({x:g})" for x in t for s in OBSERVED]
        names += [f"m2 {s}({x:g})" for x in t for s in OBSERVED]
        if self.cross:
            names += [f"AR({x:g})" for x in t]
        names += [f"acf {s} lag {l:g}" for s in ("A", "R") for l in self.lags]
        return names


def trajectory_features(states, design: Design = Design(), species: Sequence[str] = tuple(SPECIES)) -> np.ndarray:
    """(B, T, S) states at ``design.times`` -> (B, D) per-trajectory features; their means are the statistics.

    Features (in the order of :meth:`Design.feature_names`): x(t) and x(t)^2 for x in A, R, C at every
    recorded time (in units of ``design.scale`` molecules), A(t) R(t) if ``design.cross`` (in units of
    ``design.cross_scale``), and for A and R the averages over the coarse grid of x(t) x(t + l) for
    each lag l.
    """
    return _features(np, np.asarray(states, dtype=np.float64), design, species)


def _features(xp, states, design: Design, species: Sequence[str]):
    """:func:`trajectory_features` with the array module ``xp`` (numpy, or jax.numpy to differentiate)."""
    idx = [list(species).index(s) for s in OBSERVED]
    x = states[:, :, idx] / design.scale  # (B, T, 3)
    if x.shape[1] != len(design.times):
        raise ValueError(f"states have {x.shape[1]} times, the design records {len(design.times)}")
    b = x.shape[0]
    parts = [x.reshape(b, -1), (x**2).reshape(b, -1)]
    if design.cross:
        unit = design.scale**2 if design.cross_scale is None else design.cross_scale
        parts.append(states[:, :, idx[0]] * states[:, :, idx[1]] / unit)
    coarse = x if design.early_end <= 0 else x[:, design.coarse_index]  # default: bit-identical to before
    for j in (0, 1):
        a = coarse[:, :, j]
        parts.append(xp.stack([xp.mean(a[:, :-l] * a[:, l:], axis=1) for l in design.lag_steps], axis=1))
    return xp.concatenate(parts, axis=1)


def simulate_features(
    network: ReactionNetwork,
    params: dict,
    *,
    key,
    runs: int,
    design: Design = Design(),
    batch: int = 512,
    max_steps: int = 5_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trajectory features of ``runs`` exact (forward-only) trajectories; also their event counts.

    ``params``: name -> scalar or (runs,) array (per-trajectory rates). Runs go in batches of
    ``batch`` (each with its own key folded from ``key``); a trajectory that exhausts ``max_steps``
    raises :class:`~diffssa.SimulationBudgetError`.
    """
    feats, events = [], []
    for tr in simulate_batches(network, design.times, key=key, runs=runs, batch_size=batch, params=params,
                               max_steps=max_steps, estimator=None, on_exhausted="raise"):
        feats.append(trajectory_features(tr.states, design, network.species_names))
        events.append(np.asarray(tr.events))
    return np.concatenate(feats), np.concatenate(events)


class Metric:
    """Whitening of the statistics by the target data: residual -> L^-1 (residual / sd).

    ``sd``: per-trajectory SD of each feature in the target data; features whose SD is below
    ``sd_floor`` (almost always 0, e.g. R in the first hours) are dropped. ``L``: Cholesky factor of
    the features' correlation matrix shrunk towards the identity by ``shrinkage`` (a full-rank,
    well-conditioned estimate from a finite sample). The loss ``|r|^2 / D`` is 0 at a perfect fit.
    """

    def __init__(self, target_features: np.ndarray, shrinkage: float = 0.5, sd_floor: float = 0.01):
        f = np.asarray(target_features, np.float64)
        self.runs = f.shape[0]
        sd = f.std(axis=0, ddof=1)
        self.keep = sd > sd_floor
        self.target = f.mean(axis=0)
        self.sd = np.where(self.keep, sd, 1.0)
        z = (f[:, self.keep] - self.target[self.keep]) / self.sd[self.keep]
        corr = np.corrcoef(z.T)
        self.shrinkage = shrinkage
        self.corr = corr
        self.chol = np.linalg.cholesky((1 - shrinkage) * corr + shrinkage * np.eye(len(corr)))
        self.dim = int(self.keep.sum())

    def whiten(self, deviations: np.ndarray) -> np.ndarray:
        """(D,) or (D, K) deviations of the statistics (all features) -> whitened (D_kept,) or (D_kept, K)."""
        d = np.asarray(deviations, np.float64)
        d = d[self.keep] / (self.sd[self.keep] if d.ndim == 1 else self.sd[self.keep, None])
        return np.linalg.solve(self.chol, d)

    def residual(self, statistics: np.ndarray) -> np.ndarray:
        return self.whiten(np.asarray(statistics) - self.target)

    def loss(self, statistics: np.ndarray) -> float:
        r = self.residual(statistics)
        return float(r @ r / self.dim)

    def whitened_covariance(self) -> np.ndarray:
        """Covariance of whitened per-trajectory features: L^-1 C L^-T (the identity without shrinkage)."""
        a = np.linalg.solve(self.chol, self.corr)
        return np.linalg.solve(self.chol, a.T)


class LocalModel(NamedTuple):
    """A local linear model of the statistics in log rates, from one batch.

    center: (D,) statistics at the current rates (mean over ``center_runs`` trajectories);
    jacobian: (D, P) derivative in the free log rates (regression on ``pairs`` antithetic pairs);
    halves: the Jacobian fitted on each half of the pairs (independent: their cross product is an
    unbiased Fisher matrix); jac_var: (P, P) ``(X^T X)^-1`` of the pair design and residual_cov_trace:
    the trace of the whitened residual covariance of a pair, so that in whitened units
    ``E[J^T J] = J_true^T J_true + residual_cov_trace * jac_var``; step: the perturbation h;
    events: mean and max events per trajectory.
    """

    center: np.ndarray
    jacobian: np.ndarray
    halves: tuple[np.ndarray, np.ndarray]
    jac_var: np.ndarray
    residual_cov_trace: float
    center_runs: int
    pairs: int
    step: float
    events: tuple[float, float]


def _rates(log_rates: dict[str, float], free: Sequence[str], deltas: np.ndarray) -> dict[str, np.ndarray]:
    u = np.array([log_rates[k] for k in RATE_NAMES])[None, :].repeat(len(deltas), axis=0)
    for j, name in enumerate(free):
        u[:, RATE_NAMES.index(name)] += deltas[:, j]
    return {k: np.exp(u[:, i]).astype(np.float32) for i, k in enumerate(RATE_NAMES)}


def _pair_regression(d: np.ndarray, plus: np.ndarray, minus: np.ndarray, metric: Metric):
    """Least squares of ``(plus - minus) / 2`` on the perturbations ``d`` (pairs, P).

    Returns the Jacobian (D, P), the Jacobians of the two halves of the pairs, ``(d^T d)^-1`` and
    the trace of the whitened residual covariance of one pair.
    """
    pairs, p = d.shape
    y = (np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / 2
    xtx_inv = np.linalg.inv(d.T @ d)
    beta = xtx_inv @ d.T @ y  # (P, D)
    resid = y - d @ beta
    halves = tuple(np.linalg.lstsq(d[part], y[part], rcond=None)[0].T
                   for part in (slice(0, pairs // 2), slice(pairs // 2, pairs)))
    trace = float(np.sum(metric.whiten(resid.T) ** 2) / max(pairs - p, 1))
    return beta.T, halves, xtx_inv, trace


def local_model(
    network: ReactionNetwork,
    log_rates: dict[str, float],
    free: Sequence[str],
    metric: Metric,
    *,
    seed: int,
    center_runs: int,
    pairs: int,
    step: float = 0.05,
    design: Design = Design(),
    batch: int = 512,
) -> LocalModel:
    """Simulate one batch around ``log_rates``: the statistics there and their Jacobian by regression.

    ``center_runs`` trajectories run at the current rates. ``pairs`` antithetic pairs run at
    ``u + d`` and ``u - d``, ``d`` of random signs times ``step`` in every free log rate at once, the
    two members of a pair with the same random numbers. The regression of the half-differences
    ``(f(u + d) - f(u - d)) / 2 = J d + O(h^3) + noise`` on ``d`` gives the Jacobian of every rate
    from every pair (even-order terms cancel exactly), which for the same number of trajectories is
    several times less noisy than coordinate-wise finite differences.
    """
    free = list(free)
    p = len(free)
    rng = np.random.default_rng(seed)
    center, ev_c = simulate_features(network, {k: math.exp(v) for k, v in log_rates.items()}, key=seed,
                                     runs=center_runs, design=design, batch=batch)
    d = step * rng.choice([-1.0, 1.0], size=(pairs, p))
    plus, ev_p = simulate_features(network, _rates(log_rates, free, d), key=seed + 1, runs=pairs, design=design, batch=batch)
    minus, ev_m = simulate_features(network, _rates(log_rates, free, -d), key=seed + 1, runs=pairs, design=design, batch=batch)
    beta, halves, xtx_inv, trace = _pair_regression(d, plus, minus, metric)
    events = np.concatenate([ev_c, ev_p, ev_m])
    return LocalModel(
        center=center.mean(axis=0), jacobian=beta, halves=halves, jac_var=xtx_inv,
        residual_cov_trace=trace, center_runs=center_runs, pairs=pairs, step=step,
        events=(float(events.mean()), float(events.max())),
    )


def pairs_local_model(
    network: ReactionNetwork,
    log_rates: dict[str, float],
    free: Sequence[str],
    metric: Metric,
    *,
    seed: int,
    runs: int,
    design: Design = Design(),
    batch: int = 64,
    per_reaction: int = 1,
) -> LocalModel:
    """The statistics at ``log_rates`` and their Jacobian in the free log rates from the pairs estimator.

    ``runs`` exact trajectories in batches of ``batch`` (batch ``i`` with key ``fold_in(seed, i)``); for
    each batch the Jacobian of its mean features comes from ``Trajectories.expect_path`` under
    ``jax.jacfwd`` (:class:`~diffssa.PoissonPairs` with ``per_reaction`` pairs per differentiated
    reaction, simulated to the end because the autocorrelation features combine several times). It is
    unbiased: no perturbation step, no regression. The halves are the mean Jacobians of the even and
    odd batches; the Jacobian's noise (``jac_var`` times ``residual_cov_trace = 1``) is the whitened
    batch-to-batch covariance over the number of batches. ``pairs`` reports the trajectories and
    ``step`` is 0.
    """
    import jax.numpy as jnp

    from ..estimators import PoissonPairs

    free = list(free)
    if runs < 2 * batch:
        raise ValueError(f"runs ({runs}) must cover at least two batches of {batch}")
    estimator = PoissonPairs(per_reaction=per_reaction, full_paths=True)
    fixed = {k: math.exp(v) for k, v in log_rates.items() if k not in free}
    u0 = jnp.asarray([log_rates[k] for k in free], jnp.float32)
    species = network.species_names

    def statistics(u, key, size):
        params = {**fixed, **{k: jnp.exp(u[i]) for i, k in enumerate(free)}}
        tr = simulate(network, design.times, key=key, runs=size, params=params, estimator=estimator,
                      max_steps=5_000_000, on_exhausted="raise")
        mean = tr.expect_path(lambda path: _features(jnp, path[None], design, species)[0])
        return mean, (mean, tr.events)

    jacobian_of = jax.jit(jax.jacfwd(statistics, has_aux=True), static_argnums=2)
    centers, jacobians, events = [], [], []
    for batch_key, _, size in batches(seed, runs, batch):
        jac, (mean, ev) = jacobian_of(u0, batch_key, size)
        centers.append((size, np.asarray(mean, np.float64)))
        jacobians.append((size, np.asarray(jac, np.float64)))
        events.append(np.asarray(ev))
    weights = np.array([n for n, _ in jacobians], float)

    def pooled(items, which=slice(None)):
        chosen = items[which]
        w = np.array([n for n, _ in chosen], float)
        return sum(n * a for n, a in chosen) / w.sum()

    jacobian = pooled(jacobians)
    whitened = np.stack([metric.whiten(j) for _, j in jacobians])  # (K, D_kept, P)
    spread = whitened - metric.whiten(jacobian)[None]
    k = len(jacobians)
    noise = np.einsum("k,kdp,kdq->pq", weights**2, spread, spread) / weights.sum() ** 2 * k / max(k - 1, 1)
    events = np.concatenate(events)
    return LocalModel(
        center=pooled(centers), jacobian=jacobian, halves=(pooled(jacobians, slice(0, None, 2)),
                                                             pooled(jacobians, slice(1, None, 2))),
        jac_var=noise, residual_cov_trace=1.0, center_runs=runs, pairs=runs, step=0.0,
        events=(float(events.mean()), float(events.max())),
    )


def fisher_analysis(
    metric: Metric, halves: Sequence[np.ndarray], free: Sequence[str], *, effective_runs: float
) -> dict:
    """Fisher information of the whitened statistics per trajectory, from two independent Jacobians.

    ``F = (J1^T J2 + J2^T J1) / 2`` (whitened) is unbiased for the Fisher matrix of one trajectory's
    features under the working (shrunk) covariance; its eigen-decomposition says which combinations of
    log rates the statistics determine. Standard errors use the sandwich formula with the estimated
    covariance and ``effective_runs = 1 / (1 / N_target + 1 / N_simulated)``: ``se_i`` is the standard
    error of log rate i with all ``free`` rates fitted, ``se_alone_i`` with the others known.
    Negative eigenvalues are noise of the Jacobian estimate; their size is its resolution.
    """
    j1, j2 = (metric.whiten(h) for h in halves)
    jm = (j1 + j2) / 2
    fisher = (j1.T @ j2 + j2.T @ j1) / 2
    w, v = np.linalg.eigh(fisher)
    resolution = float(max(-w.min(), 0.0))
    # Sandwich covariance per trajectory: A J^T M J A with A = (J^T J)^-1 on the resolved eigenspace.
    m = metric.whitened_covariance()
    clipped = np.where(w > 0, w, np.nan)
    a = v @ np.diag(np.where(np.isfinite(clipped), 1.0 / np.where(np.isfinite(clipped), clipped, 1.0), 0.0)) @ v.T
    cov = a @ jm.T @ m @ jm @ a
    se = np.sqrt(np.maximum(np.diag(cov), 0.0) / effective_runs)
    # a rate loaded on a non-positive (unresolved) eigen-direction has no finite standard error
    unresolved = v[:, w <= 0]
    loading = np.sqrt(np.sum(unresolved**2, axis=1)) if unresolved.size else np.zeros(len(free))
    se = np.where(loading > 0.2, np.inf, se)
    se_alone = 1.0 / np.sqrt(np.maximum(np.diag(fisher), 1e-300) * effective_runs)
    return {
        "eigenvalues": w.tolist(),
        "eigenvectors": {name: v[i].tolist() for i, name in enumerate(free)},
        "resolution": resolution,
        "se": {name: (float(s) if np.isfinite(s) else None) for name, s in zip(free, se)},
        "se_alone": {name: float(s) for name, s in zip(free, se_alone)},
        "unresolved_loading": {name: float(l) for name, l in zip(free, loading)},
    }


def design_spectra(
    designs: dict,
    *,
    pairs: int = 1024,
    target_runs: int = 2048,
    step: float = 0.05,
    seed: int = 0,
    held: Sequence[str] | None = None,
    shrinkage: float = 0.5,
    batch: int = 512,
) -> dict:
    """Compare observation designs: the Fisher spectrum of each one's statistics at the TRUE rates.

    One simulation serves every design: ``target_runs`` trajectories at the true rates (key
    ``seed + 10_000``, as the fit's target) and ``pairs`` antithetic pairs at ``u +- d`` (``d``: random
    signs times ``step`` in the log rates not ``held``, default :data:`HELD`), recorded on the union of
    the designs' grids. For each design (name -> :class:`Design`) the fit's metric is built from the
    target, the pairs are regressed (:func:`_pair_regression`) and the split-halves Fisher matrix per
    trajectory is eigen-decomposed. Returns name -> {"dim", "eigenvalues" (descending),
    "diagonal" (information on each free log rate alone)}, plus "free" and "simulated_times".
    """
    network = oscillator_network()
    held = tuple(HELD) if held is None else tuple(held)
    free = [k for k in RATE_NAMES if k not in held]
    union = np.unique(np.round(np.concatenate([d.times.astype(np.float64) for d in designs.values()]), 6))
    union = union.astype(np.float32)
    idx = [network.species_names.index(s) for s in OBSERVED]

    def states(params, key, runs):
        return np.concatenate([np.asarray(tr.states)[:, :, idx] for tr in simulate_batches(
            network, union, key=key, runs=runs, batch_size=batch, params=params, max_steps=5_000_000,
            estimator=None, on_exhausted="raise")])

    u = {k: math.log(v) for k, v in TRUE_RATES.items()}
    d = step * np.random.default_rng(seed).choice([-1.0, 1.0], size=(pairs, len(free)))
    target = states({}, seed + 10_000, target_runs)
    plus = states(_rates(u, free, d), seed + 1, pairs)
    minus = states(_rates(u, free, -d), seed + 1, pairs)
    results = {"free": free, "simulated_times": union}
    for name, design in designs.items():
        t = design.times.astype(np.float64)
        pick = np.searchsorted(np.round(union.astype(np.float64), 6), np.round(t, 6))
        if not np.allclose(union[np.minimum(pick, len(union) - 1)], t, atol=1e-5):
            raise ValueError(f"design {name!r} has times off the simulated grid")
        tg, pl, mi = (trajectory_features(x[:, pick], design, OBSERVED) for x in (target, plus, minus))
        metric = Metric(tg, shrinkage=shrinkage)
        _, halves, _, _ = _pair_regression(d, pl, mi, metric)
        j1, j2 = (metric.whiten(h) for h in halves)
        fisher = (j1.T @ j2 + j2.T @ j1) / 2
        results[name] = {"dim": metric.dim, "eigenvalues": sorted(np.linalg.eigvalsh(fisher).tolist(), reverse=True),
                         "diagonal": dict(zip(free, np.diag(fisher).tolist()))}
    return results


def _gauss_newton_step(metric: Metric, jacobian: np.ndarray, noise: np.ndarray, residual: np.ndarray,
                       resolve: float) -> tuple[np.ndarray, int]:
    """Gauss-Newton step in the free log rates restricted to the directions the batch resolves.

    The normal matrix ``J^T J`` (whitened) minus the Jacobian's own noise ``E[dJ^T dJ]`` is
    eigen-decomposed; only eigen-directions whose eigenvalue exceeds ``resolve`` x the noise's
    largest are moved (a step along an unresolved direction would follow the noise of the Jacobian,
    not the data). Returns the step and the number of resolved directions.
    """
    j = metric.whiten(jacobian)
    w, v = np.linalg.eigh(j.T @ j - noise)
    keep = w > resolve * max(float(np.linalg.eigvalsh(noise).max()), 1e-12)
    step = -v[:, keep] @ ((v[:, keep].T @ (j.T @ residual)) / w[keep])
    return step, int(keep.sum())


DEFAULT_SCHEDULE = (
    # (runs at the current rates, antithetic pairs, perturbation h in log rates)
    *[(64, 128, 0.1)] * 6,
    *[(96, 256, 0.05)] * 24,
    (256, 1024, 0.05), (256, 1024, 0.05),
)
# With the pairs estimator: (trajectories, unused, unused) per iteration, about the regression
# schedule's CPU time (a trajectory with its pairs costs about 7 forward trajectories here)
PAIRS_SCHEDULE = ((128, 0, 0.0),) * 12 + ((256, 0, 0.0),) * 4

# Rates held at their perturbed start (not fitted), and why (docs/oscillator.md):
HELD = {
    "alphaR": "basal repressor transcription, 0.01/h: about 0.1 mRNA per trajectory in 30 h; no statistic moves",
    "gammaA": "A-DA binding is faster than anything observed: only K_A = thetaA / gammaA matters (thetaA fitted)",
    "gammaR": "A-DR binding is faster than anything observed: only K_R = thetaR / gammaR matters (thetaR fitted)",
}
COMBINATIONS = {"K_A = thetaA / gammaA": ("thetaA", "gammaA"), "K_R = thetaR / gammaR": ("thetaR", "gammaR")}


def fit_oscillator(
    *,
    seed: int = 0,
    target_runs: int = 2048,
    schedule: Sequence[tuple[int, int, float]] | None = None,
    jacobian: str = "regression",
    held: Sequence[str] = tuple(HELD),
    pool_last: int = 2,
    design: Design = Design(),
    shrinkage: float = 0.5,
    radius: float = 0.35,
    resolve: float = 1.5,
    check_runs: int = 512,
    progress: bool = True,
    log=None,
) -> dict:
    """Recover the rates from the perturbed start; returns the JSON results and a ``_plot`` entry.

    ``held`` rates stay at their perturbed start. ``schedule``: (center runs, antithetic pairs, h)
    of each iteration (default :data:`DEFAULT_SCHEDULE`). ``jacobian``: ``"regression"`` (antithetic
    forward pairs, :func:`local_model`) or ``"pairs"`` (the pairs estimator, :func:`pairs_local_model`,
    on ``center runs`` trajectories; default schedule :data:`PAIRS_SCHEDULE`, the other two entries
    unused). Each iteration simulates one batch around the current rates
    (:func:`local_model`) and evaluates the loss there; a trust-region test compares the loss change
    of the previous step with the change its linear model predicted: a step that made the loss worse
    beyond its noise is undone and the trust radius halved; a step that achieved less than a quarter
    of its predicted decrease halves the radius, one that achieved more than 3/4 grows it (max 0.7).
    Then a Gauss-Newton step on the resolved directions, scaled so that no log rate moves by more
    than the radius. The final rates are the last accepted iterate plus its step if a check on
    ``check_runs`` fresh trajectories confirms it (else the last accepted iterate). The Fisher
    analysis pools the Jacobians of the last ``pool_last`` iterations. ``log``: optional callable
    receiving one line per iteration.
    """
    if jacobian not in ("regression", "pairs"):
        raise ValueError(f"jacobian must be 'regression' or 'pairs', got {jacobian!r}")
    if schedule is None:
        schedule = DEFAULT_SCHEDULE if jacobian == "regression" else PAIRS_SCHEDULE
    clock = time.perf_counter()
    network = oscillator_network()
    free = [k for k in RATE_NAMES if k not in held]
    target, target_events = simulate_features(network, {}, key=seed + 10_000, runs=target_runs, design=design)
    metric = Metric(target, shrinkage=shrinkage)
    per_run_floor = float(np.trace(metric.whitened_covariance()) / metric.dim)
    start = perturbed_start(seed)
    u = {k: math.log(v) for k, v in start.items()}
    history = {k: [] for k in RATE_NAMES}
    losses, models, trajectories, accepted, radii = [], [], target_runs, [], []
    best = None  # (loss, noise of the loss, rates, step, predicted loss after the step)
    kept = 0
    bar = progress_bar(list(enumerate(schedule)), desc="oscillator fit", disable=not progress, leave=False)
    for it, (center_runs, pairs, h) in bar:
        if jacobian == "pairs":
            model = pairs_local_model(network, u, free, metric, seed=seed * 1000 + 17 * it + 1, runs=center_runs,
                                      design=design)
            trajectories += center_runs
        else:
            model = local_model(network, u, free, metric, seed=seed * 1000 + 17 * it + 1, center_runs=center_runs,
                                pairs=pairs, step=h, design=design)
            trajectories += center_runs + 2 * pairs
        residual = metric.residual(model.center)
        loss = float(residual @ residual / metric.dim)
        floor = per_run_floor * (1.0 / target_runs + 1.0 / center_runs)
        noise_sd = 2.0 * math.sqrt(max(loss, 0.0) * floor / metric.dim) + floor
        losses.append(loss)
        radii.append(radius)
        for k in RATE_NAMES:
            history[k].append(math.exp(u[k]))
        if best is not None and loss > best[0] + 3.0 * math.hypot(noise_sd, best[1]):
            accepted.append(False)
            radius *= 0.5
            u = dict(best[2])
            step = best[3] * 0.5
            best = (best[0], best[1], best[2], step, best[0] - 0.75 * (best[0] - best[4]))
        else:
            if best is not None and best[0] - best[4] > 3.0 * math.hypot(noise_sd, best[1]):
                # ratio test, only where the predicted decrease stands out of the loss's noise
                predicted, actual = best[0] - best[4], best[0] - loss
                if actual < 0.25 * predicted:
                    radius *= 0.5
                elif actual > 0.75 * predicted and np.max(np.abs(best[3])) >= 0.99 * radii[-2]:
                    radius = min(radius * 1.5, 0.7)
            accepted.append(True)
            models.append(model)
            noise = model.residual_cov_trace * model.jac_var
            step, kept = _gauss_newton_step(metric, model.jacobian, noise, residual, resolve)
            largest = float(np.max(np.abs(step))) if step.size else 0.0
            if largest > radius:
                step = step * (radius / largest)
            j = metric.whiten(model.jacobian)
            after = residual + j @ step
            best = (loss, noise_sd, dict(u), step, float(after @ after / metric.dim))
        u = dict(best[2])
        for i, k in enumerate(free):
            u[k] += best[3][i]
        bar.set_postfix(loss=f"{loss:.3g}", refresh=False)
        if log is not None:
            log(f"iteration {it}: loss {loss:.4g} ({'accepted' if accepted[-1] else 'rejected'}), "
                f"resolved directions {kept}, radius {radius:.3f}, "
                f"events {model.events[0]:.0f} (max {model.events[1]:.0f}), {time.perf_counter() - clock:.0f} s")

    proposal = {k: math.exp(v) for k, v in u.items()}
    check, _ = simulate_features(network, proposal, key=seed + 20_000, runs=check_runs, design=design)
    trajectories += check_runs
    check_loss = metric.loss(check.mean(axis=0))
    check_noise = 2.0 * math.sqrt(check_loss * per_run_floor * (1 / target_runs + 1 / check_runs) / metric.dim)
    if check_loss <= best[0] + 3.0 * math.hypot(check_noise, best[1]):
        fitted_rates = proposal
    else:  # the last step made things worse: keep the last accepted iterate
        fitted_rates = {k: math.exp(v) for k, v in best[2].items()}
    floor = per_run_floor * (1 / target_runs + 1 / check_runs)

    last = models[-pool_last:]
    weights = np.array([m.pairs for m in last], float)
    halves = [sum(w * m.halves[i] for w, m in zip(weights, last)) / weights.sum() for i in (0, 1)]
    effective = 1.0 / (1.0 / target_runs + 1.0 / sum(m.center_runs for m in last))
    fisher = fisher_analysis(metric, halves, free, effective_runs=effective)

    per_rate = {k: abs(fitted_rates[k] / TRUE_RATES[k] - 1.0) for k in RATE_NAMES}
    representatives = {pair[0] for pair in COMBINATIONS.values()}
    fitted = [k for k in free if k not in representatives]
    combinations = {}
    for label, (num, den) in COMBINATIONS.items():
        value = fitted_rates[num] / fitted_rates[den]
        combinations[label] = {"fitted": value, "true": TRUE_RATES[num] / TRUE_RATES[den],
                               "rel_error": abs(value / (TRUE_RATES[num] / TRUE_RATES[den]) - 1.0)}
    seconds = time.perf_counter() - clock
    t = design.times
    n_t = len(t)
    target_mean = metric.target[: 3 * n_t].reshape(n_t, 3)
    target_sd = np.sqrt(np.maximum(metric.target[3 * n_t: 6 * n_t].reshape(n_t, 3) - target_mean**2, 0))
    return {
        "mean_rel_error": float(np.mean([per_rate[k] for k in fitted])),
        "per_rate": {k: float(v) for k, v in per_rate.items()},
        "fitted": fitted,
        "held_at_start": {k: HELD.get(k, "held") for k in held},
        "combinations": combinations,
        "mean_rel_error_start": float(np.mean([abs(start[k] / TRUE_RATES[k] - 1.0) for k in fitted])),
        "mean_rel_error_all_15": float(np.mean(list(per_rate.values()))),
        "rates": fitted_rates,
        "start": start,
        "predicted_se": fisher["se"],
        "fisher_eigenvalues": fisher["eigenvalues"],
        "fisher_resolution": fisher["resolution"],
        "resolved_directions_last": kept,
        "loss_start": losses[0],
        "loss_final": check_loss,
        "loss_noise_floor": floor,
        "iterations": len(schedule),
        "jacobian": jacobian,
        "rejected_steps": int(len(accepted) - sum(accepted)),
        "target_runs": target_runs,
        "trajectories": int(trajectories),
        "events_per_trajectory_target": float(np.mean(target_events)),
        "seconds": seconds,
        "_plot": {
            "times": t,
            "target_mean": target_mean * design.scale,
            "target_sd": target_sd * design.scale,
            "fit_mean": check.mean(axis=0)[: 3 * n_t].reshape(n_t, 3) * design.scale,
            "start_mean": models[0].center[: 3 * n_t].reshape(n_t, 3) * design.scale,
            "losses": np.array(losses),
            "loss_check": check_loss,
            "loss_floor": floor,
            "history": {k: np.array(v + [fitted_rates[k]]) for k, v in history.items()},
            "eigenvalues": np.array(fisher["eigenvalues"]),
            "resolution": fisher["resolution"],
            "fitted": fitted,
        },
    }


def plot_fit(results: dict, path) -> None:
    """Four panels: target vs fitted mean time courses, loss per iteration, rates / true, Fisher spectrum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = results["_plot"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    ax = axes[0, 0]
    for j, (s, c) in enumerate(zip(OBSERVED, ("C0", "C3", "C2"))):
        ax.plot(p["times"], p["target_mean"][:, j], "-", color=c, lw=2, label=f"{s} target mean")
        ax.fill_between(p["times"], p["target_mean"][:, j] - p["target_sd"][:, j],
                        p["target_mean"][:, j] + p["target_sd"][:, j], color=c, alpha=0.08)
        ax.plot(p["times"], p["fit_mean"][:, j], "--", color="k", lw=1)
        ax.plot(p["times"], p["start_mean"][:, j], ":", color=c, lw=1)
    ax.plot([], [], "k--", label="fitted rates (fresh runs)")
    ax.plot([], [], "k:", label="start (rates x2 or /2)")
    ax.set(xlabel="time (h)", ylabel="molecules", title="mean time courses: target (band: ±SD), fit, start",
           ylim=(0, 1.15 * max(np.max(p["target_mean"] + p["target_sd"]), 1)))
    ax.legend(fontsize=7, ncol=2)
    ax = axes[0, 1]
    ax.semilogy(np.arange(1, len(p["losses"]) + 1), p["losses"], "o-", label="loss at each iterate")
    ax.axhline(p["loss_check"], color="C1", ls="--", label="final rates, fresh runs")
    ax.axhline(p["loss_floor"], color="k", lw=0.8, ls=":", label="Monte Carlo noise floor")
    ax.set(xlabel="Gauss-Newton iteration", ylabel="whitened squared residual / D", title="loss")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for k, v in p["history"].items():
        style = "-" if k in p["fitted"] else ":"
        ax.semilogy(np.arange(len(v)), v / TRUE_RATES[k], style, label=k)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel="iteration (last point: final rates)", ylabel="rate / true rate",
           title="rates (dotted: held or fitted only in combination)")
    ax.legend(fontsize=6, ncol=3)
    ax = axes[1, 1]
    ev = np.sort(p["eigenvalues"])[::-1]
    ax.semilogy(np.arange(1, len(ev) + 1), np.where(ev > 0, ev, np.nan), "o")
    ax.axhline(p["resolution"], color="k", lw=0.8, ls=":", label="noise of the estimate (|most negative eigenvalue|)")
    ax.set(xlabel="index", ylabel="eigenvalue (per trajectory)",
           title="Fisher information of the statistics (12 free log rates)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reproduce(out, seed: int = 0, progress: bool = True, jacobian: str = "regression") -> dict:
    """Run the whole reproduction, write the figure to ``out``, return the results (``_plot`` included)."""
    results = fit_oscillator(seed=seed, progress=progress, jacobian=jacobian)
    plot_fit(results, out)
    return results
