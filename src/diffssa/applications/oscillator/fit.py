"""The fit: trust-region Gauss-Newton in the log rates, one simulated batch per iteration.

:func:`fit_oscillator` recovers the rates from the perturbed start (:func:`.perturbed_start`) against
target statistics simulated at the true rates; each iteration takes a :class:`.LocalModel` around the
current rates and a Gauss-Newton step on the directions it resolves (:func:`_gauss_newton_step`).
The schedules (:data:`DEFAULT_SCHEDULE`, :data:`PAIRS_SCHEDULE`) set the simulation effort per iteration.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from ...progress import progress_bar
from .features import TARGET_KEY_OFFSET, Design, simulate_features
from .identifiability import fisher_analysis
from .local_models import local_model, pairs_local_model
from .metric import Metric
from .network import (
    COMBINATIONS,
    HELD,
    RATE_NAMES,
    TRUE_RATES,
    free_rates,
    oscillator_network,
    perturbed_start,
)


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


def _courses(statistics: np.ndarray, n_t: int, moment: int = 1) -> np.ndarray:
    """(D,) statistics -> the (n_t, 3) time courses of the mean (``moment`` 1) or the second moment (2)
    of A, R, C (in units of ``design.scale`` molecules, or its square), as laid out by :func:`.trajectory_features`."""
    return statistics[(moment - 1) * 3 * n_t: moment * 3 * n_t].reshape(n_t, 3)


DEFAULT_SCHEDULE = (
    # (runs at the current rates, antithetic pairs, perturbation h in log rates)
    *[(64, 128, 0.1)] * 6,
    *[(96, 256, 0.05)] * 24,
    (256, 1024, 0.05), (256, 1024, 0.05),
)
# With the pairs estimator: (trajectories, unused, unused) per iteration, about the regression
# schedule's CPU time (a trajectory with its pairs costs about 7 forward trajectories here)
PAIRS_SCHEDULE = ((128, 0, 0.0),) * 12 + ((256, 0, 0.0),) * 4


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
    receiving one line per iteration. Rates are per hour (bimolecular ones per molecule and hour),
    losses dimensionless (:class:`.Metric`), ``seconds`` wall-clock time; ``_plot`` holds the figure's
    arrays (time courses in molecules at ``design.times`` hours).
    """
    if jacobian not in ("regression", "pairs"):
        raise ValueError(f"jacobian must be 'regression' or 'pairs', got {jacobian!r}")
    if schedule is None:
        schedule = DEFAULT_SCHEDULE if jacobian == "regression" else PAIRS_SCHEDULE
    clock = time.perf_counter()
    network = oscillator_network()
    free = free_rates(held)
    target, target_events = simulate_features(network, {}, key=seed + TARGET_KEY_OFFSET, runs=target_runs,
                                              design=design)
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
    target_mean = _courses(metric.target, n_t)
    target_sd = np.sqrt(np.maximum(_courses(metric.target, n_t, moment=2) - target_mean**2, 0))
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
            "fit_mean": _courses(check.mean(axis=0), n_t) * design.scale,
            "start_mean": _courses(models[0].center, n_t) * design.scale,
            "losses": np.array(losses),
            "loss_check": check_loss,
            "loss_floor": floor,
            "history": {k: np.array(v + [fitted_rates[k]]) for k, v in history.items()},
            "eigenvalues": np.array(fisher["eigenvalues"]),
            "resolution": fisher["resolution"],
            "fitted": fitted,
        },
    }
