"""Reversible dimerisation 2P <-> P2: recover both rates from the exact master-equation moments.

Model: P0 = 100, k1 = 0.001 (propensity k1 * P * (P - 1) / 2), k2 = 0.01, observed on [0, 50].
Target: the exact mean and SD of P at every grid time from the chemical master equation. The fit
starts 10x off in each rate (k1 x 10, k2 / 10) and descends through the exact simulator.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optax

from ..fitting import FitResult, fit, moment_loss
from ..kinetics import MassAction
from ..model import ReactionNetwork
from ..optional import pyplot
from ..reactions import Reaction
from ..reference.cme import solve_cme
from ..simulation.api import simulate
from ..simulation.trajectories import time_grid

__all__ = ["dimerization_network", "fit_dimerization", "plot_fit"]

TRUE_RATES = {"k1": 0.001, "k2": 0.01}


def dimerization_network(k1: float = 0.001, k2: float = 0.01, p0: int = 100) -> ReactionNetwork:
    return ReactionNetwork(
        species={"P": p0, "P2": 0},
        parameters={"k1": k1, "k2": k2},
        reactions=[
            Reaction({"P": 2}, {"P2": 1}, MassAction("k1"), "dimerisation"),
            Reaction({"P2": 1}, {"P": 2}, MassAction("k2"), "dissociation"),
        ],
        name="dimerisation",
    )


def fit_dimerization(
    *, runs: int = 2000, steps: int = 200, polish_runs: int = 0, polish_steps: int = 0, seed: int = 0,
    learning_rate: float = 0.05, polish_learning_rate: float = 0.003, t_end: float = 50.0, points: int = 50,
    progress: bool = True,
) -> dict:
    """Fit log k1 and log k2 from 10x-off starting values; returns results and what the plot needs.

    Phase 1: ``steps`` Adam iterations of ``runs`` trajectories each, cosine-decayed learning rate.
    Phase 2 (if ``polish_steps``): ``polish_steps`` iterations of ``polish_runs`` trajectories at a small
    constant rate, returning the average of the last half of the iterates (Polyak-Ruppert), which
    averages the Monte Carlo noise down. At the true rates the residuals vanish, so the fixed point
    is the truth; the gradients come from the default (unbiased) estimator.
    """
    start = time.perf_counter()
    network = dimerization_network()
    times = time_grid(t_end, points)
    exact = solve_cme(network, times)
    target_mean, target_sd = exact.mean[:, 0], exact.sd[:, 0]

    def make_loss(batch):
        def loss(params, key):
            tr = simulate(network, times, key=key, runs=batch, params=params, max_steps=400, on_exhausted="ignore")
            return moment_loss(tr, "P", target_mean, target_sd)

        return loss

    initial = {"k1": TRUE_RATES["k1"] * 10, "k2": TRUE_RATES["k2"] / 10}
    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.1)
    result: FitResult = fit(make_loss(runs), initial, key=seed, steps=steps, optimizer=optax.adam(schedule),
                            progress=progress, description="dimerisation fit")
    losses, history, params = result.losses, result.history, result.params
    if polish_steps:
        polish = fit(make_loss(polish_runs), params, key=seed + 1, steps=polish_steps,
                     optimizer=optax.adam(polish_learning_rate), progress=progress,
                     description="dimerisation polish", average_last=polish_steps // 2)
        params = polish.params
        losses = np.concatenate([losses, polish.losses])
        history = {k: np.concatenate([history[k], polish.history[k]]) for k in history}
    check = simulate(network, times, key=seed + 2, runs=max(runs, polish_runs), params=params, max_steps=400)
    seconds = time.perf_counter() - start
    return {
        "k1": params["k1"],
        "k2": params["k2"],
        "k1_rel_error": abs(params["k1"] / TRUE_RATES["k1"] - 1),
        "k2_rel_error": abs(params["k2"] / TRUE_RATES["k2"] - 1),
        "trajectories": runs * steps + polish_runs * polish_steps,
        "seconds": seconds,
        "_plot": {
            "times": np.asarray(times), "target_mean": target_mean, "target_sd": target_sd,
            "fit_mean": np.asarray(check.mean())[:, 0], "fit_sd": np.asarray(check.sd())[:, 0],
            "losses": losses, "history": history,
        },
    }


def plot_fit(results: dict, path: Path) -> None:
    """Three panels: target vs fitted mean +- SD of P, loss curve, rate trajectories."""
    plt = pyplot("the dimerisation plot")
    p = results["_plot"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(p["times"], p["target_mean"], "k-", label="exact mean (master equation)")
    ax.fill_between(p["times"], p["target_mean"] - p["target_sd"], p["target_mean"] + p["target_sd"], color="k", alpha=0.15, label="exact ±SD")
    ax.plot(p["times"], p["fit_mean"], "C1--", label="fitted model mean")
    ax.plot(p["times"], p["fit_mean"] - p["fit_sd"], "C1:", p["times"], p["fit_mean"] + p["fit_sd"], "C1:")
    ax.set(xlabel="time", ylabel="P (molecules)", title="2P <-> P2: target and fit")
    ax.legend(fontsize=8)
    axes[1].semilogy(p["losses"])
    axes[1].set(xlabel="iteration", ylabel="loss", title="loss")
    for name, values in p["history"].items():
        axes[2].semilogy(values / TRUE_RATES[name], label=f"{name} / true")
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].set(xlabel="iteration", ylabel="ratio to true rate", title="rates (start 10x off)")
    axes[2].legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
