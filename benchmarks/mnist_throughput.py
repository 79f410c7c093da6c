"""Throughput of the MNIST gene network (full config unless --config small): training and exact evaluation.

Prints one JSON object:
  training: optimiser steps/s, images/s, simulation steps (events incl. null events) per image and
            trajectory-steps/s, for batches of --batch images (one trajectory each), forward + backward;
  evaluation: images/s and reaction events/s of the forward-only exact simulator (direct method).
Compilation is excluded (one warm-up call each). Example:

  .venv/bin/python benchmarks/mnist_throughput.py --config full --repeats 5 --eval-images 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffssa.applications.mnist import grn
from diffssa.applications.mnist.data import load_mnist
from diffssa.applications.mnist.train import make_evaluator, make_train_step


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="full", choices=sorted(grn.CONFIGS))
    p.add_argument("--checkpoint", help="use trained parameters (event counts depend on them)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval-images", type=int, default=500)
    p.add_argument("--eval-batch", type=int, default=500)
    a = p.parse_args(argv)
    cfg = grn.CONFIGS[a.config]
    if a.batch:
        cfg = cfg.replace(batch=a.batch)
    if a.checkpoint:
        from diffssa.applications.mnist.train import load_checkpoint

        params, _, meta = load_checkpoint(a.checkpoint)
        cfg = grn.GRNConfig.from_dict(meta["config"]).replace(batch=cfg.batch)
    else:
        params = grn.init_params(cfg, 0)
    x, y = load_mnist("train")
    optimizer, step = make_train_step(cfg, 1000)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)

    def batch():
        idx = rng.choice(len(y), cfg.batch, replace=False)
        return jnp.asarray(grn.image_counts(x[idx], cfg)), jnp.asarray(y[idx])

    xb, yb = batch()
    t0 = time.perf_counter()
    out = step(params, opt_state, xb, yb, jax.random.PRNGKey(0))
    jax.block_until_ready(out)
    compile_train = time.perf_counter() - t0
    times, sim_steps = [], []
    p_, s_ = params, opt_state
    for r in range(a.repeats):
        xb, yb = batch()
        t0 = time.perf_counter()
        p_, s_, aux = step(p_, s_, xb, yb, jax.random.PRNGKey(r + 1))
        jax.block_until_ready(p_)
        times.append(time.perf_counter() - t0)
        sim_steps.append(float(aux["steps"]))
    t_train = float(np.median(times))
    evaluator = make_evaluator(cfg.replace(eval_batch=a.eval_batch))
    xt, _ = load_mnist("test")
    xe = [jnp.asarray(grn.image_counts(xt[i : i + a.eval_batch], cfg)) for i in range(0, a.eval_images, a.eval_batch)]
    t0 = time.perf_counter()
    jax.block_until_ready(evaluator(params, xe[0], jax.random.PRNGKey(0)))
    compile_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = 0.0
    for i, xb in enumerate(xe):
        yy, ev = evaluator(params, xb, jax.random.PRNGKey(i + 1))
        events += float(jnp.sum(ev))
    t_eval = time.perf_counter() - t0
    n_eval = len(xe) * a.eval_batch
    steps_per_image = float(np.mean(sim_steps))
    result = {
        "config": a.config,
        "checkpoint": a.checkpoint,
        "hidden_genes": cfg.hidden,
        "parameters": grn.count_parameters(params),
        "training": {
            "batch": cfg.batch,
            "optimizer_steps_per_second": 1.0 / t_train,
            "images_per_second": cfg.batch / t_train,
            "simulation_steps_per_image": steps_per_image,
            "trajectory_steps_per_second": cfg.batch * steps_per_image / t_train,
            "seconds_per_epoch_60k": 60_000 / (cfg.batch / t_train),
            "compile_seconds": compile_train,
        },
        "evaluation": {
            "batch": a.eval_batch,
            "images": n_eval,
            "images_per_second": n_eval / t_eval,
            "events_per_image": events / n_eval,
            "events_per_second": events / t_eval,
            "seconds_for_10k_test_images": 10_000 / (n_eval / t_eval),
            "compile_seconds": compile_eval,
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"({jax.default_backend()})",
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
