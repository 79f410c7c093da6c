"""The MNIST gene network: parameter count, IDX reader, exactness of the specialised simulator, learning."""

import gzip
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
