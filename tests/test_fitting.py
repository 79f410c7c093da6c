"""diffssa.fitting.fit's options for noisy losses: skipped non-finite steps, projection, per-step callback."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffssa.fitting import fit
from diffssa.rng import as_key

TARGET = {"a": 2.0, "b": 0.5}
STEPS = 40


def _draw(key):
    return jax.random.uniform(jax.random.fold_in(key, 7))


def _loss(params, key):
    """Squared log error; a draw from the step's key makes some steps' loss NaN and others' gradient NaN."""
    u = _draw(key)
    value = sum((jnp.log(params[k]) - np.log(v)) ** 2 for k, v in TARGET.items())
    x = jnp.where((u >= 0.2) & (u < 0.4), -params["a"], params["a"])
    trap = jnp.where((u >= 0.2) & (u < 0.4), 0.0, 0.0 * jnp.sqrt(x))  # 0, with a NaN gradient in [0.2, 0.4)
    return jnp.where(u < 0.2, jnp.nan, value + trap)


def test_fit_skips_nonfinite_steps_and_reports_every_iterate():
    draws = np.array([float(_draw(jax.random.fold_in(as_key(3), i))) for i in range(STEPS)])
    expected = draws < 0.4  # step i uses the key fold_in(key, i)
    assert (draws < 0.2).any() and ((draws >= 0.2) & (draws < 0.4)).any() and expected.sum() < STEPS / 2
    with pytest.raises(FloatingPointError):
        fit(_loss, {"a": 1.0, "b": 1.0}, key=3, steps=STEPS, optimizer=optax.adam(0.1), progress=False)
    seen = []
    result = fit(_loss, {"a": 1.0, "b": 1.0}, key=3, steps=STEPS, optimizer=optax.adam(0.1), progress=False,
                 skip_nonfinite=True, callback=lambda step, iterate, loss: seen.append((step, iterate, loss)))
    np.testing.assert_array_equal(result.skipped, expected)
    assert [s for s, _, _ in seen] == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([loss for _, _, loss in seen], result.losses)
    assert np.all(np.isnan(result.losses[draws < 0.2])) and np.all(np.isfinite(result.losses[draws >= 0.2]))
    # the callback sees the log parameters after each update; a skipped step leaves them unchanged
    before = [{"a": 0.0, "b": 0.0}] + [iterate for _, iterate, _ in seen[:-1]]
    for skip, old, (_, new, _) in zip(expected, before, seen):
        assert (old == new) == skip
    for k in TARGET:
        np.testing.assert_allclose(np.exp([it[k] for _, it, _ in seen[:-1]]), result.history[k][1:], rtol=1e-6)
        np.testing.assert_allclose(result.params[k], np.exp(seen[-1][1][k]), rtol=1e-6)
        assert result.params[k] == pytest.approx(TARGET[k], rel=0.05)


def test_fit_projects_the_iterate_after_every_update():
    lo = np.float32(np.log(0.8))  # b may not go below 0.8 (its optimum is 0.5)
    result = fit(lambda p, key: sum((jnp.log(p[k]) - np.log(v)) ** 2 for k, v in TARGET.items()),
                 {"a": 1.0, "b": 1.0}, key=0, steps=STEPS, optimizer=optax.adam(0.1), progress=False,
                 project=lambda u: {**u, "b": jnp.maximum(u["b"], lo)})
    assert np.all(result.history["b"] >= 0.8 * (1 - 1e-6))
    assert result.params["b"] == pytest.approx(0.8, rel=1e-6)
    assert result.params["a"] == pytest.approx(TARGET["a"], rel=0.05)
    assert not result.skipped.any()
