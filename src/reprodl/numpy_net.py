"""The old path of :mod:`reprodl.book.numpy_net`: the same module under its former name."""

import sys

from reprodl.book import numpy_net as _numpy_net

sys.modules[__name__] = _numpy_net
