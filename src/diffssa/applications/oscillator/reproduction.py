"""The reproduction end to end: the fit with its default settings and its four-panel figure.

:func:`reproduce` is what ``diffssa reproduce oscillator`` runs (src/diffssa/cli.py); :func:`plot_fit`
draws the results of :func:`.fit_oscillator`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...optional import pyplot
from .fit import fit_oscillator
from .network import OBSERVED, TRUE_RATES


def plot_fit(results: dict, path) -> None:
    """Four panels: target vs fitted mean time courses, loss per iteration, rates / true, Fisher spectrum.

    ``results``: what :func:`.fit_oscillator` returns (its ``_plot`` entry is drawn); the figure is
    written to ``path`` (PNG, 110 dpi; missing folders are created).
    """
    plt = pyplot("the oscillator plot")
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
           title=f"Fisher information of the statistics ({len(ev)} free log rates)")
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
