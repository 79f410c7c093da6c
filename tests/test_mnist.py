"""The MNIST gene network: parameter count, IDX reader, exactness of the specialised simulator and of
its gradient, learning."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import gammaln

from diffssa import simulate
from diffssa.applications.mnist import grn
from diffssa.applications.mnist.data import load_mnist, read_idx
from diffssa.applications.mnist.train import evaluate_params, load_checkpoint, train


def test_full_parameter_count():
    cfg = grn.CONFIGS["full"]
    assert grn.count_parameters(cfg) == 203_796
    params = grn.init_params(cfg, 0)
    assert grn.count_parameters(params) == 203_796
    assert params["W1"].shape == (256, 784) and params["W2"].shape == (10, 256)


def test_idx_reader_round_trip(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array(data.shape, ">u4").tobytes()
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes())
    np.testing.assert_array_equal(read_idx(path), data)
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(bad)


def test_mnist_split():
    x, y = load_mnist("test")
    assert x.shape == (10_000, 784) and x.dtype == np.uint8 and y.shape == (10_000,)
    assert set(np.unique(y)) == set(range(10))


def _tiny(seed=0):
    """3 active inputs, 3 hidden genes, 10 outputs, weights large enough to make the outputs differ."""
    cfg = grn.GRNConfig(hidden=3)
    rng = np.random.default_rng(seed)
    params = {k: np.asarray(v) for k, v in grn.init_params(cfg, seed).items()}
    params["W1"] = rng.normal(0, 1.0, params["W1"].shape).astype(np.float32)
    params["W2"] = rng.normal(0, 1.0, params["W2"].shape).astype(np.float32)
    params["b2"] = rng.normal(-1, 1.0, 10).astype(np.float32)
    image = np.zeros(784, np.float32)
    image[:3] = [16, 5, 9]  # input gene counts; the other 781 inputs are 0 and do not act
    return cfg, params, image


def test_specialised_simulator_is_exact():
    """Both specialised paths (direct method; thinning + straight-through) against diffssa.simulate on
    the same network built as a ReactionNetwork with Propensity laws: means and variances of the 13
    hidden and output counts at t_end, z-scores, plus the exact Poisson law of the hidden genes."""
    cfg, params, image = _tiny()
    runs = 8000
    net = grn.grn_network(params, image, cfg, n_inputs=3)
    assert len(net.species) == 16 and len(net.reactions) == 26
    ref = np.asarray(simulate(net, [0.0, cfg.t_end], key=jax.random.PRNGKey(1), runs=runs).states[:, -1, 3:])
    pj = {k: jnp.asarray(v) for k, v in params.items()}
    x = jnp.broadcast_to(jnp.asarray(image), (runs, 784))
    y, events, hidden = grn.simulate_readout_exact(pj, x, jax.random.PRNGKey(2), cfg)
    direct = np.concatenate([np.asarray(hidden), np.asarray(y)], axis=1)
    y2, steps, exhausted, hidden2 = jax.jit(lambda p, x, k: grn.simulate_readout(p, x, k, cfg))(
        pj, x, jax.random.PRNGKey(3))
    assert not bool(jnp.any(exhausted))
    thinning = np.concatenate([np.asarray(hidden2), np.asarray(y2)], axis=1)
    assert np.all(direct == np.round(direct)) and np.all(direct >= 0)
    assert np.all(thinning == np.round(thinning)) and np.all(thinning >= 0)
    for mine in (direct, thinning):
        z_mean = (mine.mean(0) - ref.mean(0)) / np.sqrt(mine.var(0) / runs + ref.var(0) / runs)
        assert np.max(np.abs(z_mean)) < 4.0, z_mean
        assert abs(np.mean(z_mean**2) - 1) < 1.6, z_mean  # the 13 z-scores are not too spread either
        # variances: SE of a sample variance ~ sd^2 sqrt(2 / n) (near-Poisson counts, rough but adequate)
        se = np.sqrt((mine.var(0) ** 2 + ref.var(0) ** 2) * 2.5 / runs)
        z_var = (mine.var(0) - ref.var(0)) / se
        assert np.max(np.abs(z_var)) < 4.5, z_var
    # hidden genes are immigration-death processes from 0: Poisson(a_h (1 - exp(-gamma t)))
    ah = np.asarray(grn.hidden_propensities(pj, x[:1], cfg))[0]
    m = ah * (1 - np.exp(-cfg.gamma_hidden * cfg.t_end))
    for h in (direct[:, :3], thinning[:, :3]):
        assert np.max(np.abs((h.mean(0) - m) / np.sqrt(m / runs))) < 4.0
    # thinning costs about c - 1 = 20% extra (null) steps
    ratio = float(jnp.mean(steps)) / float(jnp.mean(events))
    assert 1.1 < ratio < 1.3, ratio


# The gradient comparisons: readout f = O_0 - O_1 (output counts at t_end, a margin between two classes)
# of a 3-input, 3-hidden, 10-output network, differentiated in three hidden-layer and four output-layer
# parameters (network parameter name, params array, index).
GRADIENT_RUNS = 4000
READOUT = np.eye(10, dtype=np.float32)[0] - np.eye(10, dtype=np.float32)[1]  # (10,) weights of the counts
HIDDEN_LAYER = [("W1_0_0", "W1", (0, 0)), ("b1_1", "b1", (1,)), ("log_beta1_2", "log_beta1", (2,))]
OUTPUT_LAYER = [("W2_0_1", "W2", (0, 1)), ("b2_0", "b2", (0,)), ("W2_1_2", "W2", (1, 2)),
                ("log_beta2_1", "log_beta2", (1,))]


def _gradient_case():
    """:func:`_tiny`'s network with only its 3 active inputs (W1 (3, 3), image (3,) counts) and a
    384-step budget (the most any of the trajectories below needs is 174 steps, null events included)."""
    cfg, params, image = _tiny()
    params["W1"] = params["W1"][:, :3]
    return cfg.replace(max_steps=384, chunk=32), params, image[:3]


def _exact_readout(params, image, cfg):
    """E[f] (a scalar, molecules) of the readout f = READOUT . O(t_end), exact up to float32 rounding,
    differentiable in ``params``.

    The hidden genes are independent immigration-death processes started at 0, so at time s the
    counts H_h(s) are independent Poisson with means m_h(s) = a_h (1 - exp(-gamma_hidden s)), a_h
    the hidden production propensities (H,). Output gene k is produced at rate
    beta_k sigmoid(W2[k] . H(s) + b2[k]) and degraded at rate gamma_out, so
    E[O_k(t)] = beta_k int_0^t exp(-gamma_out (t - s)) E[sigmoid(W2[k] . H(s) + b2[k])] ds: a
    48-node Gauss-Legendre rule in s over every hidden state with counts 0..20 (the means here are
    below 1.2, so the Poisson mass cut off is below 1e-17; float64 with 80 nodes and counts 0..30
    differs by 1e-5 in E[f] and 3e-6 in its gradient).
    """
    ah = grn.hidden_propensities(params, jnp.asarray(image)[None], cfg)[0]  # (H,) events per unit time
    nodes, weights = np.polynomial.legendre.leggauss(48)
    s = (nodes + 1) * cfg.t_end / 2  # (Q,) times
    m = ah * (1 - jnp.exp(-cfg.gamma_hidden * s))[:, None]  # (Q, H) Poisson means
    n = jnp.arange(21.0)
    pmf = jnp.exp(n * jnp.log(m[..., None]) - m[..., None] - gammaln(n + 1))  # (Q, H, 21)
    states = np.stack(np.meshgrid(*[np.arange(21)] * ah.shape[0], indexing="ij"), -1).reshape(-1, ah.shape[0])
    joint = jnp.prod(jnp.stack([pmf[:, h, states[:, h]] for h in range(ah.shape[0])]), axis=0)  # (Q, 21**H)
    rate = jax.nn.sigmoid(states @ params["W2"].T + params["b2"])  # (21**H, 10) / beta
    decay = weights * cfg.t_end / 2 * jnp.exp(-cfg.gamma_out * (cfg.t_end - s))  # (Q,) quadrature weights
    mean_counts = jnp.exp(params["log_beta2"]) * jnp.einsum("q,qn,nk->k", decay, joint, rate)  # (10,)
    return mean_counts @ READOUT


@pytest.fixture(scope="module")
def specialised_gradients():
    """``(g, f)``: per-trajectory gradients (GRADIENT_RUNS, 7) of f in HIDDEN_LAYER + OUTPUT_LAYER and
    readouts f (GRADIENT_RUNS,) from :func:`grn.simulate_readout`, one trajectory per key (seed 5)."""
    cfg, params, image = _gradient_case()
    wrt = HIDDEN_LAYER + OUTPUT_LAYER

    def one(p, key):
        y, _, exhausted, _ = grn.simulate_readout(p, jnp.asarray(image)[None], key, cfg)
        return y[0] @ READOUT, (y[0] @ READOUT, exhausted[0])

    @jax.jit
    def per_run(p, keys):
        g, (f, exhausted) = jax.vmap(jax.grad(one, has_aux=True), in_axes=(None, 0))(p, keys)
        return jnp.stack([g[array][(slice(None), *index)] for _, array, index in wrt], axis=1), f, exhausted

    pj = {k: jnp.asarray(v) for k, v in params.items()}
    g, f, exhausted = per_run(pj, jax.random.split(jax.random.PRNGKey(5), GRADIENT_RUNS))
    assert not bool(jnp.any(exhausted))
    return np.asarray(g), np.asarray(f)


def _z(estimates, reference, reference_se=0.0):
    """(P,) z-scores of the means of ``estimates`` (N, P) against ``reference`` (P,) with its standard
    errors ``reference_se`` (P,) (0: exact)."""
    se = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    return (estimates.mean(axis=0) - reference) / np.hypot(se, reference_se)


def test_specialised_gradient_against_exact(specialised_gradients):
    """The specialised simulator's straight-through gradient (GRADIENT_RUNS = 4,000 trajectories, seed
    5) against the exact gradient of E[f] (:func:`_exact_readout`, differentiated by JAX).

    Output-layer parameters: the estimator is unbiased there (the output genes feed back on nothing,
    so their tangents are linear in the straight-through terms), and the specialised simulator
    agrees: means 1.523, 2.772, -0.467, -1.634 (standard errors 0.026, 0.005, 0.011, 0.008) against
    the exact 1.509, 2.768, -0.489, -1.640, z = +0.5, +0.8, +1.9, +0.7, |z| < 4 asserted.

    Hidden-layer parameters: the straight-through linearisation of the hidden counts inside the output
    sigmoids is biased: W1_0_0 0.3124 +- 0.0012 against 0.3085 (+1.3%, z = 3.4), b1_1 0.550 +- 0.002
    against 0.520 (+5.9%), log_beta1_2 -0.523 +- 0.001 against -0.500 (+4.6%); only a 25% bound is
    asserted there (another draw of the weights gave +40% on a log_beta1). The unbiased pairs
    estimator of diffssa.simulate (4,000 runs, 44 s here) agrees with the exact values on all seven
    parameters (|z| <= 1.2), which checks the exact reference independently.
    """
    g, f = specialised_gradients
    cfg, params, image = _gradient_case()
    pj = {k: jnp.asarray(v) for k, v in params.items()}
    mean_f, grads = jax.jit(jax.value_and_grad(_exact_readout), static_argnums=2)(pj, image, cfg)
    exact = np.array([float(grads[array][index]) for _, array, index in HIDDEN_LAYER + OUTPUT_LAYER])
    # the exact reference itself: E[f] = 3.368 against the simulated 3.415 +- 0.047 (z = +1.0)
    assert abs(_z(f[:, None], float(mean_f))[0]) < 4.0
    hidden, output = slice(0, len(HIDDEN_LAYER)), slice(len(HIDDEN_LAYER), None)
    z = _z(g[:, output], exact[output])
    assert np.max(np.abs(z)) < 4.0, z
    # The same bound rejects a gradient 1.5x off: measured z = +20, +197, -12, -70 for 1.5 g.
    z_wrong = _z(1.5 * g[:, output], exact[output])
    assert np.min(np.abs(z_wrong)) > 4.0, z_wrong
    relative_bias = g[:, hidden].mean(axis=0) / exact[hidden] - 1
    assert np.max(np.abs(relative_bias)) < 0.25, relative_bias


def test_specialised_gradient_matches_general_thinning(specialised_gradients):
    """The specialised simulator's gradient against diffssa.simulate(..., estimator="thinning") on the
    same network (:func:`grn.grn_network`): both are the thinning clock with bound 1.2 a0 detached
    from the parameters and the straight-through derivative of the choice probabilities a / L, so
    their per-trajectory gradients should have one mean. GRADIENT_RUNS = 4,000 trajectories each
    (seeds 5 and 6), z-test on the difference of the means, |z| < 4 for each parameter.

    Measured (HIDDEN_LAYER then OUTPUT_LAYER): z = +0.05, -0.14, +0.07, -0.06, +0.31, +1.34, +0.15;
    general means 0.312, 0.551, -0.523, 1.525, 2.770, -0.489, -1.636 (SE 0.001, 0.002, 0.001, 0.026,
    0.005, 0.012, 0.008). Before the thinning surrogate kept the state derivative of a law whose
    reactants are absent (``Estimator.smooth_absent``) the general means were 0.363, 0.714, -0.689,
    1.538, 2.844, -0.532, -1.892: z = -25, -50, +60, -0.4, -10, +3.8, +22 (+18% to +38% off the
    exact 0.309, 0.520, -0.500 on the hidden layer), so this test fails on that error.
    """
    g, _ = specialised_gradients
    cfg, params, image = _gradient_case()
    net = grn.grn_network(params, image, cfg)
    names = [name for name, _, _ in HIDDEN_LAYER + OUTPUT_LAYER]
    outputs = jnp.asarray([net.state_names.index(f"O{k}") for k in range(10)])

    def total(theta):
        tr = simulate(net, [0.0, cfg.t_end], key=jax.random.PRNGKey(6), runs=GRADIENT_RUNS, params=theta,
                      estimator="thinning", max_steps=1000, on_exhausted="raise")
        return jnp.sum(tr.states[:, -1, outputs] @ READOUT)

    theta = {name: jnp.full((GRADIENT_RUNS,), net.parameters[name], jnp.float32) for name in names}
    grads = jax.grad(total)(theta)  # the per-trajectory trick: each trajectory has its own parameters
    general = np.stack([np.asarray(grads[name]) for name in names], axis=1)
    se = general.std(axis=0, ddof=1) / np.sqrt(GRADIENT_RUNS)
    z = _z(g, general.mean(axis=0), se)
    assert np.max(np.abs(z)) < 4.0, z


def test_straight_through_gradient_is_finite_and_informative():
    cfg = grn.CONFIGS["small"]
    params = grn.init_params(cfg, 0)
    x, y = load_mnist("train")
    xb = jnp.asarray(grn.image_counts(x[:32], cfg))

    def mean_count(p):
        out, *_ = grn.simulate_readout(p, xb, jax.random.PRNGKey(0), cfg)
        return jnp.mean(out[:, 0])

    g = jax.grad(mean_count)(params)
    for name, v in g.items():
        assert bool(jnp.all(jnp.isfinite(v))), name
    # raising output 0's maximal rate raises its count: E[O_0] is ~proportional to beta_0
    assert float(g["log_beta2"][0]) > 0 and float(jnp.max(jnp.abs(g["log_beta2"][1:]))) == 0.0
    assert float(jnp.sum(jnp.abs(g["W1"]))) > 0


def test_small_config_learns_and_resumes(tmp_path):
    """Train the small config on 3,200 images (50 steps; stopped after one step and resumed), then
    classify 500 held-out test images by exact simulation: far above the 10% of chance."""
    overrides = {"train_images": 3200, "val_images": 300, "val_every": 10_000, "checkpoint_seconds": 1e9}
    first = train("small", out_dir=tmp_path, seed=0, progress=False, max_seconds=0.0, overrides=overrides)
    assert first["stopped_early"] and first["steps"] == 1
    result = train("small", resume=str(tmp_path / "last.npz"), out_dir=tmp_path, progress=False)
    assert result["steps"] == 50 and not result["stopped_early"]
    params, opt, meta = load_checkpoint(tmp_path / "last.npz")
    assert meta["step"] == 50 and opt is not None and meta["parameters"] == grn.count_parameters(params)
    cfg = grn.GRNConfig.from_dict(meta["config"])
    assert cfg.hidden == 32 and cfg.train_images == 3200
    test_x, test_y = load_mnist("test")
    r = evaluate_params(params, cfg, test_x[:500], test_y[:500], seed=1)
    assert r["accuracy"] > 0.5, r
    json.dumps(result)
    # a resumed run may be extended by more epochs, and nothing else may change
    with pytest.raises(ValueError, match="only 'epochs' may change"):
        train("small", resume=str(tmp_path / "last.npz"), out_dir=tmp_path, progress=False, overrides={"hidden": 8})
    longer = train("small", resume=str(tmp_path / "last.npz"), out_dir=tmp_path, progress=False, max_seconds=0.0,
                   overrides={"epochs": 2})
    assert longer["steps"] == 51 and longer["stopped_early"] and longer["config"]["epochs"] == 2


def test_initial_parameters_use_all_64_bits_of_the_seed():
    """Seeds 0 and 2**32 gave the same network before integer seeds went through rng.as_key."""
    cfg = grn.CONFIGS["small"]
    a, b = (np.asarray(grn.init_params(cfg, seed)["W1"]) for seed in (0, 2**32))
    assert not np.array_equal(a, b)
