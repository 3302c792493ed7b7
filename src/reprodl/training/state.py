"""The old path of :mod:`reprodl.record.state`: the same module under its former name."""

import sys

from reprodl.record import state as _state

sys.modules[__name__] = _state
