"""The old path of :mod:`reprodl.book.plots`: the same module under its former name."""

import sys

from reprodl.book import plots as _plots

sys.modules[__name__] = _plots
