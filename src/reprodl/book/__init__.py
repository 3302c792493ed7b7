"""Chapter aids: code only the book's pages need. The NumPy network of chapter 5
(:mod:`~reprodl.book.numpy_net`), simulated GPU atomics (:mod:`~reprodl.book.simulate`), variation
on a real device (:mod:`~reprodl.book.gpu`), the figures (:mod:`~reprodl.book.plots`), fresh
interpreters for start-up settings (:mod:`~reprodl.book.fresh_process`), the plain-Keras recipe
and its variants (:mod:`~reprodl.book.recipe`) and the cross-CPU battery
(:mod:`~reprodl.book.crosscheck`).

These modules may pin the process when imported (most import :mod:`reprodl.runtime` first);
importing ``reprodl.book`` alone imports none of them. The old paths (``reprodl.numpy_net`` ...)
are the same modules under their former names.
"""
