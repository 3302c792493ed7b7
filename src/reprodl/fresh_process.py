"""The old path of :mod:`reprodl.book.fresh_process`: the same module under its former name."""

import sys

from reprodl.book import fresh_process as _fresh_process

sys.modules[__name__] = _fresh_process
