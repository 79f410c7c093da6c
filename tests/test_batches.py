"""Batched simulation (diffssa.simulation.batches), batch keys (diffssa.rng.batches), the progress fallback."""

import builtins

import jax
import numpy as np
import pytest
from conftest import immigration_death

from diffssa import Trajectories, simulate
from diffssa.progress import progress_bar
from diffssa.rng import as_key, batches
from diffssa.simulation.batches import simulate_batches

TIMES = [0.0, 1.0, 4.0]


def test_batch_keys_fold_the_seed():
    got = list(batches(7, runs=10, size=4))
    assert [(start, count) for _, start, count in got] == [(0, 4), (4, 4), (8, 2)]
    for i, (k, _, _) in enumerate(got):
        np.testing.assert_array_equal(np.asarray(k), np.asarray(jax.random.fold_in(as_key(7), i)))
    with pytest.raises(ValueError, match="batch size"):
        list(batches(7, runs=10, size=0))


def test_batches_are_the_simulations_of_their_keys():
    """Each batch is exactly ``simulate`` with its folded key; per-run params and initial states are sliced."""
    network = immigration_death()
    k = np.linspace(1.0, 20.0, 10)
    x0 = np.arange(10)[:, None]
    parts = list(simulate_batches(network, TIMES, key=3, runs=10, batch_size=4, params={"k": k}, initial=x0))
    assert [p.states.shape[0] for p in parts] == [4, 4, 2]
    for (key, start, count), part in zip(batches(3, 10, 4), parts):
        alone = simulate(network, TIMES, key=key, runs=count, params={"k": k[start:start + count]},
                         initial=x0[start:start + count])
        np.testing.assert_array_equal(np.asarray(part.states), np.asarray(alone.states))
    joined = Trajectories.concatenate(parts)
    assert joined.states.shape == (10, 3, 1)
    np.testing.assert_array_equal(joined.states[:, 0, 0], np.arange(10))


def test_concatenate_refuses_derivative_terms_and_mixed_grids():
    network = immigration_death()
    a = simulate(network, TIMES, key=0, runs=2)
    b = simulate(network, [0.0, 2.0, 4.0], key=0, runs=2)
    with pytest.raises(ValueError, match="different grids"):
        Trajectories.concatenate([a, b])

    def traced(k):
        tr = simulate(network, TIMES, key=0, runs=2, params={"k": k}, estimator="score-function")
        with pytest.raises(ValueError, match="forward-only"):
            Trajectories.concatenate([tr, tr])
        return tr.mean()[-1, 0]

    jax.grad(traced)(10.0)


def test_progress_bar_without_tqdm(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with progress_bar(total=3, desc="x") as bar:
        bar.update(3)
        bar.set_postfix(loss=1.0)
    assert list(progress_bar(range(3))) == [0, 1, 2]
