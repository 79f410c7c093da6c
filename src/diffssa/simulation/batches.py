"""Many trajectories in batches: bounded memory per call, one key per batch folded from the seed.

:func:`simulate_batches` yields the :class:`~diffssa.Trajectories` of each batch (for callers that reduce
a batch before the next, e.g. to features); ``Trajectories.concatenate(list(...))`` joins them. Batch
``i`` uses ``fold_in(as_key(key), i)`` (:func:`diffssa.rng.batches`), so results depend on the seed and
the batch size only.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..model import ReactionNetwork
from ..progress import progress_bar
from ..rng import batches
from .api import simulate
from .trajectories import Trajectories

__all__ = ["simulate_batches"]


def simulate_batches(network: ReactionNetwork, times, *, key, runs: int, batch_size: int, params=None,
                     initial=None, progress: bool = False, **options) -> Iterator[Trajectories]:
    """``runs`` trajectories of ``network`` recorded at ``times`` (T,), in batches of ``batch_size``.

    ``params``: name -> scalar or (runs,) array of per-trajectory values; ``initial``: None, a mapping,
    an (S,) state or a (runs, S) array of per-trajectory states; both are sliced per batch. Other
    ``options`` go to :func:`~diffssa.simulate` unchanged (``max_steps``, ``method``, ``estimator``,
    ``on_exhausted`` ...). ``progress``: a progress bar over the trajectories (with the ``progress``
    extra installed). Yields one :class:`~diffssa.Trajectories` (B_i, T, S) per batch.
    """
    params = dict(params or {})
    per_run = np.ndim(initial) == 2

    def sliced(value, start, count):
        return value[start:start + count] if np.ndim(value) else value

    with progress_bar(total=runs, desc="simulating", unit="traj", disable=not progress, leave=False) as bar:
        for batch_key, start, count in batches(key, runs, batch_size):
            yield simulate(network, times, key=batch_key, runs=count,
                           params={k: sliced(v, start, count) for k, v in params.items()},
                           initial=sliced(initial, start, count) if per_run else initial, **options)
            bar.update(count)
