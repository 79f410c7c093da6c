"""The compiled form of a reaction network, what the simulation engines run on.

:meth:`ReactionNetwork.compile <diffssa.model.ReactionNetwork.compile>` (cached per network) calls
:func:`compile_network`: a float32 stoichiometry matrix and pure JAX functions of the state ``x``
(S,) and the parameters ``theta`` (P,) (kinetic laws, rate constants, intensities), with the
reactions' labels and the parameters each law reads.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .expressions import Sym, evaluate
from .kinetics import MassAction
from .reactions import Reaction, reaction_label

if TYPE_CHECKING:
    from .model import ReactionNetwork

__all__ = ["CompiledNetwork", "compile_network"]


class CompiledNetwork(NamedTuple):
    """What the simulator needs: stoichiometry and a propensity function.

    ``species``: the names along the state vector's axis: the species (``n_counts`` of them), then the
    network's variables. Below, S counts both.
    ``stoichiometry``: (R, S) float32 net change of each species per firing (0 for variables).
    ``reactants``: (R, S) float32 reactant coefficients (what a firing consumes before it produces).
    ``laws(x, theta, smooth_absent=False)``: x (S,) state (counts, then variables), theta (P,) parameters
    -> (R,) kinetic laws as written (a custom law may come out negative or non-finite: the simulator
    checks, and names the reaction). A custom law is 0 where its reactants are absent; its derivative
    there is 0, or with ``smooth_absent`` the law's own in the state (still 0 in the parameters):
    what a surrogate's state tangent needs (:attr:`~diffssa.estimators.Estimator.smooth_absent`).
    ``mass_action``: (Rm,) indices of the mass-action reactions.
    ``rate_constants(theta)``: theta (P,) -> (Rm,) their rate constants times volume factors. A mass-action
    law is this times a count factor that is finite and >= 0, so it is negative or non-finite only if
    its rate constant is (the simulator checks these once per call, custom laws at every step).
    ``reactions``: (R,) reaction labels for messages.
    ``intensities(x, a)``: (R,) the mass-action count factors ``V**(1 - order) prod_s C(x_s, n_s)``
    (a mass-action law divided by its rate constant, so it is positive wherever the reaction can fire,
    whatever the rate constant) and, for custom laws, their propensities ``a`` (R,) at ``x`` as the
    simulator computed them: where gradient estimators sample the reactions' activity
    (:mod:`diffssa.simulation.pairs`).
    ``reads``: (R,) for each reaction the parameter names its law reads (every parameter for a callable law).
    """

    species: tuple[str, ...]
    parameters: tuple[str, ...]
    stoichiometry: np.ndarray
    reactants: np.ndarray
    laws: Callable
    mass_action: np.ndarray
    rate_constants: Callable
    reactions: tuple[str, ...]
    events: tuple  # the network's Event objects (compiled by diffssa.simulation.events)
    intensities: Callable
    reads: tuple[frozenset[str], ...]
    cache: dict  # jitted simulators built for this network, keyed by their configuration
    n_counts: int  # the first n_counts entries of the state are species counts, the rest variables

    def propensities(self, x, theta):
        """(R,) propensities: the kinetic laws, negative values read as 0."""
        return jnp.maximum(self.laws(x, theta), 0.0)


def compile_network(net: ReactionNetwork) -> CompiledNetwork:
    """``net`` compiled (uncached: call :meth:`~diffssa.model.ReactionNetwork.compile` instead)."""
    species = net.state_names
    params = net.parameter_names
    s_idx = {s: i for i, s in enumerate(species)}
    mass_action = [j for j, r in enumerate(net.reactions) if isinstance(r.law, MassAction)]
    custom = [j for j, r in enumerate(net.reactions) if not isinstance(r.law, MassAction)]
    order = np.argsort(np.array(mass_action + custom, dtype=np.int64)).astype(np.int32)  # int32: also under x64

    def reactant_table(rows):
        """(len(rows), width) species indices and coefficients of the reactants, zero-padded."""
        width = max([len(net.reactions[j].reactants) for j in rows] + [1])
        index = np.zeros((len(rows), width), dtype=np.int32)
        count = np.zeros((len(rows), width), dtype=np.int32)
        for row, j in enumerate(rows):
            for col, (s, n) in enumerate(net.reactions[j].reactants.items()):
                index[row, col], count[row, col] = s_idx[s], n
        return index, count

    idx, coef = reactant_table(mass_action)
    max_coef = int(coef.max()) if coef.size else 0
    inv_factorial = np.array([1.0 / math.factorial(int(n)) for n in coef.ravel()], dtype=np.float32).reshape(coef.shape)
    orders = coef.sum(axis=1)
    volume_factor = np.power(net.volume, 1.0 - orders).astype(np.float32)
    rate_exprs = [net.reactions[j].law.rate for j in mass_action]
    simple_rates = all(isinstance(e, Sym) for e in rate_exprs)
    rate_index = np.array([params.index(e.name) for e in rate_exprs], dtype=np.int32) if simple_rates else None
    custom_laws = [net.reactions[j].law.law for j in custom]
    custom_idx, custom_need = reactant_table(custom)

    def parameter_env(theta):
        """Parameter name -> its entry of theta (P,)."""
        return {p: theta[i] for i, p in enumerate(params)}

    def rate_constants(theta):
        if simple_rates:
            k = theta[rate_index]
        else:
            env_p = parameter_env(theta)
            k = jnp.stack([jnp.asarray(evaluate(e, env_p), dtype=theta.dtype) for e in rate_exprs])
        return k * volume_factor

    def count_factors(x):
        """(Rm,) prod_s C(x_s, n_s) of the mass-action reactions."""
        xr = x[idx]  # (Rm, width)
        comb = jnp.ones_like(xr)
        for i in range(max_coef):  # falling factorial x (x-1) ... (x-n+1): >= 0 for counts x >= 0
            comb = comb * jnp.where(coef > i, xr - i, 1.0)
        return jnp.prod(comb * inv_factorial, axis=1)

    def raw_custom_values(x, theta):
        env_p = parameter_env(theta)
        env_x = {s: x[i] for i, s in enumerate(species)}
        values = []
        for law in custom_laws:
            v = law(env_x, env_p) if callable(law) else evaluate(law, {**env_x, **env_p})
            values.append(jnp.broadcast_to(jnp.asarray(v, dtype=x.dtype), ()))
        return jnp.stack(values)

    def reactants_present(x):
        return jnp.all(x[custom_idx] >= custom_need, axis=1)

    def custom_values(x, theta):
        # a custom law never fires without its reactants (counts cannot go negative)
        return jnp.where(reactants_present(x), raw_custom_values(x, theta), 0.0)

    @jax.custom_jvp
    def custom_values_state_smooth(x, theta):
        return custom_values(x, theta)

    @custom_values_state_smooth.defjvp
    def _(primals, tangents):
        """Without its reactants a law is 0 for every parameter (derivative 0 in the parameters), but
        its derivative in the state is the law's own, where the law is finite there."""
        x, theta = primals
        dx, dtheta = tangents
        value, d_state = jax.jvp(lambda x: raw_custom_values(x, theta), (x,), (dx,))
        _, d_params = jax.jvp(lambda th: raw_custom_values(x, th), (theta,), (dtheta,))
        present = reactants_present(x)
        d_state = jnp.where(present | jnp.isfinite(value), d_state, 0.0)
        return jnp.where(present, value, 0.0), d_state + jnp.where(present, d_params, 0.0)

    def in_reaction_order(parts):
        a = jnp.concatenate(parts) if len(parts) > 1 else parts[0]
        return a[order] if custom and mass_action else a

    def laws(x, theta, smooth_absent: bool = False):
        parts = [rate_constants(theta) * count_factors(x)] if mass_action else []
        values = custom_values_state_smooth if smooth_absent else custom_values
        return in_reaction_order(parts + ([values(x, theta)] if custom else []))

    def intensities(x, a):
        if not mass_action:
            return a
        return a.at[np.asarray(mass_action, dtype=np.int32)].set(volume_factor * count_factors(x))

    labels = tuple(reaction_label(j, r) for j, r in enumerate(net.reactions))
    stoichiometry = np.zeros((len(net.reactions), len(species)), dtype=np.float32)
    stoichiometry[:, :len(net.species)] = net.stoichiometry  # variables: no reaction changes them
    reactants = np.zeros_like(stoichiometry)
    reactants[:, :len(net.species)] = net.reactant_matrix
    return CompiledNetwork(species, params, stoichiometry, reactants, laws, np.array(mass_action, dtype=np.int32),
                           rate_constants, labels, net.events, intensities,
                           tuple(_parameters_read(r, params) for r in net.reactions), {}, len(net.species))


def _parameters_read(reaction: Reaction, params: tuple[str, ...]) -> frozenset[str]:
    """The parameters a reaction's kinetic law reads (all of them for a callable law)."""
    names = reaction.law.reads()
    if names is None:
        return frozenset(params)
    return names & frozenset(params)
