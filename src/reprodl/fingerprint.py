"""The old path of :mod:`reprodl.record.fingerprint`: the same module under its former name."""

import sys

from reprodl.record import fingerprint as _fingerprint

sys.modules[__name__] = _fingerprint
