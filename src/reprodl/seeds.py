"""Everything that derives or applies seeds: one run seed, the seeds it stands for, and the globals.

A run has three sources of randomness, each with a seed of its own in :class:`Seeds`: the initial
weights (``init``), the batch order (``order``) and the dropout masks (``dropout``). Seeds for
several layers, or for dropout, are derived from one number by a single recipe,
:func:`derive_seeds` (:class:`numpy.random.SeedSequence`), so no two layers share a random stream.
The numbers are a contract: every stored run's bits depend on them (``tests/test_seeds.py`` pins
them). The batch order of an epoch is :func:`reprodl.batches.epoch_permutation` of
``(seed, epoch)``. :func:`seed_globals` and :func:`fresh_entropy` set the global generators.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reprodl.errors import UsageError

#: The sources of randomness of a training run that :class:`Seeds` names one by one.
SOURCES = ("init", "order", "dropout")

#: Conditions of :func:`seeds_for` (and :func:`reprodl.experiments.decompose`): vary one source
#: only, or all of them together.
CONDITIONS = (*SOURCES, "all")

#: The key under which dropout seeds are derived, apart from initializer seeds (key-less).
DROPOUT_KEY = 1

_LIMIT = 2**31 - 1  # derived seeds lie in 0..2**31 - 2: valid for Keras, TensorFlow and NumPy


def derive_seeds(key: int | Sequence[int], count: int) -> list[int]:
    """``count`` independent seeds from ``key`` (an int, or ints such as ``[seed, DROPOUT_KEY]``).

    The one recipe: ``SeedSequence(key).generate_state(count) % (2**31 - 1)``.
    """
    if count < 1:
        raise UsageError(f"count must be positive, got {count}")
    state = np.random.SeedSequence(key).generate_state(count)
    return [int(s) for s in state % _LIMIT]


def layer_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds derived from one, so no two layers share a random stream."""
    return derive_seeds(seed, count)


def dropout_seeds(dropout_seed: int, count: int) -> list[int]:
    """Seeds for ``count`` dropout layers, from a stream of their own (key 1 of ``dropout_seed``).

    Keras draws stateless random numbers: a ``Dropout(seed=s)`` mask and a
    ``GlorotUniform(seed=s)`` matrix use the same numbers. A separate key keeps
    ``dropout_seed == seed`` from reusing an initializer's seed.
    """
    return derive_seeds([dropout_seed, DROPOUT_KEY], count)


def dropout_seed_for(seed: int) -> int:
    """The dropout seed that goes with run seed ``seed``: a separate stream, never ``seed`` itself.

    Keras draws with stateless generators: a ``Dropout(seed=s)`` layer's first mask and a
    ``GlorotUniform(seed=s)`` weight matrix come from the *same* numbers. Passing one number as
    both the init seed and the dropout seed therefore couples them; this is the first of
    :func:`dropout_seeds` of ``seed``.
    """
    return dropout_seeds(seed, 1)[0]


@dataclass(frozen=True)
class Seeds:
    """The three seeds of one run: weight initialisation, batch order and dropout masks."""

    init: int
    order: int
    dropout: int

    @classmethod
    def from_seed(cls, seed: int) -> Seeds:
        """What one run seed means: ``init`` and ``order`` are ``seed``, ``dropout`` is derived."""
        return cls(init=seed, order=seed, dropout=dropout_seed_for(seed))


def seeds_for(condition: str, seed: int, base: int = 0) -> Seeds:
    """The seeds of a run that varies only ``condition``: that source from ``seed``, the others
    from ``base`` (both through :meth:`Seeds.from_seed`); ``"all"`` is ``Seeds.from_seed(seed)``."""
    if condition not in CONDITIONS:
        raise UsageError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    if condition == "all":
        return Seeds.from_seed(seed)
    varied = Seeds.from_seed(seed)
    fixed = Seeds.from_seed(base)
    return Seeds(**{s: getattr(varied if s == condition else fixed, s) for s in SOURCES})


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's, TensorFlow's and Keras' global random generators with ``seed``.

    What :func:`reprodl.setup` does for seeding, without touching the other pins (so an
    experiment that turned op determinism off keeps it off).
    """
    import keras

    keras.utils.set_random_seed(seed)


def fresh_entropy() -> None:
    """Re-seed every global random generator from the operating system: "no seeds".

    A freshly started process that nobody seeds gets its randomness from ``os.urandom``:
    Python's ``random`` at start-up, NumPy's global state at import, TensorFlow's op seeds from
    the system. After :func:`reprodl.setup` those generators are seeded, so leaving the seed out
    of a later call would *not* give an unseeded run. This puts the OS back in charge: Python's
    and NumPy's generators are re-seeded from ``os.urandom``, TensorFlow's and Keras' global seed
    is a fresh 32-bit number from :mod:`secrets`. Nothing is recorded, so nothing can replay it.

    It is a simulation, not a fresh process: TensorFlow keeps a global seed (a random one), which a
    new process does not have and which op determinism needs, and with a global seed Keras 3.15's
    ``fit(shuffle=True)`` repeats one order in every epoch. For runs that must be unseeded in every
    respect, start a new interpreter (:mod:`reprodl.book.fresh_process`, as chapter 1 does).
    """
    import keras

    keras.utils.set_random_seed(secrets.randbits(32))  # TF global seed, Keras' seed generator
    random.seed()  # Python: seeded from os.urandom, as at interpreter start
    np.random.seed()  # NumPy's legacy global state: fresh OS entropy, as at import
