"""The Q-matrix reference fit: least squares between observed and exact HJC log-binned densities.

Not the simulation-based fit (:mod:`.loss`, :mod:`.optimise`): a reference computed beside it, and its
starting point in the reproduction. Needs scipy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

from .models import GatingScheme
from .reports import (
    ReferenceData,
    predicted_level_density,
    predicted_occupancy,
    reference_r2,
)

__all__ = ["reference_fit"]


def reference_fit(scheme: GatingScheme, data: Sequence[ReferenceData], *, start=None, max_nfev: int = 200,
                  fixed: Sequence[str] = ()) -> tuple[dict, dict]:
    """Q-matrix reference fit: least squares between observed and exact HJC log-binned densities.

    Residuals are ``(observed - predicted) / sqrt(SS_tot)`` for every bin of every record and level (and
    for the level occupancies where the data carry them), so the cost is half the sum of ``1 - R^2``. Log rate constants, trust-region reflective steps with
    finite-difference Jacobians (scipy). Not the simulation-based fit: a reference computed beside it.
    Returns ``(rates, R^2 per (concentration, level))``.
    """
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
