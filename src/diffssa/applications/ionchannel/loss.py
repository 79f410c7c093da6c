"""The loss of the simulation-based fit: windowed dwell-time histograms through the exact simulator.

Statistic: for every record (agonist concentration) and every *scale* (:class:`.targets.Scale`: grid
spacing ``h``, window length, resolution, range of dwell times), the soft log-binned histogram of the
complete resolved open and shut periods in windows (:mod:`.gridstats`). The data are cut into windows
of the same length and sampled on the same grid, so both sides go through the same function. Loss: for
every record, scale and level, ``sum_b (s1_b - d_b)(s2_b - d_b) / (d_b + 1/n_bins)`` with ``s1``, ``s2``
the normalised simulated histograms of two independent halves of the windows and ``d`` the data's:
unbiased for the squared error of the expected histogram (one batch's squared error would add, and
reward lowering, the Monte Carlo variance). All records are fitted with one scheme and one set of rate
constants; only ``conc`` differs.

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
surrogate, see docs/ionchannel.md); the score function agreed within its standard error. The
optimiser: :func:`.optimise.optimise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ...kinetics import MassAction
from ...model import ReactionNetwork
from ...reactions import Reaction
from ...simulation.api import simulate
from .gridstats import sample_record, soft_histogram_np
from .models import GatingScheme
from .targets import Scale, Target, tcrit_mask

__all__ = ["SimulationLoss"]

INIT = "INIT"
INIT_RATE = 1e7  # per ms: the INIT state is left within ~1e-7 ms
T0 = 1e-5  # ms: first grid time (after the jump out of INIT)


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
    """Equilibrium occupancies (k,) of a (k, k) generator, in JAX (differentiable; :func:`.qmatrix.pinf`)."""
    k = Q.shape[0]
    S = jnp.concatenate([Q, jnp.ones((k, 1), Q.dtype)], axis=1)
    return jnp.linalg.solve(S @ S.T, jnp.ones(k, Q.dtype))


@dataclass
class SimulationLoss:
    """``loss(rates, key) -> scalar``: the multi-scale windowed histogram loss of the module docstring.

    ``rates``: name -> rate constant of ``scheme`` (1/s, binding 1/(uM s); JAX scalars, differentiated
    with the score-function estimator); ``key``: a PRNG key (scale ``i`` simulates with ``fold_in(key, i)``).
    ``targets``: the records to fit; ``channels``: unit channels in the patch (levels 0..channels), made
    of independent copies of ``scheme`` (:meth:`GatingScheme.copies`); ``max_data_windows``: at most
    this many data windows per target and scale. Targets that share a scale are simulated in one call
    (their windows side by side, ``conc`` per window).
    """

    scheme: GatingScheme
    targets: Sequence[Target]
    channels: int = 1
    mix: float = 0.05  # share of the uniform distribution in the window start distribution q
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
        for t in self.targets:
            for sc in t.scales:
                win = sample_record(t.record, sc.h, sc.samples, offset=T0, max_windows=self.max_data_windows)
                F = soft_histogram_np(win, sc.h, sc.tres, sc.bins, self.n_levels).sum(axis=0)
                F = F * tcrit_mask(sc.bins, self.n_levels, t.tcrit)
                self.targets_stats[(sc.name, t.name)] = F / np.maximum(F.sum(axis=1, keepdims=True), 1e-300)

    def _scale_terms(self, rates, key, scale: Scale) -> dict:
        """Target name -> this scale's loss term (a scalar) for every target looked at on ``scale``."""
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
        # One device: the histograms below are a host callback, and trajectories split over two CPU
        # devices that reach a callback inside jit abort the process (XLA's collectives time out after
        # 40 s; JAX 0.10.2, from about 1,000 runs of 200 times). Replicating simulate's outputs does not
        # help (sharding propagation splits them again); a constraint just before the callback does.
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
            mask = jnp.asarray(tcrit_mask(bins, n_levels, t.tcrit), jnp.float32)
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
        return terms

    def __call__(self, rates, key):
        total = 0.0
        for i, sc in enumerate(self.scales):
            terms = self._scale_terms(rates, jax.random.fold_in(key, i), sc)
            total = total + sc.weight * sum(terms.values())
        return total
