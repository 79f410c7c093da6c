"""A 784-H-10 gene regulatory network that reads MNIST digits, and an exact simulator specialised to it.

The network (a reaction network like any other; :func:`grn_network` builds it as a
:class:`~diffssa.ReactionNetwork` for small sizes):

* 784 **input genes** ``I_i``: constant counts ``x_i = round(Q * pixel_i / 255)`` (``Q = input_levels``)
  set by the image; no reaction changes them.
* H **hidden genes** ``H_h``: production ``0 -> H_h`` with propensity ``beta_h * sigmoid(u_h)``,
  ``u_h = sum_i W1[h, i] * x_i / Q + b1[h]``; degradation ``H_h -> 0`` with ``gamma_hidden * H_h``.
* 10 **output genes** ``O_k``: production ``0 -> O_k`` with ``beta_k * sigmoid(v_k)``,
  ``v_k = sum_h W2[k, h] * H_h + b2[k]``; degradation ``O_k -> 0`` with ``gamma_out * O_k``.
* All hidden and output genes start at 0; the class is the output gene with the most copies at the
  readout time ``t_end`` (ties broken uniformly at random).

Trainable parameters: ``W1`` (H, 784), ``W2`` (10, H), and two per hidden/output gene: the threshold
``b`` and the log maximal production rate ``log beta``. For H = 256 that is 203,264 + 532 = 203,796.

The specialised simulator has exactly the law of Gillespie's direct method on that network (the tests
compare it with :func:`diffssa.simulate` on a small instance), but uses its structure:

* inputs never change, so ``u`` and the hidden production propensities are computed once per image
  (one (B, 784) x (784, H) product), outside the event loop;
* a hidden gene that changes by +-1 changes the output sums by +-``W2[:, h]``: ``v`` is carried and
  updated incrementally (a gather in the forward-only path);
* degradation propensities are ``gamma * count``, so no propensity is recomputed from weighted sums;
  per event the work is O(H) (the categorical choice over 2H + 20 channels), not O(784 H).

Differentiable path (training): the library's default surrogate (``docs/gradients.md``): a thinning
clock with rate bound ``L = c * a0`` detached from the parameters, a null event with probability
``1 - a0 / L``, and a straight-through one-hot choice whose backward pass is that of ``p = a / L``.
Forward values are exact: the soft part enters as ``p - stop_gradient(p)``, which is exactly 0.
The event loop is a ``lax.scan`` over rematerialised chunks that are skipped once every trajectory
of the batch has passed ``t_end``, so backward memory grows with the chunk, not the step count.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from ...rng import as_key

__all__ = [
    "GRNConfig",
    "CONFIGS",
    "N_INPUTS",
    "N_CLASSES",
    "init_params",
    "count_parameters",
    "image_counts",
    "hidden_propensities",
    "simulate_readout",
    "simulate_readout_exact",
    "predict",
    "grn_network",
]

N_INPUTS = 784
N_CLASSES = 10


@dataclass(frozen=True)
class GRNConfig:
    """Model, simulation and training settings (all but ``hidden`` leave the parameter count unchanged)."""

    hidden: int = 256
    input_levels: int = 16  # Q: input gene count = round(Q * pixel / 255)
    t_end: float = 1.0  # readout time
    gamma_hidden: float = 1.0  # degradation rate constants (fixed; they set the time unit)
    gamma_out: float = 1.0
    beta_hidden_init: float = 3.0  # initial maximal production rates
    beta_out_init: float = 20.0
    beta_hidden_max: float = 8.0  # caps on the production rates (bound the events per trajectory)
    beta_out_max: float = 60.0
    w1_scale: float = 0.1  # initial weight SDs
    w2_scale: float = 0.1
    clock_factor: float = 1.2  # thinning bound c (training only)
    logit_scale: float = 0.5  # cross-entropy on logit_scale * output counts
    max_steps: int = 4096  # event budget per trajectory in training (null events included)
    chunk: int = 64  # steps per rematerialised chunk
    # training
    batch: int = 64
    learning_rate: float = 2e-3
    lr_decay_per_epoch: float = 0.85
    epochs: int = 10
    train_images: int = 58_000  # the last val_images of the 60k training split are the validation set
    val_images: int = 2_000
    val_every: int = 300  # optimisation steps between validations
    eval_batch: int = 500
    checkpoint_seconds: float = 300.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "GRNConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in dict(d).items() if k in known})

    def replace(self, **kw) -> "GRNConfig":
        return replace(self, **kw)


CONFIGS = {
    "full": GRNConfig(),
    "small": GRNConfig(
        hidden=32, beta_hidden_init=6.0, beta_out_init=20.0, w1_scale=0.15, w2_scale=0.15, max_steps=1024,
        chunk=32, batch=64, learning_rate=5e-3, lr_decay_per_epoch=1.0, epochs=1, train_images=4000,
        val_images=500, val_every=50, eval_batch=500, checkpoint_seconds=60.0,
    ),
}


def count_parameters(params_or_config) -> int:
    if isinstance(params_or_config, GRNConfig):
        h = params_or_config.hidden
        return h * N_INPUTS + N_CLASSES * h + 2 * (h + N_CLASSES)
    return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params_or_config)))


def init_params(config: GRNConfig, key) -> dict:
    k1, k2 = jax.random.split(as_key(key))
    h = config.hidden
    return {
        "W1": config.w1_scale * jax.random.normal(k1, (h, N_INPUTS), jnp.float32),
        "b1": jnp.zeros((h,), jnp.float32),
        "log_beta1": jnp.full((h,), math.log(config.beta_hidden_init), jnp.float32),
        "W2": config.w2_scale * jax.random.normal(k2, (N_CLASSES, h), jnp.float32),
        "b2": jnp.zeros((N_CLASSES,), jnp.float32),
        "log_beta2": jnp.full((N_CLASSES,), math.log(config.beta_out_init), jnp.float32),
    }


def image_counts(images, config: GRNConfig) -> np.ndarray:
    """Input gene counts ``round(Q * pixel / 255)`` as float32 (B, 784)."""
    images = np.asarray(images, np.float32)
    return np.round(images * (config.input_levels / 255.0)).astype(np.float32)


def hidden_propensities(params, x_in, config: GRNConfig):
    """(B, H) hidden production propensities, constant along a trajectory: computed once per image."""
    u = (x_in @ params["W1"].T) / config.input_levels + params["b1"]
    return jnp.exp(params["log_beta1"]) * jax.nn.sigmoid(u)


def _exp_uniforms(key, shape):
    u = jax.random.uniform(key, shape + (2,), jnp.float32)
    return -jnp.log1p(-u[..., 0]), u[..., 1]  # Exp(1) waiting-time draw, uniform for the choice


def _choose(a, r):
    """Index ``j`` (B,) with ``cum[j-1] <= r < cum[j]`` for ``cum = cumsum(a, 1)``; ``R`` when ``r >= sum(a)``.

    Two-level search (block sums, then one block): O(R) work instead of a length-R cumulative sum,
    which XLA on CPU lowers to a slow associative scan. A choice that lands on a zero propensity (only
    possible through float rounding at a block edge) is returned as ``R`` (no reaction).
    """
    batch, n = a.shape
    size = max(1, int(math.ceil(math.sqrt(n))))
    blocks = -(-n // size)
    padded = jnp.pad(a, ((0, 0), (0, blocks * size - n))).reshape(batch, blocks, size)
    sums = jnp.sum(padded, axis=2)
    csum = jnp.cumsum(sums, axis=1)  # short: sqrt(R)
    b = jnp.minimum(jnp.sum(csum < r[:, None], axis=1), blocks - 1)
    before = jnp.take_along_axis(csum, b[:, None], 1)[:, 0] - jnp.take_along_axis(sums, b[:, None], 1)[:, 0]
    inner = jnp.take_along_axis(padded, b[:, None, None], 1)[:, 0]  # (B, size)
    k = jnp.minimum(jnp.sum(jnp.cumsum(inner, axis=1) < (r - before)[:, None], axis=1), size - 1)
    index = jnp.minimum(b * size + k, n - 1)
    picked = jnp.take_along_axis(a, index[:, None], 1)[:, 0]
    beyond = r >= csum[:, -1]
    return jnp.where(beyond | (picked <= 0), n, index)


def _decode(index, fire, h):
    """Hard update of a chosen channel: (hidden gene, +-1 or 0), (output gene, +-1 or 0)."""
    n = 2 * h + 2 * N_CLASSES
    real = fire & (index < n)
    is_hidden = index < 2 * h
    gene_h = jnp.clip(jnp.where(index < h, index, index - h), 0, h - 1)
    dh = jnp.where(real & is_hidden, jnp.where(index < h, 1.0, -1.0), 0.0)
    k = index - 2 * h
    gene_o = jnp.clip(jnp.where(k < N_CLASSES, k, k - N_CLASSES), 0, N_CLASSES - 1)
    do = jnp.where(real & ~is_hidden, jnp.where(k < N_CLASSES, 1.0, -1.0), 0.0)
    return gene_h, dh, gene_o, do


def _propensities(ah, xh, y, v, beta2, b2, config):
    return jnp.concatenate(
        [ah, config.gamma_hidden * xh, beta2 * jax.nn.sigmoid(v + b2), config.gamma_out * y], axis=1
    )  # (B, 2H + 20): hidden production, hidden degradation, output production, output degradation


def _initial_carry(batch, h):
    return (
        jnp.zeros((batch, h), jnp.float32),  # hidden counts
        jnp.zeros((batch, N_CLASSES), jnp.float32),  # output counts
        jnp.zeros((batch, N_CLASSES), jnp.float32),  # v = W2 @ hidden counts (incremental)
        jnp.zeros((batch,), jnp.float32),  # time
        jnp.zeros((batch,), bool),  # done: next event beyond t_end
        jnp.zeros((batch,), jnp.int32),  # iterations (thinning: null events included)
    )


# ---------------------------------------------------------------------------------------------
# Differentiable path: thinning clock + straight-through choice, chunked rematerialised scan
# ---------------------------------------------------------------------------------------------


def simulate_readout(params, x_in, key, config: GRNConfig):
    """Output counts at ``t_end`` (B, 10), differentiable in ``params`` (straight-through surrogate).

    Returns ``(y, steps, exhausted, hidden)``: ``steps`` (B,) iterations used (null events included),
    ``exhausted`` (B,) True where the budget ``config.max_steps`` ran out before ``t_end`` (its
    readout is then the state at that point, not at ``t_end``; the trainer reports the fraction),
    ``hidden`` (B, H) hidden counts at the readout.
    """
    h = config.hidden
    batch = x_in.shape[0]
    rows = jnp.arange(batch)
    ah = hidden_propensities(params, x_in, config)
    beta2 = jnp.exp(params["log_beta2"])
    w2t = params["W2"].T  # (H, 10)
    b2 = params["b2"]
    c, t_end = config.clock_factor, config.t_end
    n_chunks = -(-config.max_steps // config.chunk)

    def step(carry, noise, ah, beta2, w2t, b2):
        xh, y, v, t, done, n = carry
        e, u = noise
        a = _propensities(ah, xh, y, v, beta2, b2, config)
        a_hard = jax.lax.stop_gradient(a)
        bound = c * jnp.sum(a_hard, axis=1)  # thinning bound L = c * a0, detached
        tau = e / bound
        fire = ~done & (tau <= t_end - t)
        index = _choose(a_hard, u * bound)  # 2H + 20: null event
        gene_h, dh, gene_o, do = _decode(index, fire, h)
        # Straight-through: d(one-hot)/d theta := d(a / L)/d theta; (a - stop_gradient(a)) is exactly 0.
        soft = (a - a_hard) / bound[:, None] * fire[:, None]
        soft_h = soft[:, :h] - soft[:, h : 2 * h]
        soft_y = soft[:, 2 * h : 2 * h + N_CLASSES] - soft[:, 2 * h + N_CLASSES :]
        return (
            xh.at[rows, gene_h].add(dh) + soft_h,
            y.at[rows, gene_o].add(do) + soft_y,
            v + dh[:, None] * w2t[gene_h] + soft_h @ w2t,  # incremental: +-W2[:, h]
            jnp.where(fire, t + tau, t),
            done | ~fire,
            n + fire.astype(n.dtype),
        )

    @jax.checkpoint
    def run_chunk(carry, chunk_key, ah, beta2, w2t, b2):
        e, u = _exp_uniforms(chunk_key, (config.chunk, batch))

        def body(cr, noise):
            return step(cr, noise, ah, beta2, w2t, b2), None

        return jax.lax.scan(body, carry, (e, u))[0]

    def outer(carry, i):
        go = ~jnp.all(carry[4])
        chunk_key = jax.random.fold_in(key, i)
        return jax.lax.cond(go, run_chunk, lambda cr, *_: cr, carry, chunk_key, ah, beta2, w2t, b2), None

    carry = jax.lax.scan(outer, _initial_carry(batch, h), jnp.arange(n_chunks))[0]
    xh, y, _, _, done, n = carry
    return y, n, ~done, xh


# ---------------------------------------------------------------------------------------------
# Forward-only exact path: direct method, while loop with early exit, gather updates
# ---------------------------------------------------------------------------------------------


def simulate_readout_exact(params, x_in, key, config: GRNConfig, max_steps: int | None = None):
    """Output counts at ``t_end`` (B, 10) by Gillespie's direct method (no null events, no budget).

    Returns ``(y, events, hidden)``: ``events`` (B,) reactions fired, ``hidden`` (B, H) hidden counts at
    ``t_end``. Runs until every trajectory's next event lies beyond ``t_end`` (``max_steps``, if given,
    stops earlier and must then be checked by the caller via ``events``).
    """
    h = config.hidden
    batch = x_in.shape[0]
    rows = jnp.arange(batch)
    ah = hidden_propensities(params, x_in, config)
    beta2 = jnp.exp(params["log_beta2"])
    w2t = params["W2"].T
    b2 = params["b2"]
    t_end = config.t_end
    limit = jnp.iinfo(jnp.int32).max if max_steps is None else int(max_steps)

    def cond(state):
        carry, i = state
        return ~jnp.all(carry[4]) & (i < limit)

    def body(state):
        (xh, y, v, t, done, n), i = state
        e, u = _exp_uniforms(jax.random.fold_in(key, i), (batch,))
        a = _propensities(ah, xh, y, v, beta2, b2, config)
        a0 = jnp.sum(a, axis=1)
        tau = e / a0
        fire = ~done & (tau <= t_end - t)
        index = _choose(a, u * a0)
        gene_h, dh, gene_o, do = _decode(index, fire, h)
        new = (
            xh.at[rows, gene_h].add(dh),
            y.at[rows, gene_o].add(do),
            v + dh[:, None] * w2t[gene_h],
            jnp.where(fire, t + tau, t),
            done | ~fire,
            n + (fire & (index < 2 * h + 2 * N_CLASSES)).astype(n.dtype),
        )
        return new, i + 1

    (xh, y, _, _, done, n), _ = jax.lax.while_loop(cond, body, (_initial_carry(batch, h), jnp.int32(0)))
    return y, n, xh


def predict(y, key):
    """Class = the output gene with the most copies; ties broken uniformly at random (counts are integers)."""
    return jnp.argmax(y + 0.5 * jax.random.uniform(key, y.shape), axis=-1)


# ---------------------------------------------------------------------------------------------
# The same network as a general ReactionNetwork (for checking the specialised simulator)
# ---------------------------------------------------------------------------------------------


def grn_network(params, image_counts_row, config: GRNConfig, n_inputs: int | None = None):
    """The GRN as a :class:`diffssa.ReactionNetwork` with :class:`diffssa.Propensity` laws.

    Meant for small instances (``n_inputs`` inputs, ``config.hidden`` hidden genes); the parameters
    are network parameters named ``W1_h_i``, ``b1_h``, ``log_beta1_h``, ``W2_k_h``, ``b2_k``, ``log_beta2_k``.
    """
    from ...kinetics import Propensity
    from ...model import ReactionNetwork
    from ...reactions import Reaction

    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    n_in = p["W1"].shape[1] if n_inputs is None else n_inputs
    h, n_out = p["W1"].shape[0], p["W2"].shape[0]
    species = {f"I{i}": int(image_counts_row[i]) for i in range(n_in)}
    species.update({f"H{j}": 0 for j in range(h)})
    species.update({f"O{k}": 0 for k in range(n_out)})
    parameters = {}
    for j in range(h):
        for i in range(n_in):
            parameters[f"W1_{j}_{i}"] = float(p["W1"][j, i])
        parameters[f"b1_{j}"] = float(p["b1"][j])
        parameters[f"log_beta1_{j}"] = float(p["log_beta1"][j])
    for k in range(n_out):
        for j in range(h):
            parameters[f"W2_{k}_{j}"] = float(p["W2"][k, j])
        parameters[f"b2_{k}"] = float(p["b2"][k])
        parameters[f"log_beta2_{k}"] = float(p["log_beta2"][k])
    parameters["gamma_hidden"] = config.gamma_hidden
    parameters["gamma_out"] = config.gamma_out
    q = float(config.input_levels)

    def hidden_law(j):
        def law(s, th):
            u = sum(th[f"W1_{j}_{i}"] * s[f"I{i}"] for i in range(n_in)) / q + th[f"b1_{j}"]
            return jnp.exp(th[f"log_beta1_{j}"]) * jax.nn.sigmoid(u)

        law.__name__ = f"hidden_production_{j}"
        return law

    def output_law(k):
        def law(s, th):
            v = sum(th[f"W2_{k}_{j}"] * s[f"H{j}"] for j in range(h)) + th[f"b2_{k}"]
            return jnp.exp(th[f"log_beta2_{k}"]) * jax.nn.sigmoid(v)

        law.__name__ = f"output_production_{k}"
        return law

    reactions = []
    for j in range(h):
        reactions.append(Reaction({}, {f"H{j}": 1}, Propensity(hidden_law(j)), f"produce_H{j}"))
        reactions.append(Reaction({f"H{j}": 1}, {}, Propensity(f"gamma_hidden * H{j}"), f"degrade_H{j}"))
    for k in range(n_out):
        reactions.append(Reaction({}, {f"O{k}": 1}, Propensity(output_law(k)), f"produce_O{k}"))
        reactions.append(Reaction({f"O{k}": 1}, {}, Propensity(f"gamma_out * O{k}"), f"degrade_O{k}"))
    return ReactionNetwork(species, parameters, reactions, name="grn-mnist-small")
