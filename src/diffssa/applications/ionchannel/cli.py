"""Command-line entry points of the ion-channel reproduction (wired into ``diffssa`` by the main CLI).

* ``reproduce(args)``: ``diffssa reproduce ionchannel --json`` runs the fits and prints one JSON line
  with every R^2 and the fitted rates.
* ``predict(args)``: ``diffssa ionchannel predict --model FILE.json --record FILE.scn --concentration UM
  --json`` predicts the dwell-time densities of a record from a fitted model (exact HJC densities at
  the record's concentration) and prints ``{"r2_open": ..., "r2_shut": ...}``.

Both take an ``argparse.Namespace``; :func:`add_reproduce_arguments` and :func:`add_predict_arguments`
declare the options on a (sub)parser. Bad input raises ``ValueError`` naming the file or option. JSON
output is strict, as the main CLI's: a non-finite number is written as ``null``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ...cli.output import strict_json
from .reproduce import GLYR_WINDOWS, LEARNING_RATE, TWO_CHANNEL_WINDOWS

__all__ = ["add_reproduce_arguments", "add_predict_arguments", "reproduce", "predict", "main"]

REPO = Path(__file__).resolve().parents[4]


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON line with every R^2 and the fitted rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=150, help="Adam steps of the GlyR simulation-based fit")
    parser.add_argument("--two-channel-steps", type=int, default=100, help="Adam steps of the two-channel fit")
    parser.add_argument("--windows", type=int, default=None,
                        help=f"simulated windows per record, scale and step (default {GLYR_WINDOWS} for GlyR, "
                             f"{TWO_CHANNEL_WINDOWS} for the two-channel fit)")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE,
                        help=f"Adam learning rate on log rates, both fits (default {LEARNING_RATE})")
    parser.add_argument("--perturb", type=float, default=1.0,
                        help="start the GlyR simulation-based fit from the reference rates each multiplied or "
                             "divided by PERTURB (> 1; a recovery experiment; default 1: from the reference rates)")
    parser.add_argument("--model-out", default=str(REPO / "models" / "glyr.json"), help="where to write the fitted GlyR model")
    parser.add_argument("--img-dir", default=str(REPO / "docs" / "img"), help="where to write the plots ('' for none)")
    parser.add_argument("--data", default=None, help="folder with the records (default ../shared/ionchannel or $DIFFSSA_SHARED/ionchannel)")
    parser.add_argument("--skip-two-channel", action="store_true")


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="fitted gating scheme (JSON, e.g. models/glyr.json)")
    parser.add_argument("--record", required=True, help="idealised single-channel record (.scn)")
    parser.add_argument("--concentration", type=float, required=True, help="agonist concentration of the record (uM)")
    parser.add_argument("--tres", type=float, default=None, help="resolution (ms); default the model's (30 us for GlyR)")
    parser.add_argument("--tcrit", type=float, default=None,
                        help="compare shut times below TCRIT ms only (bursts); default all shut times")
    parser.add_argument("--json", action="store_true")


def reproduce(args) -> int:
    """Run the GlyR and two-channel reproductions; print the summary (one JSON line with ``--json``)."""
    from .reproduce import reproduce_glyr, reproduce_two_channel

    quiet = getattr(args, "json", False)
    perturb = getattr(args, "perturb", 1.0)
    if not (math.isfinite(perturb) and perturb >= 1):
        raise ValueError(f"--perturb must be a factor >= 1, got {perturb!r}")
    log = (lambda m: print(m, file=sys.stderr, flush=True))
    img = getattr(args, "img_dir", None) or None
    glyr = reproduce_glyr(seed=getattr(args, "seed", 0), steps=getattr(args, "steps", 150),
                          windows=getattr(args, "windows", None) or GLYR_WINDOWS,
                          model_out=getattr(args, "model_out", None),
                          learning_rate=getattr(args, "learning_rate", LEARNING_RATE), perturb=perturb,
                          img_dir=img, root=getattr(args, "data", None), progress=log)
    out = {"glyr": glyr}
    if not getattr(args, "skip_two_channel", False):
        out["two_channel"] = reproduce_two_channel(seed=getattr(args, "seed", 0),
                                                   steps=getattr(args, "two_channel_steps", 100),
                                                   windows=getattr(args, "windows", None) or TWO_CHANNEL_WINDOWS,
                                                   img_dir=img,
                                                   learning_rate=getattr(args, "learning_rate", LEARNING_RATE),
                                                   root=getattr(args, "data", None), progress=log)
    if quiet:
        print(strict_json(out, sort_keys=True))
    else:
        print(strict_json(out, indent=2, sort_keys=True))
    return 0


def predict(args) -> int:
    """R^2 of a fitted model's exact dwell-time densities against a record (any record, any concentration)."""
    from .models import load_scheme
    from .records import read_scn
    from .reports import record_r2

    scheme = load_scheme(args.model)
    conc = float(args.concentration)
    if not (math.isfinite(conc) and conc > 0):
        raise ValueError(f"--concentration must be a positive number of uM, got {args.concentration!r}")
    tres = args.tres if getattr(args, "tres", None) is not None else float(scheme.meta.get("tres_ms", 0.03))
    if not tres > 0:
        raise ValueError(f"--tres must be positive, got {tres!r}")
    tcrit = getattr(args, "tcrit", None)
    if tcrit is not None and not tcrit > tres:
        raise ValueError(f"--tcrit must exceed the resolution ({tres} ms), got {tcrit!r}")
    record = read_scn(args.record)
    r2 = record_r2(scheme, conc, record, tres, tcrit=tcrit)
    out = {"r2_open": round(r2["r2_open"], 6), "r2_shut": round(r2["r2_shut"], 6)}
    if getattr(args, "json", False):
        print(strict_json(out))
    else:
        print(f"{Path(args.record).name} at {conc:g} uM, tres {tres:g} ms: R^2 open {out['r2_open']:.4f}, "
              f"shut {out['r2_shut']:.4f} ({r2['n_open']} open, {r2['n_shut']} shut periods)")
    return 0


def main(argv=None) -> int:
    """Stand-alone runner: ``python -m diffssa.applications.ionchannel.cli {reproduce,predict} ...``."""
    parser = argparse.ArgumentParser(prog="python -m diffssa.applications.ionchannel.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_reproduce_arguments(sub.add_parser("reproduce"))
    add_predict_arguments(sub.add_parser("predict"))
    args = parser.parse_args(argv)
    try:
        return reproduce(args) if args.command == "reproduce" else predict(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
