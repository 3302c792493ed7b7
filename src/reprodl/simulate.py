"""The old path of :mod:`reprodl.book.simulate`: the same module under its former name."""

import sys

from reprodl.book import simulate as _simulate

sys.modules[__name__] = _simulate
