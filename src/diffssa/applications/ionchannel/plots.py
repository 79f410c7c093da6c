"""Plots of the ion-channel reproduction (matplotlib, the ``plot`` extra, imported when a plot is drawn).

Densities are drawn as ``sqrt(density per decade)`` against log time, the usual display of dwell-time
distributions; times in ms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...optional import pyplot
from .models import GatingScheme
from .qmatrix import MissedEventDensity
from .records import log_binned_density
from .reports import ReferenceData, predicted_level_density

__all__ = ["plot_glyr", "plot_two_channel", "plot_loss"]


def _density_curve(scheme, conc, tres, in_a, t):
    dens = MissedEventDensity(scheme.q_matrix(conc), in_a, tres)
    return dens.pdf(t) * t * np.log(10)  # per log10 unit


def plot_glyr(img_dir: Path, scheme: GatingScheme, data, simulated):
    """``img_dir/ionchannel-glyr.png``: for every record (``data``: :class:`ReferenceData`), open and shut
    densities: the data, the scheme's exact HJC curve and ``simulated`` records (concentration ->
    :class:`~.records.DwellSet`)."""
    plt = pyplot("the ion-channel plots")
    img_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(data), 2, figsize=(10, 3.2 * len(data)))
    for row, d in zip(np.atleast_2d(axes), data):
        for ax, lev in zip(row, (1, 0)):
            edges, obs = d.bins[lev]
            which = "open" if lev else "shut"
            centres = np.sqrt(edges[1:] * edges[:-1])
            ax.stairs(np.sqrt(obs), edges, color="0.3", label="data")
            t = np.logspace(np.log10(edges[0]), np.log10(edges[-1]), 400)
            in_a = scheme.is_open if lev else ~scheme.is_open
            curve = _density_curve(scheme, d.concentration, d.tres, in_a, t)
            mass = np.sum(np.maximum(np.interp(np.log10(centres), np.log10(t), curve), 0) * np.diff(np.log10(edges)))
            ax.plot(t, np.sqrt(np.maximum(curve, 0) / max(mass, 1e-12)), color="C3", label="exact HJC (fitted rates)")
            y = simulated[d.concentration].by_level.get(lev, np.zeros(0))
            sim = log_binned_density(y[(y >= edges[0]) & (y < edges[-1])], edges)
            ax.plot(centres, np.sqrt(sim), "o", ms=3, color="C0", label="simulated records")
            ax.set_xscale("log")
            ax.set_xlabel(f"apparent {which} time (ms)")
            ax.set_ylabel("sqrt(density per decade)")
            ax.set_title(f"{d.concentration:g} uM glycine, {which}")
    np.atleast_2d(axes)[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img_dir / "ionchannel-glyr.png", dpi=110)
    plt.close(fig)


def plot_two_channel(path: Path, scheme: GatingScheme, data: ReferenceData, dwells, obs_occ, exact_occ, sim_occ):
    """Densities at each level of the two-channel record (data, exact HJC, simulated ``dwells``) and the
    level occupancies (observed, exact, simulated: (3,) fractions of time)."""
    plt = pyplot("the ion-channel plots")
    path.parent.mkdir(parents=True, exist_ok=True)
    levels = sorted(data.bins)
    fig, axes = plt.subplots(1, len(levels) + 1, figsize=(4 * (len(levels) + 1), 3.4))
    for ax, lev in zip(axes, levels):
        edges, obs = data.bins[lev]
        centres = np.sqrt(edges[1:] * edges[:-1])
        ax.stairs(np.sqrt(obs), edges, color="0.3", label="data")
        pred = predicted_level_density(scheme, 1.0, data.tres, 2, lev, edges)
        ax.plot(centres, np.sqrt(pred), color="C3", label="exact HJC")
        y = dwells.by_level.get(lev, np.zeros(0))
        ax.plot(centres, np.sqrt(log_binned_density(y[(y >= edges[0]) & (y < edges[-1])], edges)), "o", ms=3,
                color="C0", label="simulated")
        ax.set_xscale("log")
        ax.set_xlabel(f"dwell at level {lev} (ms)")
        ax.set_ylabel("sqrt(density per decade)")
    axes[0].legend(fontsize=8)
    x = np.arange(3)
    axes[-1].bar(x - 0.25, obs_occ, 0.25, label="data", color="0.4")
    axes[-1].bar(x, exact_occ, 0.25, label="exact (no resolution)", color="C3")
    axes[-1].bar(x + 0.25, sim_occ, 0.25, label="simulated", color="C0")
    axes[-1].set_yscale("log")
    axes[-1].set_xticks(x, ["0", "1", "2"])
    axes[-1].set_xlabel("open channels")
    axes[-1].set_ylabel("occupancy")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(path: Path, losses, title: str):
    """The loss of every optimiser step (``losses`` (steps,)) and its running mean."""
    plt = pyplot("the ion-channel plots")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.6, color="0.6", label="per step")
    k = max(len(losses) // 15, 1)
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(k, len(losses) + 1), smooth, color="C0", label=f"mean of {k}")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("loss (unbiased, can be < 0)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
