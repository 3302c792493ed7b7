"""The old path of :mod:`reprodl.book.gpu`: the same module under its former name."""

import sys

from reprodl.book import gpu as _gpu

sys.modules[__name__] = _gpu
