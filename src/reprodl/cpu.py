"""The old path of :mod:`reprodl.env.cpu`: the same module under its former name."""

import sys

from reprodl.env import cpu as _cpu

sys.modules[__name__] = _cpu
