"""Repeated training runs across seeds, and the statistics that summarise them.

When runs differ, one run says little. :func:`repeat` calls a training function once per seed, or
a number of times with fresh, unrecorded entropy ("no seeds"), and keeps every result with its
score in a :class:`Runs`; :func:`summarise` gives the mean, the spread and a 95% confidence
interval. Before each run the global random generators are reset (to the run's seed, or to fresh
entropy), so a run's result depends on its seed only, never on what ran before it.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Generic, TypeVar

import numpy as np

R = TypeVar("R")

#: Two-sided 95% quantiles of Student's t distribution (the 0.975 quantile), degrees of freedom
#: 1 to 30. Beyond 30, :func:`t_quantile_975` uses the Cornish-Fisher expansion.
_T975 = (
    12.7062,
    4.3027,
    3.1824,
    2.7764,
    2.5706,
    2.4469,
    2.3646,
    2.3060,
    2.2622,
    2.2281,
    2.2010,
    2.1788,
    2.1604,
    2.1448,
    2.1314,
    2.1199,
    2.1098,
    2.1009,
    2.0930,
    2.0860,
    2.0796,
    2.0739,
    2.0687,
    2.0639,
    2.0595,
    2.0555,
    2.0518,
    2.0484,
    2.0452,
    2.0423,
)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (for 95% intervals)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (``ddof=1``), extremes and median of a set of scores."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    median: float

    @property
    def spread(self) -> float:
        """``max - min``: the range a single run can land anywhere in."""
        return self.max - self.min

    @property
    def sem(self) -> float:
        """Standard error of the mean (NaN for a single run)."""
        return self.std / math.sqrt(self.n) if self.n > 1 else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        """95% confidence interval of the mean (Student's t; NaN bounds for a single run)."""
        if self.n < 2:
            return (float("nan"), float("nan"))
        half = t_quantile_975(self.n - 1) * self.sem
        return (self.mean - half, self.mean + half)

    def describe(self, fmt: str = "{:.4f}") -> str:
        """One line: ``n``, mean ± std, min, max, 95% interval of the mean, each with ``fmt``."""
        f = fmt.format
        text = f"n={self.n}: mean {f(self.mean)}"
        if self.n > 1:
            low, high = self.ci95
            text += f" ± {f(self.std)} (std), 95% CI of the mean [{f(low)}, {f(high)}]"
        return text + f", min {f(self.min)}, max {f(self.max)}"


def summarise(scores: Sequence[float] | np.ndarray) -> Summary:
    """Summary statistics of ``scores`` (at least one, all finite), computed in float64."""
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("scores must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(a)):
        raise ValueError("scores must be finite")
    return Summary(
        n=int(a.size),
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if a.size > 1 else float("nan"),
        min=float(a.min()),
        max=float(a.max()),
        median=float(np.median(a)),
    )


def distinct(values: Sequence[Hashable]) -> int:
    """How many different values there are (floats compare exactly: bit-equal or not)."""
    return len(set(values))


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
    """
    import keras

    keras.utils.set_random_seed(secrets.randbits(32))  # TF global seed, Keras' seed generator
    random.seed()  # Python: seeded from os.urandom, as at interpreter start
    np.random.seed()  # NumPy's legacy global state: fresh OS entropy, as at import


def _as_score(result: object) -> float:
    if isinstance(result, Real):
        return float(result)
    raise TypeError(
        f"the run returned a {type(result).__name__}, not a number: pass score= to pick its score"
    )


@dataclass
class Runs(Generic[R]):
    """The results of repeated runs: one entry per run, in the order they ran."""

    seeds: list[int | None]
    results: list[R]
    scores: np.ndarray  # float64, one per run
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.results)

    def summary(self) -> Summary:
        """:func:`summarise` of the scores."""
        return summarise(self.scores)

    def distinct(self, key: Callable[[R], Hashable] | None = None) -> int:
        """How many different scores (or different ``key(result)``, e.g. fingerprints) there are."""
        if key is None:
            return distinct(self.scores.tolist())
        return distinct([key(r) for r in self.results])

    def lines(self, fmt: Callable[[float], str] = "{:.4f}".format) -> list[str]:
        """One line per run: its number, its seed ("none" when unseeded) and its score."""
        width = len(str(len(self)))
        return [
            f"run {i + 1:>{width}}  seed {'none' if s is None else s}  score {fmt(x)}"
            for i, (s, x) in enumerate(zip(self.seeds, self.scores.tolist(), strict=True))
        ]


def repeat(
    run: Callable[[int | None], R],
    seeds: Sequence[int] | None = None,
    *,
    runs: int | None = None,
    score: Callable[[R], float] | None = None,
    reseed: bool = True,
    on_run: Callable[[int, int | None, R], None] | None = None,
) -> Runs[R]:
    """Call ``run(seed)`` once per seed, or ``runs`` times with ``seed=None``; collect the results.

    ``run`` trains and returns a result: a number (the score) or any object, with ``score``
    picking its score. With ``reseed`` (default) the global generators are reset before each
    run: :func:`seed_globals` ``(seed)`` for a seed, :func:`fresh_entropy` for ``None``. ``run``
    should also pass its seed to whatever takes one (builders, batch order). ``on_run(i, seed,
    result)`` is called after each run (``i`` counts from 1), e.g. to print progress.
    """
    if seeds is None:
        if runs is None or runs < 1:
            raise ValueError("give a list of seeds, or runs >= 1 for unseeded runs")
        plan: list[int | None] = [None] * runs
    else:
        plan = list(seeds)
        if not plan:
            raise ValueError("seeds is empty")
        if runs is not None and runs != len(plan):
            raise ValueError(f"runs={runs} but {len(plan)} seeds were given")
        for s in plan:
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                raise ValueError(f"seeds must be non-negative ints, got {s!r}")
    pick = score or _as_score
    results: list[R] = []
    scores: list[float] = []
    seconds: list[float] = []
    for i, seed in enumerate(plan):
        if reseed:
            if seed is None:
                fresh_entropy()
            else:
                seed_globals(seed)
        start = time.perf_counter()
        result = run(seed)
        seconds.append(time.perf_counter() - start)
        results.append(result)
        scores.append(float(pick(result)))
        if on_run:
            on_run(i + 1, seed, result)
    return Runs(
        seeds=plan, results=results, scores=np.asarray(scores, dtype=np.float64), seconds=seconds
    )
