"""Statistics of repeated runs: summaries, confidence intervals, paired and Welch tests.

SciPy computes every quantile and test (the book may show the formula next to it); this module
adds what a book about seeds needs on top: float64 throughout, NaN where one run cannot say
anything, and plain lines to print. :func:`summarise` gives the mean, the spread and a 95%
confidence interval of a set of scores; :func:`paired_test` compares two variants run on the same
seeds.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reprodl.errors import UsageError

Scores = Sequence[float] | np.ndarray


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (for 95% intervals)."""
    if df < 1:
        raise UsageError(f"degrees of freedom must be at least 1, got {df}")
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf(0.975, df))


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


def summarise(scores: Scores) -> Summary:
    """Summary statistics of ``scores`` (at least one, all finite), computed in float64."""
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise UsageError("scores must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(a)):
        raise UsageError("scores must be finite")
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


def std_ci95(values: Scores) -> tuple[float, float]:
    """95% confidence interval of the standard deviation (chi-square, assumes normal scores)."""
    from scipy import stats as scipy_stats

    s = summarise(values)
    if s.n < 2:
        return (float("nan"), float("nan"))
    df = s.n - 1
    return (
        s.std * math.sqrt(df / scipy_stats.chi2.ppf(0.975, df)),
        s.std * math.sqrt(df / scipy_stats.chi2.ppf(0.025, df)),
    )


def std_interval_lines(
    groups: Mapping[str, Scores], *, scale: float = 100.0, digits: int = 2
) -> list[str]:
    """One line per group: the 95% confidence interval of its standard deviation (times
    ``scale``), to read a spread table with: how well few runs pin a spread down."""
    width = max(len(name) for name in groups)
    f = f"{{:.{digits}f}}".format
    lines = []
    for name, values in groups.items():
        low, high = std_ci95(scale * np.asarray(values, dtype=np.float64))
        lines.append(f"{name:>{width}}: 95% CI of the std [{f(low)}, {f(high)}]")
    return lines


# --- comparing two variants fairly: paired seeds ----------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """Two variants run on the same seeds, compared pair by pair (differences ``a - b``)."""

    n: int
    mean_difference: float
    std_difference: float
    ci95: tuple[float, float]  # of the mean difference (Student's t, as the paired t-test)
    t: float
    p_t: float  # paired t-test, two-sided
    wins: int  # pairs where a > b
    losses: int  # pairs where a < b
    ties: int
    p_sign: float  # exact sign test (binomial, ties dropped), two-sided
    p_permutation: float  # sign-flip permutation test on the mean difference, two-sided
    permutations: int

    def lines(self, scale: float = 100.0, digits: int = 2) -> list[str]:
        """The result in a few plain lines (differences times ``scale``, e.g. in % points)."""
        f = f"{{:+.{digits}f}}".format
        low, high = self.ci95
        return [
            f"pairs: {self.n}; a better in {self.wins}, b better in {self.losses}, "
            f"ties {self.ties}",
            f"mean difference a - b: {f(scale * self.mean_difference)} "
            f"(95% CI [{f(scale * low)}, {f(scale * high)}])",
            f"paired t-test: t = {self.t:.3f}, p = {self.p_t:.4f}",
            f"sign test: p = {self.p_sign:.4f}",
            f"permutation test ({self.permutations:,} sign flips): p = {self.p_permutation:.4f}",
        ]


def _paired_t(x: np.ndarray, y: np.ndarray, d: Summary) -> tuple[float, float, float, float]:
    """The paired t-test of ``x - y``: t, two-sided p and the 95% interval of the mean, all from
    one :func:`scipy.stats.ttest_rel` (the degenerate case of equal differences by hand)."""
    if d.std > 0:
        from scipy import stats as scipy_stats

        result = scipy_stats.ttest_rel(x, y)
        ci = result.confidence_interval(0.95)
        return float(result.statistic), float(result.pvalue), float(ci.low), float(ci.high)
    # every pair differs by the same amount: no spread, so certainty either way
    t = 0.0 if d.mean == 0 else math.copysign(math.inf, d.mean)
    return t, 1.0 if d.mean == 0 else 0.0, d.mean, d.mean


def _sign_flips(d: np.ndarray, permutations: int, seed: int) -> tuple[float, int]:
    """Two-sided p of the sign-flip permutation test of the mean of ``d`` and the flips used:
    all ``2**n`` (exact) for ``n <= 16``, else ``permutations`` random ones from ``seed``."""
    n = d.size
    if n <= 16:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        signs = 1.0 - 2.0 * bits
        count = 2**n
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(permutations, n))
        count = permutations
    flipped = np.abs(signs @ d) / n
    observed = abs(d.mean())
    hits = int(np.sum(flipped >= observed - 1e-12 * max(1.0, observed)))
    p = hits / count if n <= 16 else (hits + 1) / (count + 1)
    return float(min(1.0, p)), count


def paired_test(a: Scores, b: Scores, *, permutations: int = 100_000, seed: int = 0) -> PairedTest:
    """Compare scores ``a[i]`` and ``b[i]`` of two variants run with the same seed ``i``.

    Three two-sided tests of "no difference": the paired t-test (assumes roughly normal
    differences; its interval and p-value both from :func:`scipy.stats.ttest_rel`), the exact sign
    test (assumes nothing but independent pairs) and a sign-flip permutation test of the mean
    difference, its random flips drawn from ``seed``. With ``n <= 16`` pairs the permutation test
    enumerates all ``2**n`` flips and is exact.
    """
    from scipy import stats as scipy_stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise UsageError("a and b must be 1-D, of the same length, with at least two pairs")
    d = x - y
    s = summarise(d)
    t, p_t, low, high = _paired_t(x, y, s)
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    p_sign = float(scipy_stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    p_permutation, count = _sign_flips(d, permutations, seed)
    return PairedTest(
        n=int(d.size),
        mean_difference=s.mean,
        std_difference=s.std,
        ci95=(low, high),
        t=t,
        p_t=p_t,
        wins=wins,
        losses=losses,
        ties=int(d.size) - wins - losses,
        p_sign=p_sign,
        p_permutation=p_permutation,
        permutations=count,
    )


def welch_test(a: Scores, b: Scores) -> float:
    """Two-sided p-value of Welch's unpaired t-test: what ignoring the pairing would give."""
    from scipy import stats as scipy_stats

    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def best_of(scores: Scores) -> np.ndarray:
    """The best score among the first k runs, for k = 1..n (what "the best seed" reports)."""
    return np.maximum.accumulate(np.asarray(scores, dtype=np.float64))
