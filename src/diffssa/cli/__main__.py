"""``python -m diffssa.cli``: the ``diffssa`` command."""

import sys

from . import main

sys.exit(main())
