"""The ``diffssa`` command line: simulate, differentiate, check conformance, reproduce the paper.

Every command reads a model file (the reaction language ``.rxn`` or SBML ``.xml``/``.sbml``), takes an
explicit ``--seed`` (any integer in [-2**63, 2**64): all 64 bits count, negative seeds are read as
two's complement), and checks its input and output paths before simulating. Exit status: 0 success;
1 ``dsmts``: some case failed; 2 bad input, with a one-line message ``diffssa: error: ...`` naming the
item; 3 trajectories ran out of the step budget (``--max-steps``; ``simulate --allow-exhausted`` writes
the output anyway, with a warning).

Modules: :mod:`.arguments` (argument types, exit statuses), :mod:`.parser` (the commands and their
options), :mod:`.simulate`, :mod:`.gradient` (sharing :mod:`.runs`), :mod:`.dsmts`, :mod:`.reproduce`
(``reproduce``, ``demo``, ``ionchannel``), :mod:`.output` (writers and size limits). ``simulate`` and
``gradient`` need neither pandas nor tqdm; ``--plot`` needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import sys

from ..devices import use_cpu_cores
from .arguments import EXIT_BUDGET, BudgetExhausted
from .parser import build_parser

__all__ = ["EXIT_BUDGET", "main"]


def _status(exit: SystemExit) -> int:
    """The exit status of argparse's ``SystemExit``: --help (0) or a bad option (2, message printed)."""
    return exit.code if isinstance(exit.code, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Run ``diffssa`` with ``argv`` (default: ``sys.argv[1:]``); the exit status."""
    use_cpu_cores()  # one JAX device per core: simulations split their batch over all of them
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        return _status(exit)
    try:
        return args.func(args)
    except BudgetExhausted as err:
        print(f"diffssa: error: {err}", file=sys.stderr)
        return EXIT_BUDGET
    except (ValueError, OSError) as err:
        print(f"diffssa: error: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit:  # a sub-parser's bad option (reproduce, ionchannel)
        return _status(exit)
