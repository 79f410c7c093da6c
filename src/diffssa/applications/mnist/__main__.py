"""``python -m diffssa.applications.mnist --train ...`` / ``--evaluate CKPT``: prints the result as JSON."""

import json

from . import reproduce

print(json.dumps(reproduce()))
