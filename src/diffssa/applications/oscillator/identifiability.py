"""What the statistics determine: split-halves Fisher information, standard errors, designs compared.

:func:`fisher_analysis` turns two independent Jacobians (the halves of a :class:`.LocalModel`) into the
Fisher information per trajectory, its eigen-decomposition and the standard error of each log rate;
:func:`design_spectra` compares observation designs by their Fisher spectra at the true rates.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .features import TARGET_KEY_OFFSET, exact_batches, trajectory_features
from .local_models import _pair_regression, antithetic_pairs
from .metric import Metric
from .network import HELD, OBSERVED, TRUE_RATES, free_rates, oscillator_network


def _split_fisher(metric: Metric, halves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent (D, P) Jacobians -> the whitened Fisher matrix ``(J1^T J2 + J2^T J1) / 2`` (P, P)
    per trajectory (unbiased: the Jacobians' noises are independent) and their whitened mean (D_kept, P)."""
    j1, j2 = (metric.whiten(h) for h in halves)
    return (j1.T @ j2 + j2.T @ j1) / 2, (j1 + j2) / 2


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
    fisher, jm = _split_fisher(metric, halves)
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
    signs times ``step`` in the log rates not ``held``, default :data:`HELD`; :func:`.antithetic_pairs`),
    recorded on the union of the designs' grids. For each design (name -> :class:`.Design`) the fit's
    metric is built from the target, the pairs are regressed (:func:`._pair_regression`) and the
    split-halves Fisher matrix per trajectory is eigen-decomposed. Returns name -> {"dim",
    "eigenvalues" (descending, per trajectory), "diagonal" (information on each free log rate alone)},
    plus "free" and "simulated_times" (hours).
    """
    network = oscillator_network()
    held = tuple(HELD) if held is None else tuple(held)
    free = free_rates(held)
    union = np.unique(np.round(np.concatenate([d.times.astype(np.float64) for d in designs.values()]), 6))
    union = union.astype(np.float32)
    idx = [network.species_names.index(s) for s in OBSERVED]

    def states(params, key, runs):
        return np.concatenate([np.asarray(tr.states)[:, :, idx]
                               for tr in exact_batches(network, union, params, key=key, runs=runs, batch=batch)])

    u = {k: math.log(v) for k, v in TRUE_RATES.items()}
    d, up, down = antithetic_pairs(u, free, seed=seed, pairs=pairs, step=step)
    target = states({}, seed + TARGET_KEY_OFFSET, target_runs)
    plus = states(up, seed + 1, pairs)
    minus = states(down, seed + 1, pairs)
    results = {"free": free, "simulated_times": union}
    for name, design in designs.items():
        t = design.times.astype(np.float64)
        pick = np.searchsorted(np.round(union.astype(np.float64), 6), np.round(t, 6))
        if not np.allclose(union[np.minimum(pick, len(union) - 1)], t, atol=1e-5):
            raise ValueError(f"design {name!r} has times off the simulated grid")
        tg, pl, mi = (trajectory_features(x[:, pick], design, OBSERVED) for x in (target, plus, minus))
        metric = Metric(tg, shrinkage=shrinkage)
        _, halves, _, _ = _pair_regression(d, pl, mi, metric)
        fisher, _ = _split_fisher(metric, halves)
        results[name] = {"dim": metric.dim, "eigenvalues": sorted(np.linalg.eigvalsh(fisher).tolist(), reverse=True),
                         "diagonal": dict(zip(free, np.diag(fisher).tolist()))}
    return results
