"""What ``simulate`` and ``gradient`` share: the model with its ``--param`` overrides, batched
simulation, and the provenance recorded with every output."""

from __future__ import annotations

from .. import __version__

__all__ = ["SIMULATION_BATCH", "load", "metadata", "parse_params", "simulate_in_batches"]

SIMULATION_BATCH = 10_000  # trajectories per compiled call; results depend only on --seed


def parse_params(items: list[str] | None) -> dict[str, float]:
    """``--param NAME=VALUE`` items -> {name: value}; ``ValueError`` naming a malformed item."""
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param {name.strip()}: {value!r} is not a number") from None
    return params


def load(path: str, params: dict[str, float], scale=None):
    """The network of a model file (``.rxn`` or SBML; ``scale``: SBML molecules per unit of substance)
    with ``params`` set; ``ValueError`` naming ``--param`` for an unknown parameter."""
    from ..io.language import load_network

    network = load_network(path, scale)
    try:
        network.check_parameter_names(params)
    except ValueError as err:
        raise ValueError(f"--param: {err}") from None
    return network.with_parameters(**params) if params else network


def metadata(args, command: str, network, overrides, **extra) -> dict:
    """Provenance of an output: version, command, model, all parameter values (overrides listed), seed..."""
    return {"diffssa_version": __version__, "command": command, "model": args.model,
            "parameters": {k: float(v) for k, v in network.parameters.items()}, "overridden": sorted(overrides),
            "seed": args.seed, "runs": args.runs, "max_steps": args.max_steps,
            **({"scale": args.scale} if args.scale is not None else {}), **extra}


def simulate_in_batches(network, times, runs, seed, max_steps, method="direct", on_exhausted="raise",
                        precision="auto"):
    """``runs`` trajectories at ``times`` (T,) in batches of ``SIMULATION_BATCH`` (a progress bar beyond
    one batch), joined into one :class:`~diffssa.simulation.trajectories.Trajectories` (states (runs, T, S))."""
    from ..simulation.batches import simulate_batches
    from ..simulation.trajectories import Trajectories

    return Trajectories.concatenate(list(simulate_batches(
        network, times, key=seed, runs=runs, batch_size=SIMULATION_BATCH, progress=runs > SIMULATION_BATCH,
        max_steps=max_steps, method=method, on_exhausted=on_exhausted, precision=precision)))
