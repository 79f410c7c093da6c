"""Exact dwell-time densities of a gating scheme from its Q-matrix (Colquhoun & Hawkes; HJC).

Units: the Q-matrix is in events per **millisecond** and times in milliseconds (those of ``.scn``
records). States are split into a class ``A`` (the dwell of interest: open, or one current level) and
the rest ``F``.

* **Ideal** densities (no missed events, Colquhoun & Hawkes 1982): ``f(t) = phi_A exp(Q_AA t) (-Q_AA) u``
  with ``phi_A`` the equilibrium entry vector; a sum of ``k_A`` exponentials.
* **Missed events** (Hawkes, Jalali & Colquhoun 1990, 1992): the density of *apparent* (resolved) dwell
  times when every interval shorter than ``tres`` is unresolved, the convention imposed on records by
  :func:`diffssa.applications.ionchannel.records.impose_resolution`. Exact for ``tres <= t < 3 tres`` (the
  piecewise exponential-polynomial expansion of HJC 1990, eqs 3.16-3.22) and the asymptotic form
  beyond (HJC 1992: ``k_A`` exponentials whose rates are the roots of ``det W(s) = 0``, located by
  Frank Ball's eigenvalue-counting bisection), with the equilibrium HJC initial vector.

Q-matrices of networks are built from the network's own compiled propensities (:func:`q_from_network`),
so the densities are those of exactly the scheme that is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm
from scipy.optimize import brentq

__all__ = [
    "pinf",
    "q_from_network",
    "ideal_density",
    "MissedEventDensity",
    "dwell_density",
    "bin_probabilities",
]


def pinf(Q) -> np.ndarray:
    """Equilibrium occupancies of the generator ``Q`` (rows sum to zero)."""
    Q = np.asarray(Q, dtype=np.float64)
    k = Q.shape[0]
    S = np.concatenate([Q, np.ones((k, 1))], axis=1)
    p = np.linalg.solve(S @ S.T, np.ones(k))
    return p


def q_from_network(network, params=None, *, initial=None):
    """Generator of the network's Markov chain over its reachable count states (events per unit time).

    Enumerates the states reachable from the initial counts (``initial`` or the network's) with the
    network's compiled propensities at ``params`` (name -> value; the network's own by default).
    Returns ``(Q (n, n) float64, states (n, S) int)``. For a one-channel network the states are the
    unit vectors, one per channel state, in the order found (the initial state first).
    """
    import jax.numpy as jnp

    compiled = network.compile()
    theta = jnp.asarray([float(v) for v in network.parameter_values(params).values()], dtype=jnp.float32)
    nu = np.asarray(compiled.stoichiometry, dtype=np.int64)
    x0 = network.initial_state(initial) if (initial is None or isinstance(initial, dict)) else np.asarray(initial)
    x0 = tuple(int(v) for v in np.asarray(x0))
    index = {x0: 0}
    order = [x0]
    rates = []
    i = 0
    while i < len(order):
        x = order[i]
        a = np.asarray(compiled.propensities(jnp.asarray(x, jnp.float32), theta), dtype=np.float64)
        for j in np.flatnonzero(a > 0):
            y = tuple(int(v) for v in np.asarray(x) + nu[j])
            if min(y) < 0:
                continue
            if y not in index:
                index[y] = len(order)
                order.append(y)
            rates.append((i, index[y], a[j]))
        i += 1
        if len(order) > 5000:
            raise ValueError("more than 5000 reachable states: not a small gating scheme")
    n = len(order)
    Q = np.zeros((n, n))
    for a_, b_, r in rates:
        if a_ != b_:
            Q[a_, b_] += r
    np.fill_diagonal(Q, -Q.sum(axis=1))
    return Q, np.array(order, dtype=np.int64)


def _expm(M, t):
    """exp(M t) by eigen-decomposition (gating generators are diagonalisable); scipy's expm as fallback."""
    lam, V = np.linalg.eig(M)
    try:
        out = np.real((V * np.exp(lam * t)) @ np.linalg.inv(V))
    except np.linalg.LinAlgError:
        return expm(M * t)
    if not np.all(np.isfinite(out)) or np.linalg.cond(V) > 1e10:
        return expm(M * t)
    return out


def _split(Q, in_a):
    in_a = np.asarray(in_a, bool)
    a, f = np.flatnonzero(in_a), np.flatnonzero(~in_a)
    if a.size == 0 or f.size == 0:
        raise ValueError("both classes of states must be non-empty")
    return a, f


def ideal_density(Q, in_a):
    """Ideal dwell-time density in class ``A`` as ``(rates, areas)``: ``f(t) = sum areas_i rates_i exp(-rates_i t)``."""
    Q = np.asarray(Q, dtype=np.float64)
    a, f = _split(Q, in_a)
    p = pinf(Q)
    QAA, QFA = Q[np.ix_(a, a)], Q[np.ix_(f, a)]
    phi = p[f] @ QFA
    phi = phi / phi.sum()
    lam, V = np.linalg.eig(-QAA)
    W = np.linalg.inv(V)
    u = np.ones(a.size)
    areas = np.array([(phi @ np.outer(V[:, i], W[i]) @ u) for i in range(a.size)])
    return np.real(lam), np.real(areas)


def _phi_stationary(M):
    """Left vector ``phi`` with ``phi M = phi``, ``sum phi = 1`` (M a stochastic matrix)."""
    k = M.shape[0]
    if k == 1:
        return np.ones(1)
    S = np.concatenate([np.eye(k) - M, np.ones((k, 1))], axis=1)
    return np.linalg.solve(S @ S.T, np.ones(k))


@dataclass
class MissedEventDensity:
    """HJC density of apparent dwell times in class ``A`` at resolution ``tres`` (ms).

    ``pdf(t)`` is the exact density for ``tres <= t < 3 tres`` and the asymptotic one beyond; it is zero
    below ``tres``. Attributes: ``roots`` (asymptotic rates are ``-roots``), ``asymptotic_areas``.
    """

    Q: np.ndarray
    in_a: np.ndarray
    tres: float

    def __post_init__(self):
        Q = np.asarray(self.Q, dtype=np.float64)
        tau = float(self.tres)
        if not tau > 0:
            raise ValueError("tres must be positive for the missed-event density (use ideal_density for tres = 0)")
        a, f = _split(Q, self.in_a)
        perm = np.concatenate([a, f])
        Q = Q[np.ix_(perm, perm)]
        kA, kF = a.size, f.size
        self.kA, self.kF = kA, kF
        QAA, QAF, QFA, QFF = Q[:kA, :kA], Q[:kA, kA:], Q[kA:, :kA], Q[kA:, kA:]
        self._blocks = (QAA, QAF, QFA, QFF)
        expQFF, expQAA = _expm(QFF, tau), _expm(QAA, tau)
        GAF = np.linalg.solve(-QAA, QAF)
        GFA = np.linalg.solve(-QFF, QFA)
        eGAF = np.linalg.solve(np.eye(kA) - GAF @ (np.eye(kF) - expQFF) @ GFA, GAF @ expQFF)
        eGFA = np.linalg.solve(np.eye(kF) - GFA @ (np.eye(kA) - expQAA) @ GAF, GFA @ expQAA)
        self.phi = _phi_stationary(eGAF @ eGFA)
        self._expQFF = expQFF
        M = QAF @ expQFF  # (kA, kF)
        uF = np.ones(kF)
        # --- exact part (HJC 1990): spectral expansion of the full -Q
        lam, V = np.linalg.eig(-Q)
        Vinv = np.linalg.inv(V)
        k = Q.shape[0]
        A = np.einsum("ai,ib->iab", V, Vinv)  # spectral matrices: exp(Q t) = sum_i A_i exp(-lam_i t)
        C00 = A[:, :kA, :kA]
        A1 = A[:, :kA, kA:]
        D = np.einsum("iab,bc,cd->iad", A1, expQFF, QFA)
        C11 = np.einsum("iab,ibc->iac", D, C00)
        C10 = np.zeros_like(C00)
        scale = max(np.max(np.abs(lam)), 1e-300)
        for i in range(k):
            for j in range(k):
                if j == i:
                    continue
                gap = lam[j] - lam[i]
                if abs(gap) < 1e-10 * scale:
                    raise ValueError("degenerate eigenvalues of Q: the exact missed-event expansion is undefined")
                C10[i] += (D[i] @ C00[j] + D[j] @ C00[i]) / gap
        phi = self.phi
        self.eigen = lam
        self.g00 = np.einsum("a,iab,bc,c->i", phi, C00, M, uF)
        self.g10 = np.einsum("a,iab,bc,c->i", phi, C10, M, uF)
        self.g11 = np.einsum("a,iab,bc,c->i", phi, C11, M, uF)
        # --- asymptotic part (HJC 1992)
        self.roots = self._find_roots()
        areas = []
        for s in self.roots:
            Wm = self._W(s)
            U, S, Vh = np.linalg.svd(Wm)
            col, row = Vh[-1].conj(), U[:, -1].conj()  # W col = 0, row W = 0
            R = np.outer(col, row) / (row @ self._dW(s) @ col)
            areas.append(float(np.real(phi @ R @ M @ uF)))
        self.coefficients = np.array(areas)  # pdf(t) = sum c_i exp(s_i (t - tres)) for t >= 3 tres
        self.asymptotic_areas = -self.coefficients / self.roots

    # H(s) = QAA + QAF (sI - QFF)^-1 (I - exp(-(sI - QFF) tau)) QFA, via the eigen-expansion of QFF
    def _ff_kernel(self, s):
        QAA, QAF, QFA, QFF = self._blocks
        if getattr(self, "_qff_eig", None) is None:
            mu, V = np.linalg.eig(QFF)
            self._qff_eig = (mu, V, np.linalg.inv(V))
        mu, V, Vinv = self._qff_eig
        x = (s - mu) * self.tres
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(np.abs(x) < 1e-8, self.tres * (1 - x / 2), -np.expm1(-x) / (s - mu))
        return np.real((V * g) @ Vinv)

    def _H(self, s):
        QAA, QAF, QFA, QFF = self._blocks
        return QAA + QAF @ self._ff_kernel(s) @ QFA

    def _W(self, s):
        return s * np.eye(self.kA) - self._H(s)

    def _dW(self, s):
        QAA, QAF, QFA, QFF = self._blocks
        IF = np.eye(self.kF)
        X = s * IF - QFF
        Xinv = np.linalg.inv(X)
        SFF = IF - np.exp(-s * self.tres) * self._expQFF  # exp(-(sI - QFF) tau) = exp(-s tau) exp(QFF tau)
        eGFAs = Xinv @ QFA
        return np.eye(self.kA) + QAF @ (SFF @ Xinv - self.tres * (IF - SFF)) @ eGFAs

    def _count(self, s):
        with np.errstate(over="ignore", invalid="ignore"):
            H = self._H(s)
        if not np.all(np.isfinite(H)):  # exp(-s tau) overflowed: s is far below every root
            return 0
        ev = np.linalg.eigvals(H)
        return int(np.sum(np.real(ev) <= s))

    def _find_roots(self):
        kA = self.kA
        QAA, QAF, QFA, QFF = self._blocks
        self._qff_eig = None
        # Roots below -600 / tres are not searched: their terms exp(s (t - tres)) vanish (< e^-1200) for
        # t >= 3 tres, where the asymptotic form is used, and exp(-s tres) would overflow there.
        floor = -600.0 / self.tres
        sa = max(-4.0 * max(np.max(np.abs(np.diag(QAA))), np.max(np.abs(np.diag(QFF))), 1.0) - 10.0 / self.tres, floor)
        sb = -1e-12
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(20):
                if self._count(sa) == 0 or sa == floor:
                    break
                sa = max(sa * 4, floor)
        nb = self._count(sb)
        if nb < kA:
            sb = -1e-16
            nb = self._count(sb)
        todo = [(sa, sb, self._count(sa), nb)]
        brackets = []
        guard = 0
        while todo and guard < 10000:
            guard += 1
            lo, hi, nlo, nhi = todo.pop()
            if nhi - nlo <= 0:
                continue
            if nhi - nlo == 1:
                brackets.append((lo, hi))
                continue
            mid = 0.5 * (lo + hi)
            if hi - lo < 1e-14 * max(abs(lo), 1.0):
                brackets.extend([(lo, hi)] * (nhi - nlo))
                continue
            nm = self._count(mid)
            todo.append((lo, mid, nlo, nm))
            todo.append((mid, hi, nm, nhi))
        det = lambda s: np.linalg.det(self._W(s))
        with np.errstate(over="ignore", invalid="ignore"):
            roots = self._refine(brackets, det)
        if len(roots) == kA:
            return np.sort(np.array(roots))
        # Ball's eigenvalue count is reliable only where H(s) is well scaled; a scan of det W for sign
        # changes covers the rest. Both sets are merged; a spurious zero (numerical noise of det W at
        # very negative s) can only add roots below the true ones, so the kA largest are kept.
        grid = -np.logspace(np.log10(-sa), np.log10(-sb), 3000)
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.array([det(g) for g in grid])
        ok = np.isfinite(values)
        change = np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(values[:-1]) != np.sign(values[1:])))
        with np.errstate(over="ignore", invalid="ignore"):
            roots = self._refine(brackets + [(grid[i], grid[i + 1]) for i in change], det)
        roots = sorted(roots)[-kA:]
        if not roots:
            raise ValueError(f"no asymptotic HJC root found above {floor:g} per ms")
        return np.sort(np.array(roots))

    @staticmethod
    def _refine(brackets, det):
        roots = []
        for lo, hi in brackets:
            if lo == hi:
                roots.append(lo)
                continue
            flo, fhi = det(lo), det(hi)
            if flo == 0:
                roots.append(lo)
            elif fhi == 0:
                roots.append(hi)
            elif np.sign(flo) != np.sign(fhi):
                roots.append(brentq(det, lo, hi, xtol=1e-14 * max(abs(lo), 1e-12), rtol=1e-13, maxiter=500))
        unique = []
        for r in sorted(roots):
            if not unique or abs(r - unique[-1]) > 1e-7 * max(abs(r), 1e-12):
                unique.append(r)
        return unique

    def pdf(self, t):
        """Density (per ms) of apparent dwell times ``t`` (ms)."""
        t = np.asarray(t, dtype=np.float64)
        tau = self.tres
        out = np.zeros_like(t)
        u = t - tau
        lam = self.eigen
        m1 = (t >= tau) & (t < 3 * tau)
        if np.any(m1):
            uu = u[m1]
            f0 = np.real(np.exp(-np.outer(uu, lam)) @ self.g00)
            v = np.maximum(uu - tau, 0.0)
            f1 = np.real(np.exp(-np.outer(v, lam)) @ self.g10 + (np.exp(-np.outer(v, lam)) * v[:, None]) @ self.g11)
            out[m1] = f0 - np.where(uu >= tau, f1, 0.0)
        m2 = t >= 3 * tau
        if np.any(m2):
            out[m2] = np.exp(np.outer(u[m2], self.roots)) @ self.coefficients
        return out

    def asymptotic_pdf(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.where(t >= self.tres, np.exp(np.outer(t - self.tres, self.roots)) @ self.coefficients, 0.0)

    def mean(self):
        """Mean apparent dwell time (ms), by quadrature of the density."""
        t, w = _quadrature_nodes(np.array([self.tres, 3 * self.tres]))
        exact = np.sum(w * t * self.pdf(t))
        tail = np.sum(self.coefficients * np.exp(self.roots * 2 * self.tres) * (3 * self.tres / -self.roots + 1 / self.roots**2))
        return float(exact + tail)


def _quadrature_nodes(edges, n=24):
    """Gauss-Legendre nodes and weights in log t over consecutive pieces ``edges`` (ms)."""
    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = np.log(edges[:-1]), np.log(edges[1:])
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    logt = mid[:, None] + half[:, None] * x[None, :]
    t = np.exp(logt)
    weights = half[:, None] * w[None, :] * t  # dt = t dlog t
    return t.ravel(), weights.ravel()


def bin_probabilities(pdf, edges, breaks=()):
    """Probability of each bin ``[edges[i], edges[i+1])`` under ``pdf`` by Gauss-Legendre quadrature in log t.

    ``breaks``: points where the density has a kink or a jump (bins are split there).
    """
    edges = np.asarray(edges, dtype=np.float64)
    cuts = np.unique(np.concatenate([edges, [b for b in breaks if edges[0] < b < edges[-1]]]))
    x, w = np.polynomial.legendre.leggauss(24)
    la, lb = np.log(cuts[:-1]), np.log(cuts[1:])
    t = np.exp(0.5 * (la + lb)[:, None] + 0.5 * (lb - la)[:, None] * x[None, :])
    piece = 0.5 * (lb - la) * np.sum(w[None, :] * t * pdf(t.ravel()).reshape(t.shape), axis=1)
    owner = np.searchsorted(edges, cuts[:-1], side="right") - 1
    return np.bincount(owner, weights=piece, minlength=edges.size - 1)[: edges.size - 1]


def dwell_density(Q, in_a, tres: float, edges, *, tmax: float | None = None) -> np.ndarray:
    """Predicted log-binned density (fraction per log10 unit) of apparent dwells in class ``A``.

    The probabilities of the bins ``edges`` are normalised over the binned range (as
    :func:`diffssa.applications.ionchannel.records.log_binned_density` normalises the observed counts). ``tres = 0``
    gives the ideal density.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if tres > 0:
        dens = MissedEventDensity(np.asarray(Q), np.asarray(in_a), tres)
        probs = bin_probabilities(dens.pdf, edges, breaks=(2 * tres, 3 * tres))
    else:
        rates, areas = ideal_density(Q, in_a)
        cdf = lambda t: np.sum(areas * (1 - np.exp(-np.outer(t, rates))), axis=1)
        probs = np.diff(cdf(edges))
    probs = np.maximum(probs, 0.0)
    total = probs.sum()
    return probs / total / np.diff(np.log10(edges)) if total > 0 else probs
