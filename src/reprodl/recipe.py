"""The old path of :mod:`reprodl.book.recipe`: the same module under its former name."""

import sys

from reprodl.book import recipe as _recipe

sys.modules[__name__] = _recipe
