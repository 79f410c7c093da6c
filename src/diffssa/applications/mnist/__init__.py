"""MNIST read by a 784-256-10 gene regulatory network, trained and evaluated by exact simulation.

Entry points for the command line (``diffssa reproduce mnist ...``):

* :func:`train` ``(config, resume, out_dir, seed, progress) -> dict``
* :func:`evaluate` ``(checkpoint, seed, progress) -> dict`` with ``accuracy``, ``parameters``,
  ``trajectories_per_image``, ``seconds`` (all 10,000 test images, exact simulation)
* :func:`reproduce` ``(argv)``: parses ``--train [--config small|full] [--resume CKPT] [--out DIR]``
  or ``--evaluate CKPT [--json]`` and returns the result dict.

See ``docs/mnist.md``.
"""

from __future__ import annotations

import argparse

from .grn import CONFIGS, GRNConfig, count_parameters, init_params
from .train import evaluate as _evaluate
from .train import train as _train

__all__ = ["train", "evaluate", "reproduce", "CONFIGS", "GRNConfig", "count_parameters", "init_params"]


def train(config: str = "full", resume: str | None = None, out_dir="mnist-run", seed: int = 0,
          progress: bool = True, **kwargs) -> dict:
    """Train the ``small`` or ``full`` config (or resume a checkpoint); see :func:`.train.train`."""
    return _train(config, resume=resume, out_dir=out_dir, seed=seed, progress=progress, **kwargs)


def evaluate(checkpoint, seed: int = 0, progress: bool = True, **kwargs) -> dict:
    """Test-set accuracy of a checkpoint by exact simulation; see :func:`.train.evaluate`."""
    return _evaluate(checkpoint, seed=seed, progress=progress, **kwargs)


def reproduce(argv=None) -> dict:
    """``--train [--config small|full] [--resume CKPT] [--out DIR] [--max-minutes M]`` or
    ``--evaluate CKPT [--images N] [--trajectories K]``; returns the result dict (the caller prints JSON)."""
    p = argparse.ArgumentParser(prog="diffssa reproduce mnist")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true")
    mode.add_argument("--evaluate", metavar="CHECKPOINT")
    p.add_argument("--config", choices=sorted(CONFIGS), default="full")
    p.add_argument("--resume", metavar="CHECKPOINT")
    p.add_argument("--out", default="mnist-run", help="checkpoint folder (training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, help="stop training (after a checkpoint) after this long")
    p.add_argument("--epochs", type=int, help="train this many epochs in all (also to extend a resumed run)")
    p.add_argument("--images", type=int, help="evaluate on the first N test images only")
    p.add_argument("--trajectories", type=int, default=1, help="trajectories per test image")
    p.add_argument("--json", action="store_true", help="(accepted; the result is always returned as a dict)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(list(argv) if argv is not None else None)
    if a.train:
        if a.epochs is not None and a.epochs < 1:
            p.error(f"--epochs must be a positive integer, got {a.epochs}")
        return train(a.config, a.resume, a.out, a.seed, not a.quiet,
                     max_seconds=None if a.max_minutes is None else 60 * a.max_minutes,
                     overrides=None if a.epochs is None else {"epochs": a.epochs})
    return evaluate(a.evaluate, a.seed, not a.quiet, images=a.images, trajectories=a.trajectories)


