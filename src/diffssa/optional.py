"""Optional dependencies (the extras in pyproject.toml), imported when a feature needs them.

The core (models, SBML, simulation, gradients, fitting, the command line's CSV/JSON output) needs
JAX, optax, numpy and python-libsbml only. Plots need the ``plot`` extra (matplotlib), data frames
``dataframe`` (pandas), the ion-channel reproduction ``ionchannel`` (scipy, pyabf); progress bars use
``progress`` (tqdm) when it is there (:mod:`diffssa.progress`). ``all`` installs every one.
"""

from __future__ import annotations

import importlib

__all__ = ["require", "pyplot"]


def require(module: str, extra: str, purpose: str):
    """``module`` imported, or ``ImportError`` saying that ``purpose`` needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{purpose} needs {module.split('.')[0]}: pip install 'diffssa[{extra}]'") from None


def pyplot(purpose: str):
    """``matplotlib.pyplot`` on the file-only Agg backend (the ``plot`` extra), for ``purpose``."""
    matplotlib = require("matplotlib", "plot", purpose)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plot", purpose)
