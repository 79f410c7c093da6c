"""Training (resumable, checkpointed) and exact-simulation evaluation of the MNIST gene network."""

from __future__ import annotations

import json
import math
import os
import time
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...progress import progress_bar
from ...rng import as_key
from . import grn
from .data import load_mnist
from .grn import GRNConfig

__all__ = [
    "make_optimizer",
    "make_train_step",
    "make_evaluator",
    "evaluate_params",
    "save_checkpoint",
    "load_checkpoint",
    "train",
    "evaluate",
]


def make_optimizer(config: GRNConfig, steps_per_epoch: int):
    decay = config.lr_decay_per_epoch
    if decay == 1.0:
        schedule = config.learning_rate
    else:
        schedule = optax.exponential_decay(config.learning_rate, steps_per_epoch, decay)
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))


def _project(params, config: GRNConfig):
    """Keep the production-rate caps (they bound the events per trajectory)."""
    params = dict(params)
    params["log_beta1"] = jnp.minimum(params["log_beta1"], math.log(config.beta_hidden_max))
    params["log_beta2"] = jnp.minimum(params["log_beta2"], math.log(config.beta_out_max))
    return params


def loss_fn(params, x_in, labels, key, config: GRNConfig):
    """Cross-entropy of ``softmax(logit_scale * output counts at t_end)``, one trajectory per image."""
    y, steps, exhausted, _ = grn.simulate_readout(params, x_in, key, config)
    logits = config.logit_scale * y
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    correct = jnp.mean((grn.predict(y, jax.random.fold_in(key, 7)) == labels).astype(jnp.float32))
    return loss, {"accuracy": correct, "steps": jnp.mean(steps), "max_steps": jnp.max(steps),
                  "exhausted": jnp.mean(exhausted.astype(jnp.float32))}


@lru_cache(maxsize=8)
def make_train_step(config: GRNConfig, steps_per_epoch: int):
    """``(optimizer, jitted step)``; cached per configuration so a resumed run reuses the compilation."""
    optimizer = make_optimizer(config, steps_per_epoch)

    @jax.jit
    def train_step(params, opt_state, x_in, labels, key):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x_in, labels, key, config)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = _project(optax.apply_updates(params, updates), config)
        return params, opt_state, dict(aux, loss=loss)

    return optimizer, train_step


@lru_cache(maxsize=8)
def make_evaluator(config: GRNConfig):
    @jax.jit
    def run(params, x_in, key):
        y, events, _ = grn.simulate_readout_exact(params, x_in, key, config)
        return y, events

    return run


def evaluate_params(params, config: GRNConfig, images, labels, *, seed: int = 0, trajectories: int = 1,
                    batch: int | None = None, progress: bool = False, desc: str = "evaluate") -> dict:
    """Accuracy by exact simulation (direct method): each image gets ``trajectories`` independent
    trajectories; the prediction is the output gene with the most copies summed over them."""
    batch = batch or config.eval_batch
    run = make_evaluator(config)
    key = as_key(seed)
    n = len(labels)
    correct, events = 0, 0.0
    start = time.perf_counter()
    bar = progress_bar(total=n, desc=desc, disable=not progress, unit="img")
    for i, lo in enumerate(range(0, n, batch)):
        xb = grn.image_counts(images[lo : lo + batch], config)
        m = len(xb)
        if m < batch:  # pad to one compiled shape
            xb = np.concatenate([xb, np.zeros((batch - m, xb.shape[1]), xb.dtype)])
        total = jnp.zeros((batch, grn.N_CLASSES))
        for r in range(trajectories):
            k = jax.random.fold_in(jax.random.fold_in(key, i), r)
            y, ev = run(params, jnp.asarray(xb), k)
            total = total + y
            events += float(jnp.sum(ev[:m]))
        pred = np.asarray(grn.predict(total, jax.random.fold_in(key, 10_000_000 + i)))[:m]
        correct += int(np.sum(pred == labels[lo : lo + batch]))
        bar.update(m)
        bar.set_postfix(acc=f"{correct / min(lo + m, n):.4f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {"accuracy": correct / n, "images": n, "trajectories_per_image": trajectories,
            "events_per_trajectory": events / (n * trajectories), "seconds": seconds}


# ---------------------------------------------------------------------------------------------
# Checkpoints: one .npz with parameters, optimiser state, position and history
# ---------------------------------------------------------------------------------------------


def save_checkpoint(path, params, opt_state, meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    if opt_state is not None:
        for i, leaf in enumerate(jax.tree_util.tree_leaves(opt_state)):
            arrays[f"opt/{i:04d}"] = np.asarray(leaf)
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_checkpoint(path):
    """``(params, opt_leaves or None, meta)``."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        params = {k.split("/", 1)[1]: jnp.asarray(z[k]) for k in z.files if k.startswith("param/")}
        opt = [jnp.asarray(z[k]) for k in sorted(f for f in z.files if f.startswith("opt/"))]
    return params, (opt or None), meta


def _split(config: GRNConfig):
    images, labels = load_mnist("train")
    n_train = min(config.train_images, 60_000 - config.val_images)
    return (images[:n_train], labels[:n_train]), (images[60_000 - config.val_images :], labels[60_000 - config.val_images :])


def train(config: str | GRNConfig = "full", resume: str | None = None, out_dir="mnist-run", seed: int = 0,
          progress: bool = True, max_seconds: float | None = None, overrides: dict | None = None) -> dict:
    """Train with Adam through the exact simulator; resumable.

    Writes ``out_dir/last.npz`` every ``checkpoint_seconds`` and at the end of every epoch, and
    ``out_dir/best.npz`` whenever the validation accuracy (exact simulation on the held-out last
    ``val_images`` of the training split) improves. ``resume`` continues from a checkpoint (config,
    parameters, optimiser state, position in the epoch, history; ``overrides={"epochs": N}`` may
    extend it, nothing else may change). ``max_seconds`` stops early
    (after saving) so a long run can be continued later.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        params, opt_leaves, meta = load_checkpoint(resume)
        cfg = GRNConfig.from_dict(meta["config"])
        seed = meta.get("seed", seed)
        extend = dict(overrides or {})
        if set(extend) - {"epochs"}:
            raise ValueError(f"a resumed run keeps its configuration; only 'epochs' may change, got {sorted(extend)}")
        if extend:  # more epochs continue the same schedule (the learning rate decays per epoch)
            cfg = cfg.replace(epochs=int(extend["epochs"]))
    else:
        cfg = grn.CONFIGS[config] if isinstance(config, str) else config
        if overrides:
            cfg = cfg.replace(**overrides)
        params, opt_leaves, meta = grn.init_params(cfg, as_key(seed)), None, None
    (train_x, train_y), (val_x, val_y) = _split(cfg)
    steps_per_epoch = len(train_y) // cfg.batch
    optimizer, train_step = make_train_step(cfg, steps_per_epoch)
    opt_state = optimizer.init(params)
    if opt_leaves is not None:
        opt_state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(opt_state), opt_leaves)
    step = meta["step"] if meta else 0
    history = meta["history"] if meta else []
    best = meta.get("best_val_accuracy", -1.0) if meta else -1.0
    wall = meta.get("train_seconds", 0.0) if meta else 0.0
    key = as_key((seed + 1) % 2**64)
    total_steps = steps_per_epoch * cfg.epochs

    def meta_now():
        return {"config": cfg.to_dict(), "seed": seed, "step": step, "epoch": step / steps_per_epoch,
                "history": history, "best_val_accuracy": best, "train_seconds": wall + time.perf_counter() - start,
                "parameters": grn.count_parameters(params), "steps_per_epoch": steps_per_epoch}

    def validate():
        nonlocal best
        r = evaluate_params(params, cfg, val_x, val_y, seed=seed + 1000 + step, progress=False)
        improved = r["accuracy"] > best
        if improved:
            best = r["accuracy"]
        history.append({"step": step, "epoch": round(step / steps_per_epoch, 4), "val_accuracy": r["accuracy"],
                        "val_images": r["images"], "events_per_trajectory": r["events_per_trajectory"],
                        "train_seconds": round(wall + time.perf_counter() - start, 1)})
        if improved:
            save_checkpoint(out_dir / "best.npz", params, opt_state, meta_now())
        return r

    bar = progress_bar(total=total_steps, initial=step, desc=f"train {cfg.hidden}-hidden", disable=not progress, unit="step")
    last_save = time.perf_counter()
    running = None
    stopped = False
    while step < total_steps:
        epoch, pos = divmod(step, steps_per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(train_y))
        idx = order[pos * cfg.batch : (pos + 1) * cfg.batch]
        x_in = jnp.asarray(grn.image_counts(train_x[idx], cfg))
        params, opt_state, aux = train_step(params, opt_state, x_in, jnp.asarray(train_y[idx]),
                                            jax.random.fold_in(key, step))
        step += 1
        aux = {k: float(v) for k, v in aux.items()}
        running = aux if running is None else {k: 0.95 * running[k] + 0.05 * aux[k] for k in aux}
        bar.update(1)
        bar.set_postfix(loss=f"{running['loss']:.3f}", acc=f"{running['accuracy']:.3f}",
                        steps=f"{running['steps']:.0f}", best_val=f"{best:.4f}")
        if not math.isfinite(aux["loss"]):
            raise FloatingPointError(f"non-finite loss at step {step}")
        if aux["exhausted"] > 0:
            history.append({"step": step, "warning": f"{aux['exhausted']:.4f} of the batch exhausted max_steps"})
        if step % cfg.val_every == 0 or step == total_steps:
            validate()
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if step % steps_per_epoch == 0 or time.perf_counter() - last_save > cfg.checkpoint_seconds or out_of_time:
            save_checkpoint(out_dir / "last.npz", params, opt_state, meta_now())
            last_save = time.perf_counter()
        if out_of_time:
            stopped = True
            break
    bar.close()
    if best < 0 or (history and history[-1].get("step") != step):
        validate()
    save_checkpoint(out_dir / "last.npz", params, opt_state, meta_now())
    return {"config": cfg.to_dict(), "steps": step, "epochs": step / steps_per_epoch, "stopped_early": stopped,
            "best_val_accuracy": best, "last_val_accuracy": next((h["val_accuracy"] for h in reversed(history)
                                                                  if "val_accuracy" in h), None),
            "train_seconds": wall + time.perf_counter() - start, "parameters": grn.count_parameters(params),
            "best_checkpoint": str(out_dir / "best.npz"), "last_checkpoint": str(out_dir / "last.npz")}


def evaluate(checkpoint, seed: int = 0, progress: bool = True, images: int | None = None,
             trajectories: int = 1) -> dict:
    """Test accuracy on the 10,000 MNIST test images (or the first ``images``), by exact simulation."""
    params, _, meta = load_checkpoint(checkpoint)
    cfg = GRNConfig.from_dict(meta["config"])
    test_x, test_y = load_mnist("test")
    if images is not None:
        test_x, test_y = test_x[:images], test_y[:images]
    r = evaluate_params(params, cfg, test_x, test_y, seed=seed, trajectories=trajectories, progress=progress,
                        desc="test (exact simulation)")
    return {"accuracy": r["accuracy"], "parameters": grn.count_parameters(params),
            "trajectories_per_image": trajectories, "seconds": round(r["seconds"], 2), "images": r["images"],
            "events_per_trajectory": round(r["events_per_trajectory"], 1), "hidden_genes": cfg.hidden,
            "readout_time": cfg.t_end, "training_epochs": round(meta.get("epoch", 0.0), 3),
            "training_seconds": round(meta.get("train_seconds", 0.0), 1), "seed": seed}
