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
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    from reprodl.data import Split

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


# --- many runs of one model, one traced step; the spread each source of randomness causes ----

#: The sources of randomness of a training run that :class:`Seeds` names one by one.
SOURCES = ("init", "order", "dropout")

#: Conditions of :func:`decompose`: vary one source only, or all of them together.
CONDITIONS = (*SOURCES, "all")


def dropout_seed_for(seed: int) -> int:
    """The dropout seed that goes with run seed ``seed``: a separate stream, never ``seed`` itself.

    Keras draws with stateless generators: a ``Dropout(seed=s)`` layer's first mask and a
    ``GlorotUniform(seed=s)`` weight matrix come from the *same* numbers. Passing one number as
    both the init seed and the dropout seed therefore couples them; this derives the dropout
    seed from ``seed`` through :class:`numpy.random.SeedSequence` under a key of its own.
    """
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0] % (2**31 - 1))


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
        raise ValueError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    if condition == "all":
        return Seeds.from_seed(seed)
    varied = Seeds.from_seed(seed)
    fixed = Seeds.from_seed(base)
    return Seeds(**{s: getattr(varied if s == condition else fixed, s) for s in SOURCES})


@dataclass
class SeededRun:
    """One run of a :class:`SeedRunner`: its seeds, accuracies and fingerprints."""

    seeds: Seeds
    evaluations: dict  # split name -> reprodl.training.Evaluation
    initial_digest: str  # every state variable (weights and dropout generator state)
    initial_weights_digest: str  # the weights only
    final_digest: str  # the weights after training (as TrainingRecord.final_digest)
    losses: np.ndarray

    def accuracy(self, split: str = "test") -> float:
        """Accuracy on ``split`` (a fraction)."""
        return self.evaluations[split].accuracy


class SeedRunner:
    """Train one model architecture many times, tracing its training step only once.

    :func:`reprodl.training.train` traces a fresh step function on every call, which costs more
    than a few hundred steps of a small model. A runner builds the model, the optimizer and the
    compiled step once; each call puts the complete initial state of a freshly built model (seeded
    with ``seeds.init`` and ``seeds.dropout``) into that model, resets the optimizer to its
    freshly built state (its step counter too, which drives a cosine ``schedule``) and trains on
    batches in the order of ``seeds.order``. Optimizer, learning rate and schedule default to the
    model's (:data:`reprodl.training.DEFAULTS`). The result is bit-identical to building the model
    and calling :func:`~reprodl.training.train` (tested).
    """

    def __init__(
        self,
        model: str,
        train: Split,
        evaluate: Mapping[str, Split],
        *,
        steps: int,
        batch_size: int | None = None,
        optimizer: str | None = None,
        learning_rate: float | None = None,
        schedule: str | None = None,
        **model_kwargs,
    ) -> None:
        import tensorflow as tf

        from reprodl import models, training
        from reprodl.data import to_float

        if steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
        spec = training.RunSpec(
            model=model,
            steps=steps,
            batch_size=batch_size,
            optimizer=optimizer,
            learning_rate=learning_rate,
            schedule=schedule,
        ).resolved()  # the model's defaults, as training.run fills them in
        self.name = model
        self.steps = steps
        self.batch_size = spec.batch_size
        self.optimizer_name = spec.optimizer
        self.learning_rate = spec.learning_rate
        self.schedule = spec.schedule
        self.model_kwargs = dict(model_kwargs)
        self.num_examples = len(train)
        self.model = models.build(model, 0, **self._kwargs(0))
        self.optimizer = training.optimizer_for(spec)
        variables = self.model.trainable_variables
        self.optimizer.build(variables)
        self._state = training.state_variables(self.model)
        self._fresh_optimizer = [np.array(v.numpy()) for v in self.optimizer.variables]
        net = self.model
        step = training.compiled_step(self.model, self.optimizer, train, self.batch_size)

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
        def predict(x):
            return tf.argmax(net(x, training=False), axis=1, output_type=tf.int64)

        self._step, self._predict = step, predict
        self._eval = {name: (to_float(s.images), s.labels) for name, s in evaluate.items()}

    def _kwargs(self, dropout_seed: int) -> dict:
        if self.name == "softmax":
            return dict(self.model_kwargs)
        return {**self.model_kwargs, "dropout_seed": dropout_seed}

    def reset(self, seeds: Seeds) -> None:
        """Give the model the initial state of ``seeds`` and the optimizer its fresh state."""
        from reprodl import models, training

        fresh = models.build(self.name, seeds.init, **self._kwargs(seeds.dropout))
        values = training.state_arrays(fresh)
        if list(values) != [info.name for info, _ in self._state]:
            raise RuntimeError("the freshly built model does not have this runner's variables")
        for (_, v), a in zip(self._state, values.values(), strict=True):
            v.assign(a)
        for v, a in zip(self.optimizer.variables, self._fresh_optimizer, strict=True):
            v.assign(a)

    def __call__(self, seeds: Seeds) -> SeededRun:
        """Train from the initial state of ``seeds``; evaluate on every split given."""
        import tensorflow as tf

        from reprodl import fingerprint, training
        from reprodl.batches import IndexStream
        from reprodl.training import Evaluation

        self.reset(seeds)
        initial = fingerprint.combine(training.state_digests(self.model).values())
        initial_weights = fingerprint.weights_digest(self.model)
        stream = IndexStream(self.num_examples, seed=seeds.order)
        losses = [
            self._step(tf.constant(stream.next(self.batch_size), dtype=tf.int32))
            for _ in range(self.steps)
        ]
        evaluations = {}
        for name, (images, labels) in self._eval.items():
            correct = 0
            for start in range(0, len(labels), 1000):
                pred = self._predict(tf.constant(images[start : start + 1000])).numpy()
                correct += int(np.sum(pred == labels[start : start + 1000]))
            evaluations[name] = Evaluation(correct=correct, total=len(labels))
        return SeededRun(
            seeds=seeds,
            evaluations=evaluations,
            initial_digest=initial,
            initial_weights_digest=initial_weights,
            final_digest=fingerprint.weights_digest(self.model),
            losses=tf.stack(losses).numpy().astype(np.float32),
        )


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

    Each condition varies one source of randomness (or ``"all"``) and holds the others at the
    seeds of ``base``; the global generators are reset to ``base`` before each run (to ``s`` under
    ``"all"``), so nothing but the named source can change between the runs of a condition.
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


def std_interval_lines(
    groups: Mapping[str, Sequence[float] | np.ndarray], *, scale: float = 100.0, digits: int = 2
) -> list[str]:
    """One line per group: the 95% confidence interval of its standard deviation (times
    ``scale``), to read a :func:`spread_table` with: how well few runs pin a spread down."""
    width = max(len(name) for name in groups)
    f = f"{{:.{digits}f}}".format
    lines = []
    for name, values in groups.items():
        low, high = std_ci95(scale * np.asarray(values, dtype=np.float64))
        lines.append(f"{name:>{width}}: 95% CI of the std [{f(low)}, {f(high)}]")
    return lines


def std_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """95% confidence interval of the standard deviation (chi-square, assumes normal scores)."""
    from scipy import stats

    s = summarise(values)
    if s.n < 2:
        return (float("nan"), float("nan"))
    df = s.n - 1
    return (
        s.std * math.sqrt(df / stats.chi2.ppf(0.975, df)),
        s.std * math.sqrt(df / stats.chi2.ppf(0.025, df)),
    )


# --- comparing two variants fairly: paired seeds ----------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """Two variants run on the same seeds, compared pair by pair (differences ``a - b``)."""

    n: int
    mean_difference: float
    std_difference: float
    ci95: tuple[float, float]  # of the mean difference (Student's t)
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


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    permutations: int = 100_000,
    seed: int = 0,
) -> PairedTest:
    """Compare scores ``a[i]`` and ``b[i]`` of two variants run with the same seed ``i``.

    Three two-sided tests of "no difference": the paired t-test (assumes roughly normal
    differences), the exact sign test (assumes nothing but independent pairs) and a sign-flip
    permutation test of the mean difference, its random flips drawn from ``seed``. With ``n <= 16``
    pairs the permutation test enumerates all ``2**n`` flips and is exact.
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("a and b must be 1-D, of the same length, with at least two pairs")
    d = x - y
    n = d.size
    s = summarise(d)
    if s.std > 0:
        t = s.mean / s.sem
        p_t = float(2 * stats.t.sf(abs(t), n - 1))
        half = t_quantile_975(n - 1) * s.sem
    else:  # every pair differs by the same amount
        t = 0.0 if s.mean == 0 else math.copysign(math.inf, s.mean)
        p_t = 1.0 if s.mean == 0 else 0.0
        half = 0.0
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    p_sign = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
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
    p_perm = hits / count if n <= 16 else (hits + 1) / (count + 1)
    return PairedTest(
        n=n,
        mean_difference=s.mean,
        std_difference=s.std,
        ci95=(s.mean - half, s.mean + half),
        t=float(t),
        p_t=p_t,
        wins=wins,
        losses=losses,
        ties=n - wins - losses,
        p_sign=p_sign,
        p_permutation=float(min(1.0, p_perm)),
        permutations=count,
    )


def welch_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of Welch's unpaired t-test: what ignoring the pairing would give."""
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def best_of(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """The best score among the first k runs, for k = 1..n (what "the best seed" reports)."""
    return np.maximum.accumulate(np.asarray(scores, dtype=np.float64))
