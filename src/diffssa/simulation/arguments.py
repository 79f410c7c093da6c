"""The arguments of :func:`~diffssa.simulate`, checked and laid out for the engines: parameter and
initial-state matrices, and guards on parameters that must not be differentiated."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..estimators import EXACT, Estimator
from ..expressions import symbols
from ..model import MAX_COUNT, ReactionNetwork

__all__ = ["guard_parameters", "parameter_matrix", "initial_matrix"]


def _refuse_derivative(value, message: str):
    """``value`` unchanged; differentiating through it raises ``ValueError(message)``."""

    @jax.custom_jvp
    def identity(v):
        return v

    @identity.defjvp
    def _(primals, tangents):
        raise ValueError(message)

    return identity(value)


def guard_parameters(network: ReactionNetwork, params, estimator: Estimator):
    """``params`` with every traced value that must not be differentiated wrapped in a guard that
    raises, naming it, if it is: all of them for ``estimator=None``, else those an event reads
    (no estimator differentiates event times or assignments)."""
    if not params:
        return params
    read_by_event = {}
    for i, event in enumerate(network.events):
        for expr in (event.trigger, *event.assignments.values()):
            for name in symbols(expr):
                read_by_event.setdefault(name, event.name or f"#{i + 1}")
    guarded = dict(params)
    for name, value in params.items():
        if not isinstance(value, jax.core.Tracer):
            continue
        if estimator is EXACT:
            guarded[name] = _refuse_derivative(value, (
                f"simulate(..., estimator=None) is forward only, and it was differentiated with respect to "
                f"parameter {name!r}: pass estimator='auto' (or another estimator) to get derivatives"))
        elif name in read_by_event:
            guarded[name] = _refuse_derivative(value, (
                f"parameter {name!r} is read by event {read_by_event[name]}: derivatives with respect to "
                "parameters of event times or assignments are not supported; pass it as a constant"))
    return guarded


def parameter_matrix(network: ReactionNetwork, params, runs: int):
    """(B, P) parameter values: network defaults overridden by ``params`` (scalars or (B,) arrays)."""
    columns = []
    for name, value in network.parameter_values(params).items():
        value = jnp.asarray(value, dtype=jnp.float32)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, runs)):
            raise ValueError(f"parameter {name!r} must be a scalar or have shape ({runs},), got {value.shape}")
        if not isinstance(value, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(value))):
            raise ValueError(f"parameter {name!r} must be finite, got {np.asarray(value)}")
        columns.append(jnp.broadcast_to(value, (runs,)))
    if not columns:
        return jnp.zeros((runs, 0), jnp.float32)
    return jnp.stack(columns, axis=1)


def initial_matrix(network: ReactionNetwork, initial, runs: int) -> np.ndarray:
    """(B, S) float64 initial states (counts, then the variables' initial values), checked."""
    if initial is None or isinstance(initial, Mapping):
        x0 = network.initial_state(initial)
        return np.broadcast_to(x0, (runs, x0.size))
    counts = np.asarray(initial)
    n_species = len(network.species)
    if counts.shape not in ((n_species,), (runs, n_species)):
        raise ValueError(f"initial state must have shape ({n_species},) or ({runs}, {n_species}), got {counts.shape}")
    if counts.dtype.kind not in "iuf" or not (np.all(np.isfinite(counts)) and np.all(counts >= 0)
                                             and np.all(counts == np.round(counts))):
        raise ValueError("initial counts must be finite non-negative integers")
    if np.any(counts > MAX_COUNT):
        raise ValueError(f"initial counts above 2**53 = {MAX_COUNT:,} are not exact integers in floating point")
    counts = np.broadcast_to(counts.astype(np.float64), (runs, n_species))
    variables = np.broadcast_to(np.array(list(network.variables.values()), np.float64), (runs, len(network.variables)))
    return np.concatenate([counts, variables], axis=1)
