"""The old path of :mod:`reprodl.record.runrecord`: the same module under its former name."""

import sys

from reprodl.record import runrecord as _runrecord

sys.modules[__name__] = _runrecord
