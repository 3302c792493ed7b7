"""``python -m reprodl``: see :mod:`reprodl.cli`."""

import sys

from reprodl.cli import main

sys.exit(main())
