"""Fitting gating schemes to single-channel records through the exact simulator, and R^2 reports.

The simulation-based fit
------------------------
Statistic: for every record (agonist concentration) and every *scale* (grid spacing ``h``, window
length, resolution, range of dwell times), the soft log-binned histogram of the complete resolved open
and shut periods in windows (:mod:`.gridstats`). The data are cut into windows of the same length and
sampled on the same grid, so both sides go through the same function. Loss: for every record, scale
and level, ``sum_b (s1_b - d_b)(s2_b - d_b) / (d_b + 1/n_bins)`` with ``s1``, ``s2`` the normalised
simulated histograms of two independent halves of the windows and ``d`` the data's: unbiased for the
squared error of the expected histogram (one batch's squared error would add, and reward lowering,
the Monte Carlo variance). All records are fitted with one scheme and one set of rate constants; only
``conc`` differs.

Simulated windows start at equilibrium: the network gets an extra state ``INIT`` that jumps within
~1e-7 ms to state ``s`` with probability ``q_s`` (per-window parameters of the network). ``q`` is the
tempered equilibrium distribution ``sqrt(p_inf)`` (``p_inf`` from the Q-matrix at the current rates)
mixed with 5% uniform, so that windows inside bursts are drawn often even at low concentration; each
window is weighted by ``p_inf(x0) / q(x0)`` (importance sampling).

Gradient: the histogram is an exact function of the path (resolution, run lengths, bins), so it has
no pathwise derivative; the simulator's **score-function estimator** (``estimator="score-function"``:
the direct method, recording the path log-likelihood ``log L`` as a differentiable function of the
rates) gives ``d E[w F] = E[w (C(t) - beta(t)) (d log p_inf(x0) + d log L(t))]``: each period
weighted by the score of the path up to the point where it is complete, ``beta`` a leave-one-out
weighted baseline. The thinning + straight-through surrogate was tried first and is wrong here: it
linearises the *marginal* state probabilities, not the survival of a dwell, and against finite
differences on a 3-state scheme it had the wrong sign for the closing rate (-1.24 true, +0.16
surrogate, see docs/ionchannel.md); the score function agreed within its standard error.
The optimiser (:func:`optimise`) is Adam on log rate constants, as :func:`diffssa.fitting.fit`, plus a
decaying learning rate, clipping, skipped non-finite steps, bounds and iterate averaging.

Reports
-------
R^2 between observed log-binned densities (10 bins per decade from ``tres`` to the longest dwell; the
definition of :mod:`.records`) and (a) the exact HJC densities of the scheme at the fitted rates
(:mod:`.qmatrix`), (b) densities of long simulated records (the simulator's forward path on a fine grid,
windows chained end to start, the same resolution imposed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ...kinetics import MassAction
from ...model import ReactionNetwork
from ...reactions import Reaction
from ...rng import as_key
from .gridstats import SoftBins, sample_record, soft_histogram_np
from .models import GatingScheme
from .qmatrix import MissedEventDensity, bin_probabilities, pinf
from .records import (
    DwellSet,
    Record,
    dwell_times,
    impose_resolution,
    log_binned_density,
    log_bins,
    r_squared,
    record_from_segments,
)

__all__ = [
    "Scale",
    "DEFAULT_SCALES",
    "observed_densities",
    "predicted_density",
    "record_r2",
    "Target",
    "SimulationLoss",
    "optimise",
    "simulate_dwells",
    "simulated_r2",
]

INIT = "INIT"
INIT_RATE = 1e7  # per ms: the INIT state is left within ~1e-7 ms
T0 = 1e-5  # ms: first grid time (after the jump out of INIT)


@dataclass(frozen=True)
class Scale:
    """One scale of the fit: grid spacing ``h`` (ms), ``samples`` points per window, resolution ``tres``
    (ms) imposed on the gridded records, soft bins from ``lo`` to ``hi`` (ms, 10 per decade),
    ``windows`` simulated per record and step, and an event budget ``max_steps`` per window."""

    name: str
    h: float
    samples: int
    tres: float
    lo: float
    hi: float
    windows: int
    max_steps: int
    weight: float = 1.0

    @property
    def bins(self) -> SoftBins:
        return SoftBins(self.lo, self.hi, 10)


# GlyR: fine = brief shuttings and openings at the analysis resolution (30 us, 3 ms windows); mid = open
# times and shut times within bursts (40 ms windows); coarse = shut times between bursts (0.4 s windows,
# at the concentrations whose tcrit admits them).
FINE = Scale("fine", h=0.005, samples=600, tres=0.03, lo=0.03, hi=1.0, windows=48, max_steps=300)
MID = Scale("mid", h=0.05, samples=800, tres=0.1, lo=0.2, hi=15.0, windows=48, max_steps=1500)
COARSE = Scale("coarse", h=1.0, samples=400, tres=2.0, lo=3.0, hi=100.0, windows=24, max_steps=2000)
DEFAULT_SCALES = (FINE, MID, COARSE)


# ----------------------------------------------------------------------------- observed and predicted
def observed_densities(dwells: np.ndarray, tres: float, tmax: float | None = None, per_decade: int = 10):
    """Edges and observed log-binned density of dwell times (bins from ``tres`` to ``tmax`` or the longest dwell)."""
    dwells = np.asarray(dwells, dtype=np.float64)
    dwells = dwells[dwells >= tres]
    top = float(tmax) if tmax is not None else float(dwells.max()) * (1 + 1e-9)
    edges = log_bins(tres, top, per_decade)
    return edges, log_binned_density(dwells[dwells < edges[-1]], edges)


def predicted_density(scheme: GatingScheme, concentration: float, tres: float, edges, which: str, rates=None):
    """HJC (exact + asymptotic) log-binned density of apparent open or shut times, normalised over ``edges``."""
    Q = scheme.q_matrix(concentration, rates)
    in_a = scheme.is_open if which == "open" else ~scheme.is_open
    dens = MissedEventDensity(Q, in_a, tres)
    probs = np.maximum(bin_probabilities(dens.pdf, edges, (2 * tres, 3 * tres)), 0.0)
    return probs / probs.sum() / np.diff(np.log10(edges))


def record_r2(scheme: GatingScheme, concentration: float, record: Record, tres: float, *, rates=None,
              tcrit: float | None = None, per_decade: int = 10, detail: bool = False) -> dict:
    """R^2 of the scheme's exact HJC dwell-time densities against a record's, open and shut.

    Bins: ``per_decade`` per decade from ``tres`` to the longest dwell; with ``tcrit`` (ms) the shut
    times are compared on ``[tres, tcrit)`` only (observed and predicted both normalised there).
    ``detail=True`` adds the edges, observed and predicted densities.
    """
    ds = dwell_times(impose_resolution(record, tres))
    out = {}
    for which, x in (("open", ds.open), ("shut", ds.shut)):
        top = tcrit if (which == "shut" and tcrit is not None) else None
        if top is not None:
            x = x[x < top]
        edges, obs = observed_densities(x, tres, tmax=top, per_decade=per_decade)
        pred = predicted_density(scheme, concentration, tres, edges, which, rates)
        out[f"r2_{which}"] = r_squared(obs, pred)
        out[f"n_{which}"] = int(np.sum(x >= tres))
        if detail:
            out[f"{which}_bins"] = (edges, obs, pred)
    return out


# ------------------------------------------------------------------------------ simulated networks
def _init_network(scheme: GatingScheme, channels: int = 1) -> ReactionNetwork:
    """The scheme's network plus an ``INIT`` state that jumps at once to state ``s`` with probability ``q_s``."""
    base = scheme.network(channels, 1.0)
    species = {INIT: channels, **{s: 0 for s in scheme.states}}
    params = {**base.parameters, "kinit": INIT_RATE, **{f"q_{i}": 1.0 / len(scheme.states) for i in range(len(scheme.states))}}
    reactions = list(base.reactions) + [
        Reaction({INIT: 1}, {s: 1}, MassAction(f"kinit * q_{i}"), f"init->{s}") for i, s in enumerate(scheme.states)
    ]
    return ReactionNetwork(species, params, reactions, name=f"{scheme.name}+init")


def _pinf_jax(Q):
    k = Q.shape[0]
    S = jnp.concatenate([Q, jnp.ones((k, 1), Q.dtype)], axis=1)
    return jnp.linalg.solve(S @ S.T, jnp.ones(k, Q.dtype))


@dataclass(frozen=True)
class Target:
    """A record to fit: its name, agonist concentration (uM), the raw idealised record and its scales."""

    name: str
    concentration: float
    record: Record
    scales: tuple
    tcrit: float | None = None  # ms: shut periods longer than this are left out (between bursts)


def _mask(bins: SoftBins, n_levels: int, tcrit: float | None) -> np.ndarray:
    """(n_levels, nb) 1/0: shut bins whose centre exceeds ``tcrit`` are masked out."""
    mask = np.ones((n_levels, bins.size))
    if tcrit is not None:
        mask[0, 10.0 ** bins.centres > tcrit] = 0.0
    return mask


@dataclass
class SimulationLoss:
    """``loss(rates, key)``: the multi-scale windowed histogram loss of the module docstring.

    ``targets``: the records to fit; ``channels``: unit channels in the patch (levels 0..channels), made
    of independent copies of ``scheme`` (:meth:`GatingScheme.copies`).
    Targets that share a scale are simulated in one call (their windows side by side, ``conc`` per window).
    """

    scheme: GatingScheme
    targets: Sequence[Target]
    channels: int = 1
    mix: float = 0.05  # share of the uniform distribution in the window start distribution q
    eps: float = 1e-4
    max_data_windows: int = 20000

    def __post_init__(self):
        self.copies = self.scheme.copies(self.channels)
        self.network = _init_network(self.scheme, self.copies)
        self.n_levels = self.channels + 1
        self.state_index = np.array([self.network.species_names.index(s) for s in self.scheme.states])
        self.state_levels = jnp.asarray(self.scheme.state_levels, jnp.float32)
        self.scales = []
        for t in self.targets:
            for sc in t.scales:
                if sc not in self.scales:
                    self.scales.append(sc)
        self.targets_stats = {}
        self.data_windows = {}
        for t in self.targets:
            for sc in t.scales:
                win = sample_record(t.record, sc.h, sc.samples, offset=T0, max_windows=self.max_data_windows)
                F = soft_histogram_np(win, sc.h, sc.tres, sc.bins, self.n_levels).sum(axis=0)
                F = F * _mask(sc.bins, self.n_levels, t.tcrit)
                self.targets_stats[(sc.name, t.name)] = F / np.maximum(F.sum(axis=1, keepdims=True), 1e-300)
                self.data_windows[(sc.name, t.name)] = int(win.shape[0])

    def _scale_terms(self, rates, key, scale: Scale):
        from ...simulation.api import simulate

        targets = [t for t in self.targets if scale in t.scales]
        k = len(self.scheme.states)
        nw = scale.windows
        logp, logq = [], []
        for t in targets:
            p = jnp.clip(_pinf_jax(self.scheme.q_matrix_jax(rates, t.concentration)), 1e-12, 1.0)
            p = p / jnp.sum(p)
            q = jnp.sqrt(p)  # tempered: rare states (bursts at low concentration) are drawn more often
            q = jax.lax.stop_gradient((1 - self.mix) * q / jnp.sum(q) + self.mix / k)
            logp.append(jnp.log(p))
            logq.append(jnp.log(q))
        logp = jnp.repeat(jnp.stack(logp), nw, axis=0)  # (B, k)
        logq = jnp.repeat(jnp.stack(logq), nw, axis=0)
        params = {name: rates[name] for name in self.scheme.rates}
        params["conc"] = jnp.repeat(jnp.asarray([t.concentration for t in targets], jnp.float32), nw)
        q = jnp.exp(logq)
        for i in range(k):
            params[f"q_{i}"] = q[:, i]
        times = T0 + scale.h * np.arange(scale.samples)
        batch = nw * len(targets)
        # one device: the histograms below are a host callback, and XLA's CPU collectives between
        # devices and a callback inside jit deadlocked (seen with two CPU devices)
        tr = simulate(self.network, times, key=key, runs=batch, params=params, max_steps=scale.max_steps,
                      on_exhausted="ignore", estimator="score-function",
                      devices=jax.local_devices()[:1])
        states = jax.lax.stop_gradient(jnp.nan_to_num(tr.states))
        x0 = states[:, 0, :][:, self.state_index]  # (B, k): copies of the scheme in each state after INIT
        ok = ~tr.exhausted & (jnp.abs(jnp.sum(x0, axis=1) - self.copies) < 0.5)
        # independent copies: p0(x0) = prod over copies of p_inf(state); likewise q
        log_ratio = jnp.sum(x0 * (logp - logq), axis=1)
        weight = jax.lax.stop_gradient(jnp.where(ok, jnp.exp(jnp.where(ok, log_ratio, 0.0)), 0.0))
        logp0 = jnp.where(ok, jnp.sum(x0 * logp, axis=1), 0.0)
        loglik = jnp.where(ok[:, None], jnp.nan_to_num(tr.log_likelihood), 0.0)  # (B, T)
        # score of the path up to each grid time: d log p_inf(x0) + d log L(t) (0 in the forward pass)
        score = (logp0 - jax.lax.stop_gradient(logp0))[:, None] + loglik - jax.lax.stop_gradient(loglik)
        levels = jnp.clip(jnp.where(ok[:, None], states[:, :, self.state_index] @ self.state_levels, 0.0), 0, self.channels)
        bins, n_levels, T = scale.bins, self.n_levels, scale.samples
        C = jax.pure_callback(
            lambda o: soft_histogram_np(np.rint(np.asarray(o)).astype(np.int8), scale.h, scale.tres, bins, n_levels,
                                        by_time=True).astype(np.float32),
            jax.ShapeDtypeStruct((batch, n_levels, bins.size, T), jnp.float32), levels, vmap_method="sequential")
        terms = {}
        half = nw // 2
        for ti, t in enumerate(targets):
            mask = jnp.asarray(_mask(bins, n_levels, t.tcrit), jnp.float32)
            target = jnp.asarray(self.targets_stats[(scale.name, t.name)], jnp.float32)
            present = jnp.asarray(target.sum(axis=1) > 0, jnp.float32)[:, None] * mask  # levels seen in the data
            dev = []
            for lo, hi in ((0, half), (half, nw)):  # two independent halves of the windows
                sl = slice(ti * nw + lo, ti * nw + hi)
                Ct = C[sl] * mask[None, :, :, None]
                w = weight[sl]
                F = jnp.sum(Ct, axis=-1)  # (n, L, nb)
                # d E_p[F] = E_q[w (C(t) - beta(t)) score(t)]: each period weighted by the score of the path up
                # to the point where it is complete; beta = leave-one-out weighted mean (a baseline: E_q[w score] = 0)
                G = w[:, None, None, None] * Ct
                beta = (jnp.sum(G, axis=0, keepdims=True) - G) / jnp.maximum(jnp.sum(w) - w, 1e-12)[:, None, None, None]
                S = jnp.sum(w[:, None, None] * F, axis=0) + jnp.einsum("wlbt,wt->lb", w[:, None, None, None] * (Ct - beta), score[sl])
                shat = S / jnp.maximum(jnp.sum(S, axis=1, keepdims=True), 1e-12)
                dev.append(shat - target)
            # (s1 - d)(s2 - d) from independent halves: unbiased for the squared error of E[s] (no bias from
            # the Monte Carlo variance, which a squared error of one batch would add and reward lowering)
            scale_b = 1.0 / (target + 1.0 / bins.size)
            terms[t.name] = jnp.sum(present * scale_b * dev[0] * dev[1])
        terms["_exhausted"] = jnp.mean(tr.exhausted.astype(jnp.float32))
        return terms

    def __call__(self, rates, key):
        total = 0.0
        for i, sc in enumerate(self.scales):
            terms = self._scale_terms(rates, jax.random.fold_in(key, i), sc)
            total = total + sc.weight * sum(v for k, v in terms.items() if not k.startswith("_"))
        return total


def optimise(loss, initial: Mapping[str, float], *, key, steps: int, learning_rate: float = 0.05,
             final_learning_rate: float = 0.005, clip: float = 2.0, average_last: int = 0,
             bounds=(-4.0, 4.0), callback=None, every: int = 10):
    """Adam on log rate constants (one compiled step), through the exact simulator.

    Like :func:`diffssa.fitting.fit` (log space, a fresh key per step), plus: cosine decay of the
    learning rate from ``learning_rate`` to ``final_learning_rate``, gradient clipping, a step with a
    non-finite loss or gradient is skipped, log rates kept within ``bounds`` (natural-log units)
    around the initial values, and the average of the last ``average_last`` iterates (in log space)
    returned. ``callback(step, params, loss)`` every ``every`` steps. Returns
    ``(params, losses, history)``.
    """
    import optax

    names = list(initial)
    u = {k: jnp.asarray(np.log(float(initial[k])), jnp.float32) for k in names}
    lo = {k: v + bounds[0] for k, v in u.items()}
    hi = {k: v + bounds[1] for k, v in u.items()}
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=final_learning_rate / learning_rate)
    opt = optax.chain(optax.clip_by_global_norm(clip), optax.adam(schedule))
    state = opt.init(u)

    @jax.jit
    def step(u, state, key):
        value, grads = jax.value_and_grad(lambda v: loss({k: jnp.exp(x) for k, x in v.items()}, key))(u)
        finite = jnp.isfinite(value) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in grads.values()]))
        grads = jax.tree_util.tree_map(lambda g: jnp.where(finite, g, 0.0), grads)
        updates, new_state = opt.update(grads, state, u)
        new_u = optax.apply_updates(u, updates)
        new_u = {k: jnp.clip(jnp.where(finite, new_u[k], u[k]), lo[k], hi[k]) for k in u}
        return new_u, new_state, value, finite

    key = as_key(key)
    losses, history, skipped = [], [], 0
    for i in range(steps):
        u, state, value, finite = step(u, state, jax.random.fold_in(key, i))
        losses.append(float(value))
        skipped += int(not bool(finite))
        history.append({k: float(v) for k, v in u.items()})
        if callback is not None and ((i + 1) % every == 0 or i == steps - 1):
            callback(i + 1, {k: float(np.exp(v)) for k, v in u.items()}, float(np.mean(losses[-every:])))
    if average_last:
        tail = history[-average_last:]
        final = {k: float(np.exp(np.mean([h[k] for h in tail]))) for k in names}
    else:
        final = {k: float(np.exp(v)) for k, v in u.items()}
    return final, np.array(losses), {"log_rates": history, "skipped": skipped}


# ------------------------------------------------------------------ long simulated records (forward)
def simulate_dwells(scheme: GatingScheme, concentration: float, tres: float, *, duration: float,
                    chains: int = 32, h: float | None = None, window: float = 500.0, seed: int = 0,
                    rates=None, channels: int = 1, max_steps: int | None = None):
    """Long simulated records (forward, exact) with ``tres`` imposed: ``(DwellSet, occupancy)``.

    ``chains`` independent records of ``channels`` unit channels (copies of the scheme), ``duration / chains`` ms each, simulated
    window by window (``window`` ms on a grid of spacing ``h``, default ``tres / 7.5``; each window
    starts from the last state of the previous one), sampled on the grid, concatenated and resolved
    like the data (a run of ``m`` points is resolved, ``(m - 1/2) h = tres``; dwell lengths, whole
    numbers of ``h``, are spread over +-h/2). ``occupancy``: fraction of time at each level.
    """
    from ...simulation.api import simulate

    scheme = scheme.with_rates(rates) if rates else scheme
    h = h or tres / 7.5  # the resolution ramp (see below) is then centred on tres
    copies = scheme.copies(channels)
    net = scheme.network(copies, concentration)
    rng = np.random.default_rng(seed)
    p = np.clip(pinf(scheme.q_matrix(concentration)), 0, None)
    p = p / p.sum()
    x = np.zeros((chains, len(scheme.states)), np.float32)
    for _ in range(copies):
        x[np.arange(chains), rng.choice(len(p), size=chains, p=p)] += 1
    samples = int(round(window / h))
    times = h * np.arange(1, samples + 1)
    n_windows = max(1, int(math.ceil(duration / chains / window)))
    opens = scheme.state_levels.astype(np.float32)
    rate = float(np.max(-np.diag(scheme.q_matrix(concentration))))
    budget = max_steps or int(window * rate * copies * 1.2) + 500
    current = [[] for _ in range(chains)]
    key = as_key(seed)
    for w in range(n_windows):
        tr = simulate(net, times, key=jax.random.fold_in(key, w), runs=chains, initial=x, max_steps=budget,
                      on_exhausted="raise")
        states = np.asarray(tr.states)
        levels = np.rint(states @ opens).astype(np.int8)
        x = states[:, -1, :].copy()
        for c in range(chains):
            current[c].append(levels[c])
    segments = [np.concatenate(parts) for parts in current]
    rec = record_from_segments(segments, h, source=f"simulated {scheme.name} at {concentration} uM")
    # on the grid a run of m points is resolved; a dwell of true length d covers m points with
    # probability clip(d / h - m + 1, 0, 1), a ramp centred on (m - 1/2) h: choose m so that it is tres
    m = max(1, int(np.floor(tres / h + 0.5 + 1e-9)))
    res = impose_resolution(rec, (m - 0.25) * h, binary=channels == 1)
    occupancy = np.array([res.durations[res.levels == k].sum() for k in range(channels + 1)]) / res.durations.sum()
    dwells = dwell_times(res)
    # whole numbers of grid steps -> spread over +-h/2 (fixed seed) so that they can be log-binned
    dwells = DwellSet({k: _dequantise(v, h, seed=seed + k) for k, v in dwells.by_level.items()}, tres, rec.source)
    return dwells, occupancy


def simulated_r2(data: "ReferenceData", simulated: DwellSet) -> dict:
    """R^2 of simulated against observed log-binned dwell-time densities (the observed bins), per level."""
    out = {}
    for lev, (edges, obs) in data.bins.items():
        y = simulated.by_level.get(lev, np.zeros(0))  # simulate_dwells spreads grid lengths over +-h/2
        pred = log_binned_density(y[(y >= edges[0]) & (y < edges[-1])], edges)
        out[lev] = r_squared(obs, pred)
    return out


# --------------------------------------------------------------------- Q-matrix reference fit
def multichannel_q(Q1: np.ndarray, state_levels: np.ndarray, channels: int):
    """Generator of ``channels`` independent identical copies of a scheme on count states (how many copies
    are in each state; the chain the network simulates), and the number of open unit channels in each
    count state (``state_levels``: per scheme state, e.g. :attr:`GatingScheme.state_levels`; a boolean
    open mask counts 1 per open copy)."""
    from itertools import combinations_with_replacement

    Q1 = np.asarray(Q1, dtype=np.float64)
    k = Q1.shape[0]
    states = []
    for combo in combinations_with_replacement(range(k), channels):
        x = np.zeros(k, np.int64)
        for i in combo:
            x[i] += 1
        states.append(x)
    index = {tuple(x): n for n, x in enumerate(states)}
    Q = np.zeros((len(states), len(states)))
    for n, x in enumerate(states):
        for i in np.flatnonzero(x):
            for j in range(k):
                if j != i and Q1[i, j] > 0:
                    y = x.copy()
                    y[i] -= 1
                    y[j] += 1
                    Q[n, index[tuple(y)]] += x[i] * Q1[i, j]
    np.fill_diagonal(Q, -Q.sum(axis=1))
    weight = np.asarray(state_levels, np.int64)
    level = np.array([int(np.sum(x * weight)) for x in states])
    return Q, level


@dataclass
class ReferenceData:
    """Observed log-binned densities of one record for the Q-matrix reference fit (per level)."""

    concentration: float
    tres: float
    channels: int
    bins: dict  # level -> (edges, observed density)
    quantum: float | None = None
    occupancy: np.ndarray | None = None  # observed fraction of time at each level (fitted when given)
    counts: dict = field(default_factory=dict)  # level -> number of dwells in the binned range


def _dequantise(x, quantum, seed=0):
    """Durations measured in whole samples (k dt) spread uniformly over (k - 1/2, k + 1/2) dt."""
    return x + (np.random.default_rng(seed).random(x.shape) - 0.5) * quantum


def reference_data(record: Record, concentration: float, tres: float, *, channels: int = 1,
                   tcrit: float | None = None, per_decade: int = 10, levels=None,
                   quantum: float | None = None, occupancy: bool = False) -> ReferenceData:
    """Observed densities of resolved dwells at each level (shut times below ``tcrit`` if given).

    ``quantum``: for a record idealised from sampled data, the sampling interval: durations are whole
    numbers of samples, so they are spread over +-1/2 sample (fixed seed) and the resolution of the
    comparison is ``tres - quantum / 2`` (a run of ``tres / quantum`` samples covers true durations
    from about ``tres - quantum`` to ``tres``).
    """
    binary = channels == 1
    resolved = impose_resolution(record, tres, binary=binary)
    ds = dwell_times(resolved)
    occ = None
    if occupancy:
        occ = np.array([resolved.durations[resolved.levels == k].sum() for k in range(channels + 1)])
        occ = occ / occ.sum()
    if quantum:
        tres = tres - quantum / 2
    out, counts = {}, {}
    for lev in (levels if levels is not None else range(channels + 1)):
        x = ds.by_level.get(lev, np.zeros(0))
        if quantum:
            x = _dequantise(x, quantum, seed=lev)
        top = tcrit if (lev == 0 and tcrit is not None) else None
        if top is not None:
            x = x[x < top]
        if x.size < 2:
            continue
        out[lev] = observed_densities(x, tres, tmax=top, per_decade=per_decade)
        counts[lev] = int(np.sum((x >= tres) & (x < out[lev][0][-1])))
    return ReferenceData(concentration, tres, channels, out, quantum, occ, counts)


def predicted_level_density(scheme: GatingScheme, concentration: float, tres: float, channels: int, level: int,
                            edges, rates=None) -> np.ndarray:
    """HJC log-binned density of apparent dwells at one current level (a patch of ``channels`` unit
    channels: independent copies of the scheme)."""
    Q1 = scheme.q_matrix(concentration, rates)
    Q, lev = multichannel_q(Q1, scheme.state_levels, scheme.copies(channels))
    dens = MissedEventDensity(Q, lev == level, tres)
    probs = np.maximum(bin_probabilities(dens.pdf, edges, (2 * tres, 3 * tres)), 0.0)
    return probs / probs.sum() / np.diff(np.log10(edges))


def predicted_occupancy(scheme: GatingScheme, concentration: float, channels: int, rates=None) -> np.ndarray:
    """Equilibrium fraction of time with 0..channels channels open."""
    Q, lev = multichannel_q(scheme.q_matrix(concentration, rates), scheme.state_levels, scheme.copies(channels))
    p = np.clip(pinf(Q), 0, None)
    return np.array([p[lev == k].sum() for k in range(channels + 1)]) / p.sum()


def reference_r2(scheme: GatingScheme, data: Sequence[ReferenceData], rates=None) -> dict:
    """R^2 of exact HJC densities against each record's observed densities, per level."""
    out = {}
    for d in data:
        for lev, (edges, obs) in d.bins.items():
            pred = predicted_level_density(scheme, d.concentration, d.tres, d.channels, lev, edges, rates)
            out[(d.concentration, lev)] = r_squared(obs, pred)
    return out


def exact_scheme_r2(scheme: GatingScheme, data: Sequence[ReferenceData], rates=None, *, draws: int = 2000,
                    seed: int = 0) -> dict:
    """The R^2 a record would reach if the scheme were exactly right: its counting-noise distribution.

    For each record and level, ``draws`` synthetic records of the same number of dwells (``counts``)
    are drawn from the scheme's own binned HJC density (multinomial over the bins, fixed ``seed``) and
    scored against that density like the data. With a few thousand dwells at 10 bins per decade R^2
    stays visibly below 1 from counting noise alone; an observed R^2 far in the lower tail of this
    distribution says the scheme (or its rates) misfits. Returns (concentration, level) -> (draws,) R^2.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for d in data:
        for lev, (edges, _) in d.bins.items():
            if lev not in d.counts:
                raise ValueError(f"record at {d.concentration:g} uM, level {lev}: no dwell count (use reference_data)")
            width = np.diff(np.log10(edges))
            pred = predicted_level_density(scheme, d.concentration, d.tres, d.channels, lev, edges, rates)
            p = pred * width
            sim = rng.multinomial(d.counts[lev], p / p.sum(), size=draws) / d.counts[lev] / width
            out[(d.concentration, lev)] = np.array([r_squared(s, pred) for s in sim])
    return out


def reference_fit(scheme: GatingScheme, data: Sequence[ReferenceData], *, start=None, max_nfev: int = 200,
                  fixed: Sequence[str] = ()) -> tuple[dict, dict]:
    """Q-matrix reference fit: least squares between observed and exact HJC log-binned densities.

    Residuals are ``(observed - predicted) / sqrt(SS_tot)`` for every bin of every record and level (and
    for the level occupancies where the data carry them), so the cost is half the sum of ``1 - R^2``. Log rate constants, trust-region reflective steps with
    finite-difference Jacobians (scipy). Not the simulation-based fit: a reference computed beside it.
    Returns ``(rates, R^2 per (concentration, level))``.
    """
    from scipy.optimize import least_squares

    start = dict(start or scheme.rates)
    names = [k for k in scheme.rates if k not in fixed]
    scale = {(d.concentration, lev): np.sqrt(np.sum((obs - obs.mean()) ** 2)) for d in data for lev, (e, obs) in d.bins.items()}
    n_res = sum(len(obs) for d in data for e, obs in d.bins.values()) + sum(
        d.channels + 1 for d in data if d.occupancy is not None)

    def rates_of(x):
        return {**start, **dict(zip(names, np.exp(x)))}

    def residuals(x):
        r = rates_of(x)
        try:
            parts = []
            for d in data:
                for lev, (edges, obs) in d.bins.items():
                    pred = predicted_level_density(scheme, d.concentration, d.tres, d.channels, lev, edges, r)
                    parts.append((obs - pred) / scale[(d.concentration, lev)])
                if d.occupancy is not None:
                    occ = predicted_occupancy(scheme, d.concentration, d.channels, r)
                    parts.append((d.occupancy - occ) / np.sqrt(np.sum((d.occupancy - d.occupancy.mean()) ** 2)))
            res = np.concatenate(parts)
            return res if np.all(np.isfinite(res)) else np.full(n_res, 10.0)
        except (ValueError, np.linalg.LinAlgError):
            return np.full(n_res, 10.0)

    x0 = np.log([start[k] for k in names])
    # rates stay within a factor 1000 of the starting guess (keeps the search away from degenerate
    # corners such as an unflipping rate of 1e8 / s)
    fit = least_squares(residuals, x0, diff_step=1e-3, max_nfev=max_nfev, xtol=1e-10, ftol=1e-10, gtol=1e-10,
                        bounds=(x0 - np.log(1000.0), x0 + np.log(1000.0)))
    rates = rates_of(fit.x)
    return rates, reference_r2(scheme, data, rates)
