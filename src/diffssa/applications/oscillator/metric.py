"""The fit's loss: residuals of the statistics whitened by the target data's own covariance."""

from __future__ import annotations

import numpy as np


class Metric:
    """Whitening of the statistics by the target data: residual -> L^-1 (residual / sd).

    ``target_features``: (N, D) per-trajectory features of the target data. ``sd``: (D,)
    per-trajectory SD of each feature in the target data; features whose SD is below ``sd_floor``
    (almost always 0, e.g. R in the first hours) are dropped, ``D_kept = dim`` remain. ``L``:
    Cholesky factor of the features' correlation matrix shrunk towards the identity by ``shrinkage``
    (a full-rank, well-conditioned estimate from a finite sample). Whitened residuals are in units
    of the per-trajectory spread; the loss ``|r|^2 / D_kept`` is 0 at a perfect fit.
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
        """(D,) statistics -> (D_kept,) whitened residual against the target's."""
        return self.whiten(np.asarray(statistics) - self.target)

    def loss(self, statistics: np.ndarray) -> float:
        """(D,) statistics -> the mean squared whitened residual (dimensionless)."""
        r = self.residual(statistics)
        return float(r @ r / self.dim)

    def whitened_covariance(self) -> np.ndarray:
        """Covariance of whitened per-trajectory features: L^-1 C L^-T (the identity without shrinkage)."""
        a = np.linalg.solve(self.chol, self.corr)
        return np.linalg.solve(self.chol, a.T)
