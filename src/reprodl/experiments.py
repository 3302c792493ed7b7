"""Repeated training runs across seeds, and the spread each source of randomness causes.

When runs differ, one run says little. :func:`repeat` calls a training function once per seed, or
a number of times with fresh, unrecorded entropy ("no seeds"), and keeps every result with its
score in a :class:`Runs`; :func:`reprodl.stats.summarise` gives the mean, the spread and a 95%
confidence interval. Before each run the global random generators are reset (to the run's seed,
or to fresh entropy), so a run's result depends on its seed only, never on what ran before it.
:func:`decompose` varies one source of randomness at a time (:func:`reprodl.seeds.seeds_for`),
typically with a :class:`reprodl.training.SeedRunner`; :func:`spread_table` shows the result.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Generic, TypeVar

import numpy as np

from reprodl.errors import UsageError
from reprodl.seeds import CONDITIONS, Seeds, fresh_entropy, seed_globals, seeds_for
from reprodl.stats import Summary, distinct, summarise

R = TypeVar("R")


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
        """:func:`reprodl.stats.summarise` of the scores."""
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
    run: :func:`~reprodl.seeds.seed_globals` ``(seed)`` for a seed,
    :func:`~reprodl.seeds.fresh_entropy` for ``None``. ``run`` should also pass its seed to
    whatever takes one (builders, batch order). ``on_run(i, seed, result)`` is called after each
    run (``i`` counts from 1), e.g. to print progress.
    """
    if seeds is None:
        if runs is None or runs < 1:
            raise UsageError("give a list of seeds, or runs >= 1 for unseeded runs")
        plan: list[int | None] = [None] * runs
    else:
        plan = list(seeds)
        if not plan:
            raise UsageError("seeds is empty")
        if runs is not None and runs != len(plan):
            raise UsageError(f"runs={runs} but {len(plan)} seeds were given")
        for s in plan:
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                raise UsageError(f"seeds must be non-negative ints, got {s!r}")
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


# --- one source of randomness at a time ------------------------------------------------------


def run_in_condition(
    run: Callable[[Seeds], R], condition: str, seed: int, base: int = 0
) -> tuple[Seeds, R]:
    """``run(seeds_for(condition, seed, base))``, after resetting the global generators to
    ``base`` (to ``seed`` under ``"all"``); returns the seeds and the result."""
    seeds = seeds_for(condition, seed, base)
    seed_globals(seed if condition == "all" else base)
    return seeds, run(seeds)


def decompose(
    run: Callable[[Seeds], R],
    seeds: Sequence[int],
    conditions: Sequence[str] = CONDITIONS,
    *,
    base: int = 0,
    score: Callable[[R], float] | None = None,
    on_run: Callable[[str, int, Seeds, R], None] | None = None,
) -> dict[str, Runs[R]]:
    """Run ``run(seeds_for(condition, s, base))`` for every seed ``s`` and every condition.

    Each condition (:data:`reprodl.seeds.CONDITIONS`) varies one source of randomness (or
    ``"all"``) and holds the others at the seeds of ``base``; the global generators are reset to
    ``base`` before each run (to ``s`` under ``"all"``), so nothing but the named source can
    change between the runs of a condition. ``run`` is typically a
    :class:`reprodl.training.SeedRunner`.
    """
    result: dict[str, Runs[R]] = {}
    for condition in conditions:
        plan = [seeds_for(condition, s, base) for s in seeds]  # validates the condition

        def one(seed: int | None, condition: str = condition) -> R:
            assert seed is not None
            return run_in_condition(run, condition, seed, base)[1]

        def report(
            i: int, seed: int | None, r: R, condition: str = condition, plan: list = plan
        ) -> None:
            if on_run:
                on_run(condition, i, plan[i - 1], r)

        result[condition] = repeat(one, seeds, score=score, reseed=False, on_run=report)
    return result


def spread_table(
    groups: Mapping[str, Sequence[float] | np.ndarray],
    *,
    distinct_results: Mapping[str, int] | None = None,
    reference: str | None = "all",
    scale: float = 100.0,
    digits: int = 2,
) -> list[str]:
    """A plain table of each group's n, distinct results, mean, std, min and max (times
    ``scale``, e.g. accuracy in %) and its variance as a share of the ``reference`` group's."""
    header = ["condition", "runs", "distinct", "mean", "std", "min", "max"]
    ref_var = None
    if reference is not None and reference in groups:
        ref_var = summarise(groups[reference]).std ** 2
        header.append(f"var / var({reference})")
    rows = [header]
    f = f"{{:.{digits}f}}".format
    for name, values in groups.items():
        s = summarise(values)
        n_distinct = (distinct_results or {}).get(name, distinct(list(np.asarray(values))))
        row = [name, str(s.n), str(n_distinct), f(scale * s.mean), f(scale * s.std)]
        row += [f(scale * s.min), f(scale * s.max)]
        if ref_var is not None:
            row.append("n/a" if ref_var == 0 else f"{s.std**2 / ref_var:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
