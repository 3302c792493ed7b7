"""The old path of :mod:`reprodl.book.crosscheck`: the same module under its former name."""

import sys

from reprodl.book import crosscheck as _crosscheck

sys.modules[__name__] = _crosscheck
